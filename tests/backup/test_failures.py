"""Failures a backup must survive: a killed dump, an unreachable remote, a second run, a Redis user without `sync`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import text

from clients import commands
from clients.commands import CommandFailed, Stage
from clients.lock import LockHeld, exclusive
from clients.redis_dump import RedisDumpError, fetch_rdb
from flows.backup import backup
from store.backups import list_runs
from store.database import get_engine, open_session
from tasks.backups import BackupFailed
from tests.backup.conftest import make_plan, start_redis
from tests.conftest import POSTGRES_ADMIN


def stored_alerts(store_url: str) -> list[tuple[str, str, str]]:
    with get_engine(store_url).connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT severity, title, body FROM alerts ORDER BY id"))]


def kill_pg_dump_when_it_waits(database: str, stop: threading.Event) -> None:
    """Hold an exclusive lock so pg_dump waits, then terminate its backend."""
    with (
        psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{database}") as locker,
        psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin,
    ):
        locker.execute("LOCK TABLE public.execution_data IN ACCESS EXCLUSIVE MODE")
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name = 'pg_dump' AND wait_event_type = 'Lock'",
                (database,),
            ).fetchall()
            if killed:
                return
            time.sleep(0.05)


def test_a_postgres_backend_killed_mid_dump_fails_the_run_uploads_nothing_and_alerts_critical(
    remotes,
    source_database,
    sqlite_store_url,
    save_blocks,
    tmp_path,
):
    plan = make_plan(tmp_path, "bkdav:killed", sqlite_store_url, postgres=source_database)
    save_blocks(plan, sqlite_store_url)
    stop = threading.Event()
    killer = threading.Thread(target=kill_pg_dump_when_it_waits, args=(source_database.rsplit("/", 1)[1], stop))
    killer.start()
    try:
        with pytest.raises(BackupFailed, match=r"postgres-app: pg_dump failed \(exit 1\): .*(terminat|server closed)"):
            backup()
    finally:
        stop.set()
        killer.join()
    with open_session(sqlite_store_url) as session:
        [run] = list_runs(session, with_items=True)
    assert (run.status, run.verified) == ("failed", False)
    assert "pg_dump failed" in run.error
    postgres_item = next(item for item in run.items if item.source == "postgres-app")
    assert (postgres_item.sha256, postgres_item.file_name) == (None, None)
    assert not (remotes["bkdav"] / "killed").exists()
    assert sorted(path.name for path in Path(run.local_dir).iterdir()) == ["SHA256SUMS", "manifest.json", "store.sqlite.zst"]
    [(severity, title, body)] = stored_alerts(sqlite_store_url)
    assert (severity, title) == ("critical", f"[CRITICAL] backup {run.id} failed")
    assert "Nothing from this run is marked good on the remote" in body


def test_an_unreachable_remote_keeps_the_local_copy_and_alerts_critical_with_the_real_reason(
    remotes,
    sqlite_store_url,
    save_blocks,
    files_to_back_up,
    tmp_path,
):
    plan = make_plan(tmp_path, "bkdead:vigia", sqlite_store_url, files=files_to_back_up)
    save_blocks(plan, sqlite_store_url)
    with pytest.raises(BackupFailed, match=r"upload to bkdead:vigia/\S+ failed.*connection refused"):
        backup()
    with open_session(sqlite_store_url) as session:
        [run] = list_runs(session)
    assert run.status == "failed" and "the local copy is kept in" in run.error
    assert sorted(path.name for path in Path(run.local_dir).iterdir()) == [
        "SHA256SUMS",
        "files.tar.zst",
        "manifest.json",
        "store.sqlite.zst",
    ]
    [(severity, title, body)] = stored_alerts(sqlite_store_url)
    assert severity == "critical" and "connection refused" in body and f"The local copy is kept in {run.local_dir}" in body


def test_a_second_backup_while_one_runs_fails_fast_saying_so(remotes, sqlite_store_url, save_blocks, tmp_path):
    plan = make_plan(tmp_path, "bkdav:locked", sqlite_store_url)
    save_blocks(plan, sqlite_store_url)
    started = time.monotonic()
    with exclusive(Path(plan.local_dir) / ".lock", "backup"):
        with pytest.raises(LockHeld, match=r"^another backup is running \(pid \d+ since .* UTC\); this one stops"):
            backup()
    assert time.monotonic() - started < 10
    with open_session(sqlite_store_url) as session:
        assert list_runs(session) == []


def test_a_redis_user_without_the_sync_permission_is_told_so(tmp_path):
    process, port = start_redis(tmp_path)
    try:
        admin = redis.Redis(port=port)
        admin.execute_command("ACL", "SETUSER", "nosync", "on", ">nosync-pass-1", "~*", "+@all", "-sync", "-psync")
        admin.close()
        with pytest.raises(RedisDumpError, match=r"lacks the `sync` permission") as caught:
            fetch_rdb(f"redis://nosync:nosync-pass-1@127.0.0.1:{port}/0", tmp_path / "out.rdb", timeout=30)
        assert "nosync-pass-1" not in str(caught.value)
        assert list(tmp_path.glob("out.rdb*")) == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_pipeline_names_a_failed_first_stage_even_when_the_last_one_succeeds(tmp_path):
    output = tmp_path / "dump.zst"
    stages = [
        Stage(("sh", "-c", "echo partial data; echo 'pg_dump: error: connection lost' >&2; exit 3"), commands.environment()),
        Stage(("zstd", "-q", "-c"), commands.environment()),
    ]
    with pytest.raises(CommandFailed, match=r"^sh failed \(exit 3\): pg_dump: error: connection lost$"):
        commands.run_pipeline(stages, timeout=30, output=output)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_tool_says_which_package_to_install(tmp_path):
    with pytest.raises(
        commands.ToolMissing, match=r"^no-such-dumper is not installed: install it with `apt-get install -y no-such-dumper`"
    ):
        commands.run_pipeline([Stage(("no-such-dumper",), commands.environment())], timeout=5, output=tmp_path / "x")
