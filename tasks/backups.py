"""A backup run's record: lock, run row, items, SHA256SUMS, manifest, upload with a hash check, and the alerts."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefect import task
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound
from pydantic import ValidationError

from blocks.backup_plan import BackupPlan
from clients import lock, pg_dump, rclone, redis_dump
from clients.redaction import mask_secrets
from store.backups import BackupItem, fail_stale_runs, get_run, record_item, set_run_status, start_run
from store.database import open_session
from tasks.alerts import run_logger
from tasks.captures import Capture

RUN_ID_FORMAT = "%Y-%m-%dT%H%M%SZ"
SUMS_FILE = "SHA256SUMS"
MANIFEST_FILE = "manifest.json"


class BackupFailed(Exception):
    """The run failed; the message says where and what the local copy holds."""


class BlockMissing(LookupError):
    """A Block document a backup or restore needs has not been created (`vigia setup` creates it)."""


class BlockInvalid(ValueError):
    """A Block document exists but no longer validates (edited by hand, or saved by an older version)."""


@dataclass(frozen=True)
class RunContext:
    """Where one run writes: its id, local folder and remote folder."""

    run_id: str
    started_at: datetime
    run_dir: Path
    remote_dir: str | None


def parse_run_id(name: str) -> datetime | None:
    """Return when a run started from its id (`2026-11-22T030000Z`), or None for a foreign name."""
    try:
        return datetime.strptime(name, RUN_ID_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def load_block(block_type: type[Block], name: str) -> Block:
    """Load a Block document by name.

    Raises:
        BlockMissing: when no document of that type has that name.
        BlockInvalid: when the stored document does not validate.
    """
    slug = f"{block_type.get_block_type_slug()}/{name}"
    try:
        return block_type.load(name)
    except RuntimeError as error:  # how Prefect reports a stored document that no longer validates
        if not isinstance(error.__cause__, ValidationError):
            raise
        found = error.__cause__.errors()
        problems = "; ".join(f"{'.'.join(map(str, problem['loc'])) or 'document'}: {problem['msg']}" for problem in found)
        raise BlockInvalid(f"{slug} is invalid: {problems}; correct it in the Prefect UI (Blocks)") from error
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            raise BlockMissing(f"{slug} does not exist") from error
        raise


@contextmanager
def backup_lock(plan: BackupPlan) -> Iterator[None]:
    """Hold the backup lock for the plan's local folder; a second run fails at once.

    Raises:
        LockHeld: naming the run holding it.
    """
    with lock.exclusive(Path(plan.local_dir) / ".lock", "backup"):
        yield


@task(name="open-backup-run", cache_policy=NO_CACHE)
def open_run(database_url: str, plan: BackupPlan, flow_run_id: str | None) -> RunContext:
    """Create the run's folder and its `running` row; runs left `running` by a dead process become failed."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    local_root = Path(plan.local_dir)
    with open_session(database_url) as session:
        stale = fail_stale_runs(session, now, "interrupted: its process stopped before the run finished")
        while (local_root / now.strftime(RUN_ID_FORMAT)).exists() or get_run(session, now.strftime(RUN_ID_FORMAT)):
            now += timedelta(seconds=1)
        run_id = now.strftime(RUN_ID_FORMAT)
        remote_dir = rclone.join(rclone.check_remote(plan.remote), run_id) if plan.remote else None
        start_run(session, run_id, started_at=now, local_dir=str(local_root / run_id), remote=remote_dir, flow_run_id=flow_run_id)
    (local_root / run_id).mkdir(parents=True)
    if stale:
        run_logger().warning("runs %s were left running by a stopped process; marked failed", ", ".join(stale))
    return RunContext(run_id, now, local_root / run_id, remote_dir)


@task(name="record-backup-item", cache_policy=NO_CACHE)
def record_capture(database_url: str, run_id: str, item: BackupItem) -> None:
    """Store one item of the run (its capture, verification or error)."""
    with open_session(database_url) as session:
        record_item(session, run_id, item)


@task(name="set-backup-status", cache_policy=NO_CACHE)
def set_status(database_url: str, run_id: str, status: str, **values) -> None:
    """Move the run to `status` with sizes, durations or the error."""
    if "error" in values and values["error"]:
        values["error"] = mask_secrets(values["error"])
    with open_session(database_url) as session:
        set_run_status(session, run_id, status, **values)


def write_sums(run: RunContext, captures: Sequence[Capture]) -> Path:
    """Write SHA256SUMS (`sha256sum` format) for the run's files."""
    path = run.run_dir / SUMS_FILE
    path.write_text("".join(f"{capture.sha256}  {capture.file_name}\n" for capture in captures))
    return path


