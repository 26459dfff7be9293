"""The backup plan the settings describe: VIGIA_BACKUP_* sources plus the store, saved by `vigia setup`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployments.connection_names import name_connections

if TYPE_CHECKING:
    from blocks.backup_plan import BackupPlan
    from deployments.settings import Settings

PLAN_NAME = "default"


def plan_from_settings(settings: Settings) -> BackupPlan:
    """Build the backup plan the settings describe: VIGIA_BACKUP_* sources plus the store itself."""
    from blocks.backup_plan import BackupPlan, BackupSource  # Prefect loads only where needed: `vigia --help` stays fast

    sources = [BackupSource(name=name, kind="postgres", url=url) for name, url in name_connections("postgres", settings.backup_postgres)]
    sources += [BackupSource(name=name, kind="redis", url=url) for name, url in name_connections("redis", settings.backup_redis)]
    if settings.backup_paths:
        sources.append(BackupSource(name="files", kind="files", paths=[str(path) for path in settings.backup_paths]))
    sources.append(BackupSource(name="store", kind="store", url=settings.database_url))
    return BackupPlan(sources=sources, local_dir=str(settings.home / "backups"), remote=settings.backup_remote)


def save_backup_plan(settings: Settings) -> str:
    """Write backup-plan/default from the settings; return the line `vigia setup` prints."""
    plan = plan_from_settings(settings)
    plan.save(PLAN_NAME, overwrite=True)
    names = ", ".join(source.name for source in plan.sources)
    return f"backup-plan/{PLAN_NAME}: {names} → {plan.remote}, daily at 03:00 {settings.timezone}"
