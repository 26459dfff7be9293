"""`vigia backup run` as a user runs it: one line on failure with the real reason, exit 1, the details in the run's log."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
import time

import psycopg

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import BlockDocumentUpdate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.exceptions import ObjectNotFound

from blocks.vigia import VigiaSettings
from store.backups import list_runs
from store.database import open_session
from tests.backup.conftest import make_plan
from tests.conftest import POSTGRES_ADMIN

BIG_TABLE = "CREATE TABLE public.big AS SELECT g, repeat(md5(g::text), 10) AS payload FROM generate_series(1, 300000) g"


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["vigia", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


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
    prefect_server, remotes, source_database, sqlite_store_url, save_blocks, tmp_path,
):
    with psycopg.connect(source_database, autocommit=True) as connection:
        connection.execute(BIG_TABLE)
    save_blocks(make_plan(tmp_path, None, sqlite_store_url, postgres=source_database), sqlite_store_url)
    stop = threading.Event()
    killer = threading.Thread(target=kill_pg_dump_while_it_copies, args=(source_database.rsplit("/", 1)[1], stop))
    killer.start()
    try:
        result = vigia("backup", "run", "--no-prune", env={
            "PREFECT_API_URL": prefect_server, "VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url,
        })
    finally:
        stop.set()
        killer.join()

    assert result.returncode == 1
    with open_session(sqlite_store_url) as session:
        [run] = list_runs(session)
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(
        rf"vigia: backup {run.id} failed: postgres-app: pg_dump failed \(exit 1\): pg_dump: error: Dumping the contents of table "
        r'"big" failed: PQget\w+\(\) failed\.; the server said: '
        r"(terminating connection due to administrator command|server closed the connection unexpectedly)\n",
        result.stderr,
    ), result.stderr
    state, messages = asyncio.run(flow_run_logs(run.flow_run_id))
    assert state == "FAILED"
    assert any("the server said" in message and "Traceback" in message for message in messages)


def test_backup_run_without_a_backup_plan_says_to_run_vigia_setup(prefect_server, sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    asyncio.run(delete_block("backup-plan", "default"))

    result = vigia("backup", "run", env={"PREFECT_API_URL": prefect_server, "VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url})

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "vigia: backup-plan/default does not exist; run `vigia setup` to create it\n"


def test_backup_run_with_an_invalid_backup_plan_names_the_field_without_the_setup_hint(prefect_server, sqlite_store_url, save_blocks, tmp_path):
    save_blocks(make_plan(tmp_path, None, sqlite_store_url), sqlite_store_url)
    asyncio.run(break_block("backup-plan", "default", {"keep_daily": -1}))

    result = vigia("backup", "run", env={"PREFECT_API_URL": prefect_server, "VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url})

    assert result.returncode == 1
    assert result.stderr == (
        "vigia: backup-plan/default is invalid: keep_daily: Input should be greater than or equal to 0; correct it in the Prefect UI (Blocks)\n"
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
