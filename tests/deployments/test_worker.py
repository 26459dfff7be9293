"""`vigia worker`: a process worker on pool vigia takes a deployment's run, runs it from VIGIA_CHECKOUT (prefect.yaml's
pull step) with Vigia's environment, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate

from .processes import processes_tagged
from .test_up import wait_for

ROOT = Path(__file__).resolve().parents[2]
PULL_FROM_CHECKOUT = [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $VIGIA_CHECKOUT }}"}}]


async def deploy_where_it_ran(queue: str, pool: str = "vigia") -> str:
    """Create the pool (if missing) and a deployment of tests/deployments/worker_flows.py on `queue`; return its id."""
    async with get_client() as client:
        try:
            await client.read_work_pool(pool)
        except Exception:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = await client.create_flow_from_name("where-it-ran")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name=f"test-{queue}",
            work_pool_name=pool,
            work_queue_name=queue,
            entrypoint="tests/deployments/worker_flows.py:where_it_ran",
            pull_steps=PULL_FROM_CHECKOUT,
            tags=["vigia"],  # as prefect.yaml's: the zombie sweep closes only Vigia's runs
        )
        return str(deployment_id)


async def start_run(deployment_id: str, out: Path, seconds: float = 0.0) -> str:
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment_id, parameters={"out": str(out), "seconds": seconds})
        return str(run.id)


async def run_state(run_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state.type.value


def start_worker(api_url: str, home: Path, queue: str, tag: str, name: str, **environ: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"PREFECT_API_URL": api_url, "VIGIA_HOME": str(home), "VIGIA_TEST_TAG": tag, "PREFECT_WORKER_QUERY_SECONDS": "1"})
    env.update(environ)
    return subprocess.Popen(
        ["vigia", "worker", "--queue", queue, "--name", name],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(300)
def test_vigia_worker_runs_a_deployment_of_pool_vigia_from_the_checkout_with_vigias_environment_and_stops_on_sigterm(
    prefect_server, tmp_path
):
    queue, tag = f"q-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    deployment_id = asyncio.run(deploy_where_it_ran(queue))
    out = tmp_path / "ran.json"
    run_id = asyncio.run(start_run(deployment_id, out))
    worker = start_worker(prefect_server, tmp_path, queue, tag, "test-worker")
    try:
        wait_for(lambda: asyncio.run(run_state(run_id)) == "COMPLETED", 120, "the worker to run the flow", worker)
        seen = json.loads(out.read_text())
        time.sleep(2)  # idle again: the state Prefect's worker ignores SIGTERM in
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
        stop_seconds = time.monotonic() - started
    finally:
        for pid in processes_tagged(tag):
            os.kill(pid, signal.SIGKILL)
    assert (seen["cwd"], seen["VIGIA_CHECKOUT"]) == (str(ROOT), str(ROOT))  # the pull step's {{ $VIGIA_CHECKOUT }}
    assert (seen["VIGIA_HOME"], seen["PREFECT_API_URL"]) == (str(tmp_path), prefect_server)
    assert worker.returncode == 0, stderr
    assert "vigia: stopping the worker (SIGTERM)…" in stderr and "Traceback" not in stderr
    assert stop_seconds < 20, stderr
    assert processes_tagged(tag) == []


def test_vigia_worker_without_a_prefect_server_says_how_to_name_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["VIGIA_HOME"] = str(tmp_path)
    result = subprocess.run(["vigia", "worker"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        f"vigia: no Prefect server known: set PREFECT_API_URL (http://HOST:4200/api), or run `vigia up` on VIGIA_HOME={tmp_path}\n"
    )
