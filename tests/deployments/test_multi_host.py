"""From one machine to several, for real: hosts are network namespaces on one bridge (tests/deployments/netns.py).
`vigia up --only server` runs Prefect on PostgreSQL on one host, `vigia worker` runs on two others, each from its own
checkout; runs of a deployment on pool vigia are taken by the remote workers, and when one worker's link is cut
mid-run the next run completes on the other."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from tests.fakes.server import free_port

from .netns import NamespacesUnavailable, Network, network
from .test_parts import scratch_database  # noqa: F401
from .test_worker import deploy_where_it_ran, run_state, start_run

ROOT = Path(__file__).resolve().parents[2]
AUTH = "vigia:multi-host-s3cret"
VIGIA = shutil.which("vigia") or str(ROOT / ".venv" / "bin" / "vigia")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".ruff_cache", ".pytest_cache")


@pytest.fixture
def lan():
    try:
        with network() as built:
            yield built
    except NamespacesUnavailable as error:
        pytest.skip(f"network namespaces are not permitted here: {error}")


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, auth=tuple(AUTH.split(":")), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


async def online_workers(pool: str = "vigia") -> set[str]:
    async with get_client() as client:
        return {worker.name for worker in await client.read_workers_for_work_pool(pool) if worker.status.value == "ONLINE"}


def base_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "VIGIA_"))}
    env.pop("PREFECT_HOME", None)
    return {**env, "VIGIA_HOME": str(home), "PREFECT_SERVER_API_AUTH_STRING": AUTH, "VIGIA_TIMEZONE": "UTC"}


def start_server_host(lan: Network, tmp_path: Path, database: str) -> tuple[str, str]:
    """`vigia up --only server` on its own host, Prefect on PostgreSQL; return the store's address and the API URL here."""
    server = lan.add_host("srv")
    store = lan.serve_postgres(server, tmp_path / "socat.log")
    env = base_environment(tmp_path / "srv-home")
    env.update(
        {
            "VIGIA_BIND": "0.0.0.0",
            "VIGIA_DASHBOARD_PASSWORD": "x",
            "VIGIA_PREFECT_DATABASE_URL": f"postgresql://postgres@{store}/{database}",
        }
    )
    (tmp_path / "srv-home").mkdir()
    lan.start(server.argv(VIGIA, "up", "--only", "server"), tmp_path / "srv.log", env, cwd=tmp_path / "srv-home")
    api = f"http://{lan.expose(server, 4200, free_port(), tmp_path, tmp_path / 'socat.log')}/api"
    return store, api


def start_worker_host(lan: Network, tmp_path: Path, name: str, server_address: str, store: str) -> Path:
    """A host with its own checkout (a copy of this one) running `vigia worker`; return the checkout."""
    host = lan.add_host(name)
    checkout = tmp_path / f"checkout-{name}"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE)
    env = base_environment(tmp_path / f"{name}-home")
    env.update(
        {
            "PREFECT_API_URL": f"http://{server_address}:4200/api",
            "VIGIA_DATABASE_URL": f"postgresql+psycopg://postgres@{store}/test",
            "VIGIA_CHECKOUT": str(checkout),
            "VIGIA_WORKER_HOST": name,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
    )
    lan.start(host.argv(VIGIA, "worker", "--name", name), tmp_path / f"{name}.log", env, cwd=checkout)
    return checkout


def run_to_the_end(deployment_id: str, out: Path, seconds: float = 0.0, timeout: float = 120) -> tuple[str, float]:
    """Start a run, wait for it to complete; return where it ran and how long it took to start (creation to first line)."""
    created = time.time()
    run_id = asyncio.run(start_run(deployment_id, out, seconds))
    wait_until(lambda: asyncio.run(run_state(run_id)) == "COMPLETED", timeout, f"run {run_id} to complete")
    seen = json.loads(out.read_text())
    return seen["VIGIA_WORKER_HOST"], seen["started"] - created


@pytest.mark.timeout(900)
def test_remote_workers_take_the_runs_and_a_cut_workers_next_run_completes_on_the_other(lan, tmp_path, scratch_database):
    store, api = start_server_host(lan, tmp_path, scratch_database)
    server_address = lan.hosts["srv"].address
    wait_until(lambda: answers(f"{api}/ready"), 240, f"Prefect on PostgreSQL in the server's namespace; see {tmp_path / 'srv.log'}")
    with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: AUTH}):
        deployment_id = asyncio.run(deploy_where_it_ran(queue="default"))
        checkouts = {name: start_worker_host(lan, tmp_path, name, server_address, store) for name in ("w1", "w2")}
        wait_until(lambda: asyncio.run(online_workers()) == {"w1", "w2"}, 120, "both workers to be online")

        # Remote pickup: each run is taken by one of the workers, from its own checkout, in its own namespace.
        pickups, hosts_seen = [], set()
        for number in range(4):
            out = tmp_path / f"run-{number}.json"
            host, pickup = run_to_the_end(deployment_id, out)
            seen = json.loads(out.read_text())
            assert seen["cwd"] == str(checkouts[host]) and seen["store_answers"] is True
            assert seen["netns"] == f"net:[{os.stat(f'/var/run/netns/{lan.hosts[host].namespace}').st_ino}]"
            pickups.append(pickup)
            hosts_seen.add(host)

        # A worker's link cut mid-run: the next run completes on the other worker.
        long_out = tmp_path / "long.json"
        long_run = asyncio.run(start_run(deployment_id, long_out, seconds=600))
        victim = wait_until(lambda: (read_json(long_out) or {}).get("VIGIA_WORKER_HOST"), 120, "the long run to start")
        cut_at = time.time()
        lan.hosts[victim].cut()
        survivor, _ = run_to_the_end(deployment_id, tmp_path / "after-cut.json")
        recovery = time.time() - cut_at
        cut_run_state = asyncio.run(run_state(long_run))

    report = {
        "pickup_seconds": [round(p, 2) for p in pickups],
        "hosts": sorted(hosts_seen),
        "cut": victim,
        "recovery_seconds": round(recovery, 2),
        "cut_run_state": cut_run_state,
    }
    print(f"multi-host timings: {json.dumps(report)}")
    (tmp_path / "timings.json").write_text(json.dumps(report))
    assert survivor != victim
    assert cut_run_state != "COMPLETED"  # its worker can no longer tell Prefect anything
    assert max(pickups) < 30
