"""The `backup` flow: capture every source, upload with a hash check, verify by restoring, prune, alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_table_artifact

from blocks.backup_plan import BackupPlan
from blocks.vigia import VigiaSettings
from store.backups import BackupItem
from tasks.alerts import raise_alert
from tasks.backups import (
    BackupFailed,
    backup_lock,
    failure_body,
    load_block,
    open_run,
    record_capture,
    report_body,
    set_status,
    upload_manifest,
    upload_run,
    write_manifest,
    write_sums,
)
from tasks.captures import capture_source, verify_capture
from tasks.events import emit_backup
from tasks.retention import prune_backups
from tasks.run_failures import alert_on_failed_run, run_alert_key
from tasks.run_names import backup_run_name


@dataclass(frozen=True)
class BackupResult:
    """A finished backup run: its id, status (`verified` or `uploaded`), size and the seconds of each step."""

    run_id: str
    status: str
    size_bytes: int
    timings_seconds: dict[str, float]


@dataclass
class _Progress:
    """What the run has done so far, for the record and the alerts."""

    items: dict[str, BackupItem] = field(default_factory=dict)
    captures: list = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@flow(
    name="backup",
    description="Dump, compress, checksum, upload, verify and prune every configured source.",
    flow_run_name=backup_run_name,
    on_failure=[alert_on_failed_run("critical")],
    on_crashed=[alert_on_failed_run("critical")],
)
def backup(plan_block: str = "default", verify: bool = True, prune: bool = True, dry_run: bool = False) -> BackupResult:
    """Back up every source of the plan; the run is `verified` only when every copy restored and matched.

    Args:
        plan_block: Name of the backup-plan Block document to run.
        verify: Restore every dump into a scratch copy and compare it with the source (the run is verified only then).
        prune: Apply retention after the run: local days, and daily/weekly/monthly on the remote.
        dry_run: With prune, only log what retention would delete.

    Raises:
        BlockMissing: when vigia-settings/default or the plan's Block does not exist.
        BackupFailed: when any source, the upload or a verification failed (a critical alert is sent).
    """
    logger = get_run_logger()
    settings = load_block(VigiaSettings, "default")
    plan = load_block(BackupPlan, plan_block)
    database_url = settings.database_url.get_secret_value()
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    with backup_lock(plan):
        run = open_run(database_url, plan, flow_run_id)
        done = _Progress()
        _capture_all(plan, run, database_url, done)
        if not done.errors and run.remote_dir:
            _upload(run, database_url, done)
        if not done.errors and verify:
            _verify_all(plan, run, database_url, done)
        status = "failed" if done.errors else ("verified" if verify else "uploaded")
        error = "; ".join(done.errors) or None
        write_manifest(run, status, list(done.items.values()), done.captures, done.timings, error)
        if run.remote_dir and "upload" in done.timings:
            _upload_manifest(run, done)
            status = "failed" if done.errors else status
            error = "; ".join(done.errors) or None
        size = sum(item.size_bytes or 0 for item in done.items.values())
        set_status(
            database_url,
            run.run_id,
            status,
            verified=status == "verified",
            finished_at=datetime.now(timezone.utc),
            size_bytes=size,
            dump_seconds=done.timings.get("dump"),
            upload_seconds=done.timings.get("upload"),
            verify_seconds=done.timings.get("verify"),
            error=error,
        )
        _publish(run.run_id, status, done)
        emit_backup(run.run_id, status, size, list(done.items), error)
        if done.errors:
            # Under the run's own key: its on_failure hook then finds the run alerted and adds nothing.
            key = run_alert_key(flow_run_id) if flow_run_id else f"backup-critical:{run.run_id}"
            _alert("critical", f"backup {run.run_id} failed", failure_body(run, error, bool(done.captures)), key)
            raise BackupFailed(f"backup {run.run_id} failed: {error}")
        _alert(
            "report",
            f"backup {run.run_id} {status}",
            report_body(run, list(done.items.values()), done.timings),
            f"backup-report:{run.run_id}",
        )
        if prune:
            prune_backups(plan, database_url, dry_run)
    logger.info("backup %s %s: %d sources, %.1f MiB", run.run_id, status, len(done.items), size / 2**20)
    return BackupResult(run.run_id, status, size, dict(done.timings))


def _alert(severity: str, title: str, body: str, key: str) -> None:
    # raise_alert is an async task: submit it from this sync flow and wait for its delivery record.
    raise_alert.submit(severity, title, body, key=key, cooldown=None, target="backup").result()


def _capture_all(plan: BackupPlan, run, database_url: str, done: _Progress) -> None:
    started = datetime.now(timezone.utc)
    for source in plan.sources:
        try:
            capture = capture_source(source, run.run_dir, plan.timeout_seconds)
        except Exception as error:
            done.errors.append(f"{source.name}: {error}")
            done.items[source.name] = BackupItem(source.name, source.kind, detail=f"dump failed: {error}")
        else:
            done.captures.append(capture)
            done.items[source.name] = BackupItem(
                source.name, source.kind, capture.file_name, capture.size_bytes, capture.sha256, capture.seconds
            )
        record_capture(database_url, run.run_id, done.items[source.name])
    done.timings["dump"] = (datetime.now(timezone.utc) - started).total_seconds()
    if done.captures:
        write_sums(run, done.captures)


def _upload(run, database_url: str, done: _Progress) -> None:
    try:
        done.timings["upload"] = upload_run(run, done.captures)
    except Exception as error:
        done.errors.append(f"upload to {run.remote_dir} failed, the local copy is kept in {run.run_dir}: {error}")
        return
    set_status(database_url, run.run_id, "uploaded", upload_seconds=done.timings["upload"])


def _verify_all(plan: BackupPlan, run, database_url: str, done: _Progress) -> None:
    started = datetime.now(timezone.utc)
    for capture in done.captures:
        source = plan.source(capture.source)
        item = done.items[capture.source]
        try:
            detail = verify_capture(source, capture, run.run_dir, plan.timeout_seconds)
        except Exception as error:
            done.errors.append(f"{capture.source}: verification failed: {error}")
            done.items[capture.source] = BackupItem(**{**item.__dict__, "verified": False, "detail": f"verification failed: {error}"})
        else:
            done.items[capture.source] = BackupItem(**{**item.__dict__, "verified": True, "detail": detail})
        record_capture(database_url, run.run_id, done.items[capture.source])
    done.timings["verify"] = (datetime.now(timezone.utc) - started).total_seconds()


def _upload_manifest(run, done: _Progress) -> None:
    try:
        upload_manifest(run)
    except Exception as error:
        done.errors.append(f"uploading the manifest to {run.remote_dir} failed: {error}")


def _publish(run_id: str, status: str, done: _Progress) -> None:
    rows = [
        {
            "source": item.source,
            "kind": item.kind,
            "size_mib": round((item.size_bytes or 0) / 2**20, 2),
            "seconds": round(item.seconds or 0, 1),
            "verified": item.verified,
            "detail": item.detail or "",
        }
        for item in done.items.values()
    ]
    create_table_artifact(rows, key="backup", description=f"Backup {run_id}: {status}")
