"""A Redis backup of a non-zero database, verified by restoring it, and restored with `vigia restore` as a user runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis
from prefect.blocks.system import Secret
from sqlalchemy import text

from clients.redis_dump import RedisDumpError
from flows.backup import backup
from flows.restore import restore
from store.database import open_session
from tests.backup.conftest import make_plan, start_redis
from tests.backup.test_redis_restore import SHARED_REDIS, SHARED_TARGET_DB, fill_every_type, read_everything


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["vigia", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=180)


def test_a_backup_of_redis_db_5_is_verified_per_database_and_vigia_restore_moves_every_key_into_db_13(
    sqlite_store_url,
    save_blocks,
    redis_url,
    tmp_path,
):
    (tmp_path / "source").mkdir()
    (tmp_path / "evicting").mkdir()
    source_process, source_port = start_redis(tmp_path / "source")
    evicting_process, evicting_port = start_redis(tmp_path / "evicting", "--maxmemory", "3mb", "--maxmemory-policy", "allkeys-random")
    source_url = f"redis://127.0.0.1:{source_port}/5"
    try:
        with redis.Redis.from_url(source_url) as source:
            fill_every_type(source, "db5")
            source.mset({f"blob:{n}": "x" * 20_000 for n in range(400)})
            expected = read_everything(source)
        save_blocks(make_plan(tmp_path, None, sqlite_store_url, redis=source_url), sqlite_store_url)

        result = backup(prune=False)

        assert result.status == "verified"
        with open_session(sqlite_store_url) as session:
            detail = session.execute(text("SELECT detail FROM backup_items WHERE source = 'redis'")).scalar_one()
        assert detail == (
            "restored into a scratch redis-server as `vigia restore` does: 407 keys match (db 5 407); "
            "values and TTLs match for 1 hash, 1 list, 1 set, 1 stream, 20 string, 1 zset"
        )

        with redis.Redis.from_url(redis_url) as other:
            other.set("someone-else", "keeps this")  # another database of the target server holds keys
        env = {"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_BACKUP_REDIS": source_url}
        with redis.Redis.from_url(f"{SHARED_REDIS}/{SHARED_TARGET_DB}") as target:
            target.flushdb()
            try:
                restored = vigia("restore", result.run_id, "--source", "redis", "--to", f"{SHARED_REDIS}/{SHARED_TARGET_DB}", env=env)
                assert restored.returncode == 0, restored.stderr
                assert f"407 keys moved with DUMP/RESTORE, TTLs kept (db 5 → db {SHARED_TARGET_DB}: 407)" in restored.stdout
                assert read_everything(target) == expected
            finally:
                target.flushdb()

        short = vigia("restore", result.run_id, "--source", "redis", "--to", f"redis://127.0.0.1:{evicting_port}/0", env=env)
        assert short.returncode == 1
        assert short.stderr.startswith(f"vigia: the restore into redis://127.0.0.1:{evicting_port}/0 is incomplete: db 0 holds ")
        assert short.stderr.count("\n") == 1
        Secret(value=f"redis://127.0.0.1:{evicting_port}/1").save("evicting-target", overwrite=True)
        with pytest.raises(RedisDumpError, match=r"is incomplete: db 1 holds \d+ keys, 407 were written"):
            restore(run_id=result.run_id, source="redis", target="secret/evicting-target")
        with open_session(sqlite_store_url) as session:
            rows = session.execute(text("SELECT status FROM restores ORDER BY id")).scalars().all()
            alerts = session.execute(text("SELECT severity, title FROM alerts WHERE title LIKE '%restore%'")).all()
        assert rows == ["restored", "failed", "failed"]
        assert [tuple(alert) for alert in alerts] == [("critical", f"[CRITICAL] restore of redis from {result.run_id} failed")]
    finally:
        for process in (source_process, evicting_process):
            process.terminate()
            process.wait(timeout=10)
    assert not list(Path(tmp_path / "backups").glob("*/.scratch-*"))