@task(name="upload-backup", cache_policy=NO_CACHE)
def upload_run(run: RunContext, captures: Sequence[Capture]) -> float:
    """Upload the run's files and SHA256SUMS, then check every remote file's SHA-256 by downloading it.

    Returns the seconds taken.

    Raises:
        RcloneError: when the remote cannot be reached or written (the local copy stays).
        BackupFailed: when a remote file's hash differs.
    """
    started = time.perf_counter()
    sums = write_sums(run, captures)
    total = sum(capture.size_bytes for capture in captures)
    logger = run_logger()
    marks = {"next": 0.1}

    def on_progress(sent: int, of: int) -> None:
        if of and sent / of >= marks["next"]:
            logger.info("upload to %s: %d%% of %.1f MiB", run.remote_dir, int(100 * sent / of), of / 2**20)
            marks["next"] = int(10 * sent / of) / 10 + 0.1

    staging = run.run_dir / ".upload"
    staging.mkdir(exist_ok=True)
    try:
        for name in [capture.file_name for capture in captures] + [SUMS_FILE]:
            (staging / name).unlink(missing_ok=True)
            (staging / name).hardlink_to(run.run_dir / name)
        rclone.upload(staging, run.remote_dir, on_progress=on_progress)
    finally:
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()
    problems = rclone.checksum(sums, run.remote_dir)
    if problems:
        raise BackupFailed(f"the remote copy in {run.remote_dir} does not match its SHA-256: {'; '.join(problems)}")
    seconds = time.perf_counter() - started
    logger.info("uploaded %.1f MiB to %s and checked every SHA-256 in %.1f s", total / 2**20, run.remote_dir, seconds)
    return seconds


@task(name="write-manifest", cache_policy=NO_CACHE)
def write_manifest(
    run: RunContext, status: str, items: Sequence[BackupItem], captures: Sequence[Capture], timings: dict, error: str | None
) -> Path:
    """Write manifest.json: sources, sizes, checksums, tool versions, timings and verification results."""
    expected = {capture.source: capture.expected for capture in captures}
    manifest = {
        "run_id": run.run_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "status": status,
        "verified": status == "verified",
        "host": platform.node(),
        "remote": run.remote_dir,
        "error": mask_secrets(error) if error else None,
        "timings_seconds": timings,
        "tools": _tool_versions({item.kind for item in items}),
        "items": [{**item.__dict__, "captured": expected.get(item.source)} for item in items],
    }
    path = run.run_dir / MANIFEST_FILE
    partial = path.with_name(MANIFEST_FILE + ".partial")
    partial.write_text(json.dumps(manifest, indent=2, default=str))
    partial.replace(path)
    return path


@task(name="upload-manifest", cache_policy=NO_CACHE)
def upload_manifest(run: RunContext) -> None:
    """Upload manifest.json last: a remote folder with a manifest is a finished run."""
    staging = run.run_dir / ".manifest"
    staging.mkdir(exist_ok=True)
    try:
        (staging / MANIFEST_FILE).unlink(missing_ok=True)
        (staging / MANIFEST_FILE).hardlink_to(run.run_dir / MANIFEST_FILE)
        rclone.upload(staging, run.remote_dir)
    finally:
        (staging / MANIFEST_FILE).unlink(missing_ok=True)
        staging.rmdir()


def report_body(run: RunContext, items: Sequence[BackupItem], timings: dict) -> str:
    """The text of the success report: one line per source with size and duration, then the totals."""
    lines = [f"Backup {run.run_id} verified and uploaded to {run.remote_dir or 'no remote'}."]
    for item in items:
        lines.append(
            f"- {item.source} ({item.kind}): {(item.size_bytes or 0) / 2**20:.1f} MiB in {item.seconds or 0:.1f} s; {item.detail or ''}"
        )
    lines.append(
        f"Total {sum(i.size_bytes or 0 for i in items) / 2**20:.1f} MiB; dump {timings.get('dump', 0):.1f} s, "
        f"upload {timings.get('upload', 0):.1f} s, verification {timings.get('verify', 0):.1f} s."
    )
    return "\n".join(lines)


def failure_body(run: RunContext, error: str, local_kept: bool) -> str:
    """The text of the failure alert: what failed, where the local copy is, what to do."""
    kept = f"The local copy is kept in {run.run_dir}." if local_kept else "Nothing usable was captured."
    return (
        f"Backup {run.run_id} failed: {mask_secrets(error)}\n{kept} Nothing from this run is marked good on the remote.\n"
        f"Fix the cause, then run `vigia backup run`; `vigia backup list` shows the newest verified backup."
    )


def restore_failure_body(source: str, run_id: str, error: str) -> str:
    """The text of a failed restore's alert: what failed, and where the details are."""
    return (
        f"Restore of {source} from {run_id} failed: {mask_secrets(error)}\nThe restores table and the restore run's log have the details."
    )


def _tool_versions(kinds: set[str]) -> dict[str, str]:
    versions = {}
    probes = {"pg_dump": ("postgres", "store"), "zstd": ("postgres", "files", "store"), "tar": ("files",)}
    for tool, wanted in probes.items():
        if kinds & set(wanted):
            versions[tool] = _safe(lambda t=tool: pg_dump.tool_version(t))
    if "redis" in kinds:
        versions["redis-cli"] = _safe(redis_dump.redis_version)
    versions["rclone"] = _safe(rclone.version)
    return versions


def _safe(read) -> str:
    try:
        return read()
    except Exception as error:  # a version is informative only
        return f"unknown ({type(error).__name__})"
