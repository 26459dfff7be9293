"""Restoring one backup item into a target (fetched from the remote when not local, SHA-256 checked),
and checking a run's copies against their recorded checksums."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import task
from prefect.blocks.system import Secret
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import ObjectNotFound

from blocks.backup_plan import BackupPlan
from clients import archive, pg_dump, pg_inventory, rclone, redis_copy, redis_dump
from clients.redaction import mask_secrets, mask_url
from store.backups import BackupItem, BackupRun, finish_restore, get_run, start_restore
from store.database import open_session
from tasks.alerts import run_logger
from tasks.backups import SUMS_FILE
from tasks.captures import sqlite_path

Progress = Callable[[str, int, int | None], None]  # step, units done so far, total (None: unknown)
SECRET_PREFIX = "secret/"
FORMATS = {".pgdump.zst": "postgres", ".rdb": "redis", ".tar.zst": "files", ".sqlite.zst": "sqlite"}


class RestoreRefused(Exception):
    """The restore cannot start as asked (unknown run or source, a non-empty target without --force)."""


@dataclass(frozen=True)
class RestoreOutcome:
    """A finished restore: what went where, and how long it took."""

    run_id: str
    source: str
    target: str  # masked
    seconds: float
    detail: str
    origin: str = ""  # where the copy came from: `the local copy` or `the remote copy on REMOTE`


@task(name="restore-item", cache_policy=NO_CACHE)
def restore_item(
    plan: BackupPlan,
    database_url: str,
    run_id: str,
    source: str,
    target: str | None = None,
    force: bool = False,
    flow_run_id: str | None = None,
    progress: Progress | None = None,
) -> RestoreOutcome:
    """Fetch, check and restore one item of a run; the restore and its duration are stored.

    Raises:
        RestoreRefused: for a request that cannot be met as given.
        ClientError: when a tool, the remote or the target fails.
    """
    with open_session(database_url) as session:
        run = get_run(session, run_id)
    item = _item(run, run_id, source)
    kind = format_of(item.file_name)
    target = resolve_target(plan, target, kind) if target else _default_target(plan, run_id, source, kind)
    shown = mask_url(target)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    with open_session(database_url) as session:
        restore_id = start_restore(session, run_id=run_id, source=source, target=shown, started_at=started_at, flow_run_id=flow_run_id)
    try:
        path, origin = fetch_item(plan, run, item, progress)
        detail = _restore(kind, path, target, force, item, progress, Path(plan.local_dir) / run_id)
    except Exception as error:
        with open_session(database_url) as session:
            finish_restore(
                session,
                restore_id,
                # refused: nothing was written (a target not empty, a damaged copy); no restore to count or time
                status="refused" if isinstance(error, RestoreRefused) else "failed",
                finished_at=datetime.now(timezone.utc),
                seconds=time.perf_counter() - started,
                error=str(error),
            )
        raise
    seconds = time.perf_counter() - started
    with open_session(database_url) as session:
        finish_restore(session, restore_id, status="restored", finished_at=datetime.now(timezone.utc), seconds=seconds)
    run_logger().info("%s of %s restored into %s in %.1f s: %s", source, run_id, shown, seconds, detail)
    return RestoreOutcome(run_id, source, shown, seconds, detail, origin)


def format_of(file_name: str) -> str:
    """Return how a backup file restores (postgres, redis, files, sqlite) from its extension."""
    for suffix, kind in FORMATS.items():
        if file_name.endswith(suffix):
            return kind
    raise RestoreRefused(f"{file_name}: unknown backup format")


def fetch_item(plan: BackupPlan, run: BackupRun, item: BackupItem, progress: Progress | None = None) -> tuple[Path, str]:
    """Return a local copy of an item whose SHA-256 matches the run's record (downloading it when needed), and where it came from.

    Raises:
        RestoreRefused: when neither the local nor the remote copy matches its checksum.
    """
    local = Path(plan.local_dir) / run.id / item.file_name
    if local.is_file() and _matches(local, item, progress):
        return local, "the local copy"
    if not run.remote:
        raise RestoreRefused(f"{item.file_name} of {run.id} is not on this machine (or is damaged) and the run has no remote copy")
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(local.name + ".download")

    def on_progress(sent: int, total: int) -> None:
        if progress:
            progress("download", sent, total or item.size_bytes)

    rclone.download(rclone.join(run.remote, item.file_name), partial, on_progress=on_progress)
    if not _matches(partial, item, None):
        partial.unlink(missing_ok=True)
        raise RestoreRefused(
            f"{item.file_name} on {run.remote} does not match the SHA-256 recorded at backup time; it was damaged or tampered with"
        )
    partial.replace(local)
    return local, f"the remote copy on {mask_secrets(run.remote)}"


def check_backup(plan: BackupPlan, database_url: str, run_id: str) -> list[tuple[str, bool, str]]:
    """Check a run's local files and remote copy against the SHA-256 recorded at backup time.

    Returns (where, ok, detail) per check.

    Raises:
        RestoreRefused: for an unknown run.
    """
    with open_session(database_url) as session:
        run = get_run(session, run_id)
    if run is None:
        raise RestoreRefused(f"no backup run {run_id!r}; `vigia backup list` shows them")
    items = [item for item in run.items if item.sha256]
    results = []
    local_dir = Path(plan.local_dir) / run.id
    for item in items:
        path = local_dir / item.file_name
        if path.is_file():
            ok = _matches(path, item, None)
            results.append((f"local {item.file_name}", ok, "SHA-256 matches" if ok else "SHA-256 DIFFERS"))
    if run.remote and not run.remote_deleted_at:
        with tempfile.TemporaryDirectory(prefix="vigia-verify-") as scratch:
            sums = Path(scratch) / SUMS_FILE
            sums.write_text("".join(f"{item.sha256}  {item.file_name}\n" for item in items))
            problems = rclone.checksum(sums, run.remote)
        detail = f"all {len(items)} files match their SHA-256" if not problems else "; ".join(problems)
        results.append((f"remote {run.remote}", not problems, detail))
    if not results:
        raise RestoreRefused(f"run {run_id} has neither a local nor a remote copy left")
    return results


def _item(run: BackupRun | None, run_id: str, source: str) -> BackupItem:
    if run is None:
        raise RestoreRefused(f"no backup run {run_id!r}; `vigia backup list` shows them")
    for item in run.items:
        if item.source == source:
            if not item.sha256 or not item.file_name:
                raise RestoreRefused(f"{source} was not captured in {run_id} ({item.detail or 'no file'}); pick another run")
            return item
    known = ", ".join(item.source for item in run.items) or "none"
    raise RestoreRefused(f"run {run_id} has no source {source!r}; it has {known}")


def resolve_target(plan: BackupPlan, target: str, kind: str) -> str:
    """Turn a restore target into a URL or folder: `secret/NAME` (a Prefect Secret block holding the URL),
    the name of a source of the plan (its URL), or else the target as given.

    Raises:
        RestoreRefused: for a Secret block that does not exist, or a source without a URL.
    """
    if target.startswith(SECRET_PREFIX):
        return _secret_value(target.removeprefix(SECRET_PREFIX))
    try:
        configured = plan.source(target)
    except KeyError:
        return target
    if configured.url is None:
        raise RestoreRefused(f"source {target} has no URL to restore into; give a folder or another source")
    return _source_target(configured.url.get_secret_value(), kind)


def _secret_value(name: str) -> str:
    try:
        return str(Secret.load(name).get())
    except ValueError as error:
        if isinstance(error.__cause__, ObjectNotFound):
            raise RestoreRefused(f"no Secret block {name!r}: create it with `prefect block create secret` holding the target URL") from None
        raise


def _default_target(plan: BackupPlan, run_id: str, source: str, kind: str) -> str:
    if kind == "files":
        return str(Path(plan.local_dir).parent / "restores" / run_id / source)
    try:
        configured = plan.source(source)
    except KeyError:
        raise RestoreRefused(f"{source} is no longer in the backup plan: say where to restore it with --to") from None
    return _source_target(configured.url.get_secret_value(), kind)


def _source_target(url: str, kind: str) -> str:
    return str(sqlite_path(url)) if kind == "sqlite" else url


def _restore(kind: str, path: Path, target: str, force: bool, item: BackupItem, progress: Progress | None, workdir: Path) -> str:
    def on_bytes_factory(step: str, total: int | None):
        if progress is None:
            return None
        done = {"n": 0}

        def on_bytes(count: int) -> None:
            done["n"] += count
            if progress:
                progress(step, done["n"], total)

        return on_bytes

    if kind == "postgres":
        name = pg_dump.database_name(target)
        exists = pg_inventory.database_exists(target, name)
        occupied = exists and not pg_inventory.is_empty(target)
        _refuse_unless(force, occupied, f"database {name} on {mask_url(target)}")
        if not exists:
            pg_inventory.create_database(target, name)
        pg_dump.restore_database(path, target, clean=occupied, timeout=24 * 3600, on_bytes=on_bytes_factory("restore", item.size_bytes))
        found = pg_inventory.inventory(target)
        return f"{len(found.tables)} tables, {sum(found.tables.values())} rows, {found.large_objects} large objects"
    if kind == "redis":
        copies = restore_redis(
            path, target, force=force, workdir=workdir / f".restore-{item.source}", on_keys=on_bytes_factory("keys", None)
        )
        return redis_detail(copies)
    destination = Path(target)
    if kind == "files":
        _refuse_unless(force, destination.exists() and any(destination.iterdir()), f"folder {destination}")
        archive.extract_archive(path, destination, timeout=24 * 3600, on_bytes=on_bytes_factory("extract", item.size_bytes))
        return f"extracted under {destination}"
    _refuse_unless(force, destination.exists() and destination.stat().st_size > 0, f"store file {destination}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    archive.decompress_file(path, destination, timeout=24 * 3600)
    return f"store written to {destination}"


def restore_redis(
    path: Path,
    target: str,
    *,
    force: bool,
    workdir: Path,
    timeout: float = 600,
    on_keys: Callable[[int], None] | None = None,
    inspect: Callable[[str, list], None] | None = None,
) -> list[redis_copy.DatabaseCopy]:
    """Load an RDB into a scratch `redis-server` and move its databases into `target` with DUMP/RESTORE.

    `vigia restore` and backup verification both restore through here; `inspect(scratch_url, copies)`
    runs before the scratch server stops.

    Raises:
        RestoreRefused: when a target database is not empty and `force` is not set.
        RedisDumpError: when a side refuses, or the target holds fewer keys than the backup.
    """
    with redis_dump.scratch_server(path, workdir, timeout=timeout) as scratch_url:
        held = redis_dump.key_counts(scratch_url)
        plan = redis_copy.destinations(held, redis_dump.parse_url(target).db) if held else {}
        for db in plan.values():
            _refuse_unless(force, redis_copy.count_keys(target, db) > 0, f"Redis {mask_url(redis_dump.url_with_db(target, db))}")
        expired_before = redis_copy.expired_keys(target)
        copies = redis_copy.copy_keys(scratch_url, target, plan, on_keys=on_keys)
        expired = redis_copy.expired_keys(target) - expired_before
        short = [line for copy in copies if (line := _shortfall(copy, redis_copy.count_keys(target, copy.target_db), expired))]
        if short:
            raise redis_dump.RedisDumpError(f"the restore into {mask_url(target)} is incomplete: {'; '.join(short)}")
        if inspect:
            inspect(scratch_url, copies)
    return copies


def _shortfall(copy: redis_copy.DatabaseCopy, found: int, expired_in_target: int) -> str | None:
    # Keys that expired on either side are not missing; keys the target dropped (eviction, a flush) are.
    if copy.complete and found + expired_in_target >= copy.moved:
        return None
    return f"db {copy.target_db} holds {found} keys, {copy.moved} were written of the {copy.held} in the backup's db {copy.source_db}"


def redis_detail(copies: list[redis_copy.DatabaseCopy]) -> str:
    """Say what a Redis restore moved, per database."""
    moved = sum(copy.moved for copy in copies)
    per_db = ", ".join(f"db {copy.source_db} → db {copy.target_db}: {copy.moved}" for copy in copies) or "the backup holds no keys"
    return f"{moved} keys moved with DUMP/RESTORE, TTLs kept ({per_db})"


def _refuse_unless(force: bool, occupied: bool, what: str) -> None:
    if occupied and not force:
        raise RestoreRefused(f"{what} is not empty; add --force to overwrite what the backup holds")


def _matches(path: Path, item: BackupItem, progress: Progress | None) -> bool:
    if progress:
        progress("checksum", 0, item.size_bytes)
    size, digest = archive.file_sha256(path)
    if progress:
        progress("checksum", size, item.size_bytes)
    return digest == item.sha256
