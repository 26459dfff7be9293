"""`vigia backup run` as a user runs it: a run of backup/daily on the platform found from VIGIA_HOME, its summary line,
one line on failure with the real reason and exit 1, the details in the run's log."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time

import httpx
import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.exceptions import ObjectNotFound

from blocks.vigia import VigiaSettings
from store.backups import list_runs
from store.database import open_session
from tests.backup.conftest import make_plan
from tests.conftest import POSTGRES_ADMIN
from tests.served_deployments import record_platform, serving

BIG_TABLE = "CREATE TABLE public.big AS SELECT g, repeat(md5(g::text), 10) AS payload FROM generate_series(1, 300000) g"


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return subprocess.run(["vigia", *args], env={**environ, **env}, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runner(prefect_server, remotes):
    """The deployments served as `vigia up` serves them (after `remotes`, whose rclone settings the runs need)."""
    with serving(prefect_server):
        yield prefect_server


@pytest.fixture
def platform_env(runner, sqlite_store_url, tmp_path) -> dict[str, str]:
    """A platform recorded in this test's VIGIA_HOME; the command gets no PREFECT_API_URL."""
    record_platform(tmp_path, runner)
    return {"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url}


def test_backup_run_is_a_run_of_backup_daily_and_restore_still_works_once_the_platform_is_gone(
    runner,
    platform_env,
    save_blocks,
    files_to_back_up,
    sqlite_store_url,
    tmp_path,
):
    save_blocks(make_plan(tmp_path, None, sqlite_store_url, files=files_to_back_up), sqlite_store_url)

    result = vigia("backup", "run", "--no-prune", env=platform_env)

    assert result.returncode == 0, result.stderr
    with open_session(sqlite_store_url) as session:
        [run] = list_runs(session)
    assert re.fullmatch(rf"backup {run.id} verified: \d+\.\d MiB \(dump \d+\.\d s, verify \d+\.\d s\)\n", result.stdout), result.stdout
    body = {"flow_runs": {"id": {"any_": [run.flow_run_id]}}}
    [flow_run] = httpx.post(f"{runner}/flow_runs/filter", json=body, timeout=10).json()
    deployment = httpx.get(f"{runner}/deployments/{flow_run['deployment_id']}", timeout=10).json()
    assert (deployment["name"], flow_run["parameters"]) == ("daily", {"verify": True, "prune": False})
    assert "Traceback" not in result.stderr and " | INFO | " not in result.stderr

    (tmp_path / "up.json").unlink()  # the platform stopped: a restore runs here, without Prefect
    restored = vigia("restore", run.id, "--source", "files", "--to", str(tmp_path / "restored"), env=platform_env)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith(f"restored files of {run.id} into ")
    assert [path.read_text() for path in (tmp_path / "restored").rglob("bot.json")] == ['{"name": "bot"}\n']


async def flow_run_logs(flow_run_id: str) -> tuple[str, list[str]]:
    async with get_client() as client:
        [run] = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    return run.state.type.value, [log.message for log in logs]


def kill_pg_dump_while_it_copies(database: str, stop: threading.Event) -> None:
    """Terminate pg_dump's backend while it streams a table's rows (COPY), as an administrator would."""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name = 'pg_dump' AND query LIKE 'COPY public.big%%'",
                (database,),
            ).fetchall()
            if killed:
                return


def test_a_pg_dump_killed_mid_way_prints_one_line_with_the_servers_reason_and_exits_1(
    platform_env,
    source_database,
    sqlite_store_url,
    save_blocks,
    tmp_path,
):
    with psycopg.connect(source_database, autocommit=True) as connection:
        connection.execute(BIG_TABLE)
    save_blocks(make_plan(tmp_path, None, sqlite_store_url, postgres=source_database), sqlite_store_url)
    stop = threading.Event()
    killer = threading.Thread(target=kill_pg_dump_while_it_copies, args=(source_database.rsplit("/", 1)[1], stop))
    killer.start()
    try:
        result = vigia("backup", "run", "--no-prune", env=platform_env)
    finally:
        stop.set()
        killer.join()

    assert result.returncode == 1
    with open_session(sqlite_store_url) as session:
        [run] = list_runs(session)
    *progress, last = result.stderr.splitlines(keepends=True)
    assert all(line.startswith("vigia: backup/daily: run ") for line in progress), result.stderr
    assert re.fullmatch(
        rf"vigia: backup {run.id} failed: postgres-app: pg_dump failed \(exit 1\): pg_dump: error: Dumping the contents of table "
        r'"big" failed: PQget\w+\(\) failed\.; the server said: '
        r"(terminating connection due to administrator command|server closed the connection unexpectedly)\n",
        last,
    ), result.stderr
    deadline = time.monotonic() + 20  # the server stores a run's logs a moment after the process sent them
    while True:
        state, messages = asyncio.run(flow_run_logs(run.flow_run_id))
        if any("the server said" in message and "Traceback" in message for message in messages) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert state == "FAILED"
    assert any("the server said" in message and "Traceback" in message for message in messages), messages


def test_backup_run_without_a_backup_plan_says_to_run_vigia_setup(platform_env, sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    asyncio.run(delete_block("backup-plan", "default"))

    result = vigia("backup", "run", env=platform_env)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == "vigia: backup-plan/default does not exist; run `vigia setup` to create it"


def test_backup_run_with_an_invalid_backup_plan_names_the_field_without_the_setup_hint(
    platform_env, sqlite_store_url, save_blocks, tmp_path
):
    save_blocks(make_plan(tmp_path, None, sqlite_store_url), sqlite_store_url)
    asyncio.run(break_block("backup-plan", "default", {"keep_daily": -1}))

    result = vigia("backup", "run", env=platform_env)

    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "vigia: backup-plan/default is invalid: keep_daily: Input should be greater than or equal to 0; correct it in the Prefect UI (Blocks)"
    )


async def delete_block(slug: str, name: str) -> None:
    async with get_client() as client:
        try:
            document = await client.read_block_document_by_name(name, block_type_slug=slug)
        except ObjectNotFound:
            return
        await client.delete_block_document(document.id)


async def break_block(slug: str, name: str, values: dict) -> None:
    async with get_client() as client:
        document = await client.read_block_document_by_name(name, block_type_slug=slug, include_secrets=True)
        await client.update_block_document(document.id, BlockDocumentUpdate(data={**document.data, **values}))
