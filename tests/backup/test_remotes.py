"""Every kind of remote gets a hash-checked copy: SFTP (md5/sha1 server-side), crypt over WebDAV; a tampered file is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest

from flows.backup import backup
from store.backups import get_run
from store.database import open_session
from store.history import restores_between
from tasks.restores import RestoreRefused, restore_item
from tests.backup.conftest import make_plan, served_files


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["vigia", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("remote", ["bksftp:vigia", "bkcrypt:vigia"])
def test_files_and_store_go_to_sftp_and_crypt_and_come_back(remote, remotes, files_to_back_up, sqlite_store_url, save_blocks, tmp_path):
    plan = make_plan(tmp_path, remote, sqlite_store_url, files=files_to_back_up)
    save_blocks(plan, sqlite_store_url)

    run_id = backup().run_id

    if remote.startswith("bksftp"):
        assert served_files(remotes["bksftp"] / "vigia" / run_id) == ["SHA256SUMS", "files.tar.zst", "manifest.json", "store.sqlite.zst"]
    else:  # crypt: names and contents are encrypted on the WebDAV server
        stored = served_files(remotes["bkdav"] / "encrypted")
        assert len(stored) == 4 and not any("files" in name or "manifest" in name for name in stored)
    shutil.rmtree(Path(plan.local_dir) / run_id)
    destination = tmp_path / "restored"
    outcome = restore_item.fn(plan, sqlite_store_url, run_id, "files", str(destination))
    restored = destination / str(files_to_back_up.resolve()).lstrip("/")
    assert (restored / "nested" / "bot.json").read_text() == '{"name": "bot"}\n'
    assert outcome.target == str(destination)


def test_backup_verify_catches_a_file_tampered_on_the_remote(remotes, files_to_back_up, sqlite_store_url, save_blocks, tmp_path):
    plan = make_plan(tmp_path, "bkdav:tamper", sqlite_store_url, files=files_to_back_up)
    save_blocks(plan, sqlite_store_url)
    run_id = backup().run_id
    env = {"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_BACKUP_REMOTE": "bkdav:tamper"}

    good = vigia("backup", "verify", run_id, env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == [
        "OK      local files.tar.zst: SHA-256 matches",
        "OK      local store.sqlite.zst: SHA-256 matches",
        f"OK      remote bkdav:tamper/{run_id}: all 2 files match their SHA-256",
    ]

    served = remotes["bkdav"] / "tamper" / run_id / "files.tar.zst"
    served.write_bytes(served.read_bytes()[:-1] + b"\x00")
    bad = vigia("backup", "verify", run_id, env=env)
    assert bad.returncode == 1
    assert "FAILED  remote" in bad.stdout and "files.tar.zst" in bad.stdout
    assert bad.stderr == f"vigia: backup {run_id} does not match its checksums; restore from another run\n"

    shutil.rmtree(Path(plan.local_dir) / run_id)
    with pytest.raises(RestoreRefused, match="does not match the SHA-256 recorded at backup time"):
        restore_item.fn(plan, sqlite_store_url, run_id, "files", str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_restore_refuses_a_database_that_is_not_empty_unless_forced(remotes, source_database, sqlite_store_url, save_blocks, tmp_path):
    plan = make_plan(tmp_path, "bkdav:force", sqlite_store_url, postgres=source_database)
    save_blocks(plan, sqlite_store_url)
    run_id = backup(prune=False).run_id
    with psycopg.connect(source_database, autocommit=True) as connection:
        connection.execute('DELETE FROM "Sales"."CustomerOrders" WHERE "Id" > 120')
    env = {
        "VIGIA_HOME": str(tmp_path),
        "VIGIA_DATABASE_URL": sqlite_store_url,
        "VIGIA_BACKUP_POSTGRES": source_database,
        "VIGIA_BACKUP_REMOTE": "bkdav:force",
    }

    refused = vigia("restore", run_id, "--source", "postgres-app", "--to", source_database, env=env)
    assert refused.returncode == 1
    name = source_database.rsplit("/", 1)[1]
    assert refused.stderr == f"vigia: database {name} on {source_database} is not empty; add --force to overwrite what the backup holds\n"

    forced = vigia("restore", run_id, "--source", "postgres-app", "--to", source_database, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith(f"restored postgres-app of {run_id} into {source_database} in ")
    assert "(within the 30-minute RTO): 2 tables, 650 rows, 1 large objects" in forced.stdout
    with psycopg.connect(source_database) as connection:
        assert connection.execute('SELECT count(*) FROM "Sales"."CustomerOrders"').fetchone()[0] == 250
    with open_session(sqlite_store_url) as session:
        assert get_run(session, run_id).status == "verified"
        stored = restores_between(session, datetime(2000, 1, 1, tzinfo=timezone.utc), datetime.now(timezone.utc))
    # The refusal wrote nothing: the dashboard and report must not count it as a restore, nor time it against the RTO.
    assert sorted(r.status for r in stored) == ["refused", "restored"]
