"""Prefect's server as `vigia up` runs it on SQLite: overlapping writes wait their turn instead of failing with 503.

Plain `prefect server start` on SQLite answered 35 of 40 simultaneous flow-run creations with 503
"database is locked" (measured), and Prefect's client then waits 2, 4, 8 s before it tries again:
that was most of a voice-note burst's delay.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from deployments.parts import Ports, platform_urls, prefect_server_part
from deployments.settings import load_settings
from deployments.supervisor import Supervisor
from tests.fakes.server import free_port

WRITERS = 25


@contextmanager
def prefect_server_part_running(home: Path, database_url: str | None = None, seconds: float = 240) -> Iterator[str]:
    """The `prefect-server` part as `vigia up` runs it, under a scratch VIGIA_HOME (SQLite there, or `database_url`); yields its API URL."""
    settings = load_settings({"VIGIA_HOME": str(home)}, env_file=None)
    ports = Ports(prefect=free_port())
    urls = platform_urls(settings, ports)
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect"), "DO_NOT_TRACK": "1", "PREFECT_SERVER_UI_ENABLED": "false"}
    supervisor = Supervisor([prefect_server_part(settings, ports, urls, database_url)], env, home / "logs", say=print, alert=print)
    try:
        deadline = time.monotonic() + seconds
        while not supervisor.is_ready("prefect-server"):
            assert time.monotonic() < deadline, f"the Prefect server did not answer within {seconds:.0f} s"
            supervisor.step()
            time.sleep(0.25)
        yield urls.prefect_api
    finally:
        supervisor.stop()


@pytest.fixture
def sqlite_prefect_server(tmp_path):
    with prefect_server_part_running(tmp_path, seconds=120) as api_url:
        yield api_url


async def _write_a_run(client: httpx.AsyncClient, flow_id: str, number: int) -> list[int]:
    """What a transcriber's batch writes: create a run, move it through Running to Completed, log and record an artifact."""
    created = await client.post("/flow_runs/", json={"flow_id": flow_id, "name": f"burst-{number}", "state": {"type": "PENDING"}})
    if created.status_code != 201:
        return [created.status_code]
    run_id = created.json()["id"]
    answers = [
        await client.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "RUNNING"}}),
        await client.post("/v2/concurrency_limits/increment", json={"names": ["burst-rate"], "slots": 1, "mode": "rate_limit"}),
        await client.post("/artifacts/", json={"type": "table", "data": [[number]], "flow_run_id": run_id}),
        await client.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "COMPLETED"}}),
    ]
    return [201, *(answer.status_code for answer in answers)]


def test_simultaneous_writers_on_sqlite_wait_their_turn_instead_of_meeting_503(sqlite_prefect_server):
    async def burst() -> list[list[int]]:
        async with httpx.AsyncClient(base_url=sqlite_prefect_server, timeout=60) as client:
            flow_id = (await client.post("/flows/", json={"name": "burst"})).json()["id"]
            limit = {"name": "burst-rate", "limit": 100_000, "slot_decay_per_second": 1000}
            assert (await client.post("/v2/concurrency_limits/", json=limit)).status_code == 201
            return await asyncio.gather(*(_write_a_run(client, flow_id, number) for number in range(WRITERS)))

    answers = asyncio.run(burst())
    refused = [codes for codes in answers if any(code >= 500 for code in codes)]
    assert not refused, f"{len(refused)} of {WRITERS} writers met a 5xx (503: database is locked): {refused[:5]}"
    assert all(codes[0] == 201 and codes[1] in (200, 201) and codes[-1] in (200, 201) for codes in answers)
