"""A backup is a round trip: dump, upload, verify, then drop or empty the sources and restore them from the remote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import redis
from sqlalchemy import text

from flows.backup import backup
from flows.restore import restore
from store.backups import get_run
from store.database import get_engine, open_session
from store.sla import backup_freshness
from tasks.restores import restore_item
from tests.backup.conftest import make_plan, served_files


def test_backup_of_postgres_redis_files_and_store_to_webdav_restores_everything_from_the_remote(
    remotes,
    source_database,
    redis_pair,
    files_to_back_up,
    sqlite_store_url,
    save_blocks,
    tmp_path,
):
    redis_source, redis_target = redis_pair
    plan = make_plan(tmp_path, "bkdav:vigia", sqlite_store_url, postgres=source_database, redis=redis_source, files=files_to_back_up)
    save_blocks(plan, sqlite_store_url)

    result = backup()

    assert result.status == "verified"
    run_id = result.run_id
    with open_session(sqlite_store_url) as session:
        run = get_run(session, run_id)
        assert backup_freshness(session).run_id == run_id
    assert (run.status, run.verified, run.remote) == ("verified", True, f"bkdav:vigia/{run_id}")
    assert {item.source: item.verified for item in run.items} == {"postgres-app": True, "redis": True, "files": True, "store": True}
    postgres_item = next(item for item in run.items if item.source == "postgres-app")
    assert "2 tables, 650 rows, 1 large objects match" in postgres_item.detail
    assert served_files(remotes["bkdav"] / "vigia" / run_id) == [
        "SHA256SUMS",
        "files.tar.zst",
        "manifest.json",
        "postgres-app.pgdump.zst",
        "redis.rdb",
        "store.sqlite.zst",
    ]
    manifest = json.loads((remotes["bkdav"] / "vigia" / run_id / "manifest.json").read_text())
    assert (manifest["status"], manifest["verified"]) == ("verified", True)
    assert manifest["items"][0]["captured"]["tables"]['"Sales"."CustomerOrders"'] == 250
    assert {"pg_dump", "zstd", "tar", "redis-cli", "rclone"} <= set(manifest["tools"])
    with get_engine(sqlite_store_url).connect() as connection:
        alerts = connection.execute(text("SELECT severity, title, body FROM alerts")).all()
    assert [(severity, title) for severity, title, _ in alerts] == [("report", f"[REPORT] backup {run_id} verified")]
    assert "postgres-app (postgres):" in alerts[0].body and "upload" in alerts[0].body

    # Lose the local copies and the sources; everything comes back from the remote.
    shutil.rmtree(Path(plan.local_dir) / run_id)
    with psycopg.connect(source_database, autocommit=True) as connection:
        connection.execute(
            'DROP SCHEMA "Sales" CASCADE; DROP TABLE public.execution_data; SELECT lo_unlink(oid) FROM pg_largeobject_metadata'
        )
    outcome = restore(run_id=run_id, source="postgres-app", force=False)
    assert outcome.seconds < 60
    with psycopg.connect(source_database) as connection:
        assert connection.execute('SELECT count(*), max("Id") FROM "Sales"."CustomerOrders"').fetchone() == (250, 349)
        assert connection.execute("""SELECT nextval('"Sales"."Order_Seq"')""").fetchone()[0] == 350
        assert connection.execute('SELECT count(*) FROM "Sales"."BigOrders"').fetchone()[0] == 49
        oid = connection.execute('SELECT attachment FROM "Sales"."CustomerOrders" WHERE "Id" = 100').fetchone()[0]
        assert connection.execute("SELECT convert_from(lo_get(%s), 'UTF8')", (oid,)).fetchone()[0] == "the large object"

    restore_item.fn(plan, sqlite_store_url, run_id, "redis", redis_target)
    target = redis.Redis.from_url(redis_target, decode_responses=True)
    assert target.dbsize() == 52
    assert target.hgetall("hash:user") == {"name": "Ana", "phone": "+5511999990000"}
    assert target.get("string:7") == "value 7"
    assert 3500 < target.ttl("ttl:session") <= 3600
    assert target.ttl("string:7") == -1

    destination = tmp_path / "restored-files"
    restore_item.fn(plan, sqlite_store_url, run_id, "files", str(destination))
    restored = destination / str(files_to_back_up.resolve()).lstrip("/")
    assert (restored / ".env").read_text() == "GROQ_API_KEY=gsk_example\n"
    assert (restored / "nested" / "bot.json").read_text() == '{"name": "bot"}\n'
    with open_session(sqlite_store_url) as session:
        rows = session.execute(text("SELECT source, status FROM restores ORDER BY id")).all()
    assert [tuple(row) for row in rows] == [("postgres-app", "restored"), ("redis", "restored"), ("files", "restored")]
