"""A finished backup and a done restore show in Prefect's Event Feed (`vigia.backup.verified`, `vigia.restore.done`)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flows.backup import backup
from flows.restore import restore
from tasks.backups import BackupFailed
from tests.backup.conftest import make_plan
from tests.fakes.server import free_port
from tests.prefect_events import wait_for_events


def test_a_verified_backup_and_its_restore_are_events_of_their_own_resources(sqlite_store_url, save_blocks, tmp_path):
    started = datetime.now(timezone.utc)
    save_blocks(make_plan(tmp_path, None, sqlite_store_url), sqlite_store_url)
    result = backup(prune=False)
    target = tmp_path / "restored" / "vigia.db"
    outcome = restore(run_id=result.run_id, source="store", target=str(target))
    [verified] = wait_for_events(f"vigia.backup.{result.run_id}", ["vigia.backup.verified"], started)
    assert verified.payload == {"status": "verified", "size_bytes": result.size_bytes, "sources": ["store"]}
    [done] = wait_for_events(f"vigia.restore.{result.run_id}.store", ["vigia.restore.done"], started)
    assert done.payload == {
        "backup_run": result.run_id,
        "source": "store",
        "target": str(target),
        "seconds": round(outcome.seconds, 1),
        "within_rto": True,
    }


def test_a_failed_backup_is_a_vigia_backup_failed_event_with_its_reason(sqlite_store_url, save_blocks, tmp_path):
    started = datetime.now(timezone.utc)
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/gone"
    save_blocks(make_plan(tmp_path, None, sqlite_store_url, postgres=closed), sqlite_store_url)
    with pytest.raises(BackupFailed) as failure:
        backup(prune=False)
    run_id = str(failure.value).split()[1]
    [failed] = wait_for_events(f"vigia.backup.{run_id}", ["vigia.backup.failed"], started)
    assert (failed.payload["status"], failed.payload["sources"]) == ("failed", ["postgres-app", "store"])
    assert failed.payload["error"].startswith("postgres-app: cannot connect: ")
