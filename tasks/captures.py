"""Capturing each source into one checksummed file, and verifying that file by restoring it into a scratch copy."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.backup_plan import BackupSource
from clients import archive, pg_dump, pg_inventory, redis_dump, sqlite
from tasks.alerts import run_logger

EXTENSIONS = {"postgres": "pgdump.zst", "redis": "rdb", "files": "tar.zst", "sqlite": "sqlite.zst"}


class VerificationFailed(Exception):
    """A restored copy does not match what was captured."""


@dataclass(frozen=True)
class Capture:
    """One captured source: its file, size, SHA-256, duration, and what verification must find."""

    source: str
    kind: str
    file_name: str
    size_bytes: int
    sha256: str
    seconds: float
    expected: dict = field(default_factory=dict)


def store_format(source: BackupSource) -> str:
    """How a source is dumped: `postgres`, `redis`, `files`, or `sqlite` (a store on SQLite)."""
    if source.kind == "store":
        return "sqlite" if source.url.get_secret_value().startswith("sqlite") else "postgres"
    return source.kind


def file_name(source: BackupSource) -> str:
    """The file a source is captured in: `<name>.<ext>`."""
    return f"{source.name}.{EXTENSIONS[store_format(source)]}"


def progress_logger(step: str, total_bytes: int | None) -> Callable[[int], None]:
    """Return an `on_bytes` callback that logs every ~10 % (or every 100 MiB when the total is unknown)."""
    logger = run_logger()
    state = {"done": 0, "next": 0.1}

    def on_bytes(count: int) -> None:
        state["done"] += count
        if total_bytes:
            share = state["done"] / total_bytes
            if share >= state["next"]:
                logger.info("%s: %d%% (%.1f MiB)", step, min(100, int(share * 100)), state["done"] / 2**20)
                state["next"] = int(share * 10) / 10 + 0.1
        elif state["done"] >= state["next"] * 1000 * 2**20:
            logger.info("%s: %.0f MiB", step, state["done"] / 2**20)
            state["next"] += 0.1

    return on_bytes


@task(name="capture-source", cache_policy=NO_CACHE)
def capture_source(source: BackupSource, run_dir: Path, timeout_seconds: float) -> Capture:
    """Dump one source into `run_dir` (written as .partial, renamed on success), hashing while writing.

    Raises:
        ClientError: naming the tool or system that failed.
    """
    started = time.perf_counter()
    kind = store_format(source)
    output = run_dir / file_name(source)
    on_bytes = progress_logger(f"{source.name} dump", None)
    if kind == "postgres":
        url = source.url.get_secret_value()
        with pg_inventory.exported_snapshot(url) as (snapshot, connection):
            result = pg_dump.dump_database(url, output, snapshot=snapshot, timeout=timeout_seconds, on_bytes=on_bytes)
            expected = pg_inventory.read_inventory(connection).as_dict()
        expected["server_version"] = pg_inventory.server_version(url)
        size, digest = result.size_bytes, result.sha256
    elif kind == "redis":
        url = source.url.get_secret_value()
        before = sum(redis_dump.key_counts(url).values())
        size, digest = redis_dump.fetch_rdb(url, output, timeout=timeout_seconds)
        after = sum(redis_dump.key_counts(url).values())
        expected = {"keys_before": before, "keys_after": after, "keys_in_file": redis_dump.check_rdb(output)}
    elif kind == "files":
        paths = [Path(path) for path in source.paths]
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise FileNotFoundError(f"{source.name}: {', '.join(missing)} no longer exist; fix VIGIA_BACKUP_PATHS")
        expected = {"entries": archive.count_entries(paths), "paths": [str(path.resolve()) for path in paths]}
        result = archive.archive_paths(paths, output, timeout=timeout_seconds, on_bytes=on_bytes)
        size, digest = result.size_bytes, result.sha256
    else:
        size, digest, expected = _capture_sqlite(source, run_dir, output, timeout_seconds)
    capture = Capture(source.name, source.kind, output.name, size, digest, time.perf_counter() - started, expected)
    run_logger().info("%s (%s) dumped in %.1f s: %s, %.1f MiB", source.name, kind, capture.seconds, output.name, size / 2**20)
    return capture


@task(name="verify-capture", cache_policy=NO_CACHE)
def verify_capture(source: BackupSource, capture: Capture, run_dir: Path, timeout_seconds: float) -> str:
    """Restore a capture into a scratch copy, compare it with what was captured, drop the copy; return the verdict.

    Raises:
        VerificationFailed: naming every difference.
        ClientError: when the scratch copy cannot be made.
    """
    started = time.perf_counter()
    path = run_dir / capture.file_name
    kind = store_format(source)
    if kind == "postgres":
        detail = _verify_postgres(source, capture, path, timeout_seconds)
    elif kind == "redis":
        detail = _verify_redis(capture, path, run_dir, timeout_seconds)
    elif kind == "files":
        entries = archive.list_archive(path, timeout=timeout_seconds)
        if entries != capture.expected["entries"]:
            raise VerificationFailed(f"{source.name}: the archive lists {entries} entries, {capture.expected['entries']} were archived")
        detail = f"archive lists all {entries} entries"
    else:
        detail = _verify_sqlite(capture, path, run_dir, timeout_seconds)
    run_logger().info("%s verified in %.1f s: %s", source.name, time.perf_counter() - started, detail)
    return detail


def _verify_postgres(source: BackupSource, capture: Capture, path: Path, timeout: float) -> str:
    url = source.url.get_secret_value()
    scratch = pg_inventory.create_scratch_database(url, source.name)
    try:
        pg_dump.restore_database(
            path,
            url,
            database=scratch,
            scratch=True,
            timeout=timeout,
            on_bytes=progress_logger(f"{source.name} scratch restore", capture.size_bytes),
        )
        restored = pg_inventory.inventory(pg_inventory.url_for(url, scratch))
    finally:
        pg_inventory.drop_database(url, scratch)
    expected = pg_inventory.Inventory(
        tables=capture.expected["tables"],
        views=tuple(capture.expected["views"]),
        sequences=tuple(capture.expected["sequences"]),
        large_objects=capture.expected["large_objects"],
    )
    differences = expected.differences(restored)
    if differences:
        raise VerificationFailed(f"{source.name}: the restored copy differs: {'; '.join(differences[:5])}")
    rows = sum(restored.tables.values())
    return f"restored into a scratch database: {len(restored.tables)} tables, {rows} rows, {restored.large_objects} large objects match"


def _verify_redis(capture: Capture, path: Path, run_dir: Path, timeout: float) -> str:
    # Imported here: verification restores through tasks.restores, which imports this module's callers.
    from tasks.redis_verification import RedisVerificationFailed, verify_redis_backup

    try:
        return verify_redis_backup(capture.source, path, run_dir / f".scratch-{capture.source}", capture.expected, timeout=timeout)
    except RedisVerificationFailed as error:
        raise VerificationFailed(str(error)) from error


def _capture_sqlite(source: BackupSource, run_dir: Path, output: Path, timeout: float) -> tuple[int, str, dict]:
    copy = run_dir / f".{source.name}.sqlite"
    try:
        sqlite.backup_database(sqlite_path(source.url.get_secret_value()), copy)
        expected = {"tables": sqlite.table_counts(copy)}
        result = archive.compress_file(copy, output, timeout=timeout)
    finally:
        copy.unlink(missing_ok=True)
    return result.size_bytes, result.sha256, expected


def _verify_sqlite(capture: Capture, path: Path, run_dir: Path, timeout: float) -> str:
    copy = run_dir / f".{capture.source}.verify.sqlite"
    try:
        archive.decompress_file(path, copy, timeout=timeout)
        tables = sqlite.table_counts(copy)
    finally:
        copy.unlink(missing_ok=True)
    if tables != capture.expected["tables"]:
        raise VerificationFailed(f"{capture.source}: the decompressed store's row counts differ from the copy's")
    return f"decompressed copy passes the integrity check: {len(tables)} tables, {sum(tables.values())} rows match"


def sqlite_path(url: str) -> Path:
    """Return the file of a `sqlite:///PATH` URL."""
    return Path(url.split("?", 1)[0].removeprefix("sqlite:///"))
