"""The `restore` flow: bring one item of a backup run back into a target, timed against the 30-minute RTO."""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime

from blocks.backup_plan import BackupPlan
from blocks.vigia import VigiaSettings
from tasks.restores import restore_item

RTO_SECONDS = 30 * 60


@flow(name="restore", description="Restore one item of a backup run into a target (fetched and SHA-256 checked first).")
def restore(run_id: str, source: str, target: str | None = None, force: bool = False, plan_block: str = "default") -> dict:
    """Fetch one backup item (from the remote when it is not local), check its SHA-256, restore it, and time it.

    Args:
        run_id: The backup run, as `vigia backup list` shows it (e.g. 2026-11-22T030000Z).
        source: The source to restore, by its name in the backup plan (e.g. postgres-n8n, redis, files, store).
        target: Where to restore: a PostgreSQL or Redis URL, or a folder for files; the source itself when empty.
        force: Overwrite a target that is not empty (PostgreSQL: drop and recreate the backup's objects; Redis: replace keys).
        plan_block: Name of the backup-plan Block document that says where the backups are.
    """
    logger = get_run_logger()
    settings = VigiaSettings.load("default")
    plan = BackupPlan.load(plan_block)
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    outcome = restore_item(plan, settings.database_url.get_secret_value(), run_id, source, target, force, flow_run_id)
    within = "within" if outcome.seconds <= RTO_SECONDS else "OUTSIDE"
    logger.info("restore of %s from %s took %.1f s, %s the 30-minute RTO", source, run_id, outcome.seconds, within)
    return {"run_id": outcome.run_id, "source": outcome.source, "target": outcome.target, "seconds": outcome.seconds, "detail": outcome.detail}
