"""From one machine to several, for real: hosts are network namespaces on one bridge (tests/deployments/netns.py).
`vigia up --only server` runs Prefect on PostgreSQL on one host and `vigia worker` runs on two others, each from its
own checkout, all reaching the store across the bridge. Runs on pool vigia are taken by the remote workers; prefect.yaml,
deployed after `vigia setup`, runs a health check on a worker into the shared store; and when one worker's link is cut
mid-run, the next run completes on the other and the cut run is marked Crashed by the zombie sweep."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from deployments.work_pool import ensure_work_pool
from tests.fakes.server import free_port

from .netns import Host, NamespacesUnavailable, Network, network
from .test_parts import POSTGRES_ADMIN
from .test_worker import PULL_FROM_CHECKOUT, deploy_where_it_ran, run_state, start_run

ROOT = Path(__file__).resolve().parents[2]
AUTH = "vigia:multi-host-s3cret"
VIGIA = shutil.which("vigia") or str(ROOT / ".venv" / "bin" / "vigia")
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".ruff_cache", ".pytest_cache")
WORKERS = ("w1", "w2")


@dataclass
class Cluster:
    """A server host and two worker hosts on one bridge, and how the test (outside them) reaches Prefect."""

    lan: Network
    tmp: Path
    server: Host
    store_url: str  # the store, as every host reaches it
    api: str  # Prefect's API, as this test reaches it
    checkouts: dict[str, Path]

    def server_env(self, **environ: str) -> dict[str, str]:
        env = base_environment(self.tmp / "srv-home")
        env.update({"PREFECT_API_URL": f"http://{self.server.address}:4200/api", "VIGIA_DATABASE_URL": self.store_url, **environ})
        return env

    def worker_log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")


def base_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "VIGIA_")) and k != "PREFECT_HOME"}
    return {**env, "VIGIA_HOME": str(home), "PREFECT_SERVER_API_AUTH_STRING": AUTH, "VIGIA_TIMEZONE": "UTC"}


def create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


def start_server_host(lan: Network, tmp_path: Path, prefect_database: str) -> tuple[Host, str, str]:
    """`vigia up --only server` on a host of its own, Prefect on PostgreSQL, which this host serves to the bridge;
    return the host, the PostgreSQL address every host uses and the API URL for this test."""
    server = lan.add_host("srv")
    postgres = lan.serve_postgres(server, tmp_path / "socat.log")
    (tmp_path / "srv-home").mkdir()
    env = base_environment(tmp_path / "srv-home")
    env.update(
        {
            "VIGIA_BIND": "0.0.0.0",
            "VIGIA_DASHBOARD_PASSWORD": "x",
            "VIGIA_PREFECT_DATABASE_URL": f"postgresql://postgres@{postgres}/{prefect_database}",
        }
    )
    lan.start(server.argv(VIGIA, "up", "--only", "server"), tmp_path / "srv.log", env, cwd=tmp_path / "srv-home")
    api = f"http://{lan.expose(server, 4200, free_port(), tmp_path, tmp_path / 'socat.log')}/api"
    return server, postgres, api


def start_worker_host(cluster: Cluster, name: str) -> None:
    """A host with its own checkout (a copy of this one) running `vigia worker --name NAME`."""
    host = cluster.lan.add_host(name)
    checkout = cluster.checkouts[name] = cluster.tmp / f"checkout-{name}"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE)
    env = base_environment(cluster.tmp / f"{name}-home")
    env.update(
        {
            "PREFECT_API_URL": f"http://{cluster.server.address}:4200/api",
            "VIGIA_DATABASE_URL": cluster.store_url,
            "VIGIA_CHECKOUT": str(checkout),
            "VIGIA_WORKER_HOST": name,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_LOGGING_LEVEL": "INFO",  # the worker's log names each flow run it submits
            "VIGIA_ZOMBIE_AFTER_SECONDS": "45",  # the shortest the sweep allows: the cut run is Crashed sooner
        }
    )
    cluster.lan.start(host.argv(VIGIA, "worker", "--name", name), cluster.tmp / f"{name}.log", env, cwd=checkout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Prefect on PostgreSQL on host srv, `vigia worker` on w1 and w2, the store on PostgreSQL; all torn down after.

    One cluster for the module (its start is ~45 s): the test that cuts a worker off comes last.
    """
    tmp_path = tmp_path_factory.mktemp("cluster")
    prefect_database, store_database = create_database("vigia_prefect"), create_database("vigia_store")
    try:
        with network() as lan:
            server, postgres, api = start_server_host(lan, tmp_path, prefect_database)
            store_url = f"postgresql+psycopg://postgres@{postgres}/{store_database}"
            built = Cluster(lan, tmp_path, server, store_url, api, {})
            wait_until(lambda: answers(f"{api}/ready"), 240, f"Prefect on PostgreSQL on host srv; see {tmp_path / 'srv.log'}")
            with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: AUTH}):
                asyncio.run(ensure_work_pool())
                for name in WORKERS:
                    start_worker_host(built, name)
                wait_until(lambda: asyncio.run(online_workers()) == set(WORKERS), 120, "both workers to be online")
                yield built
    except NamespacesUnavailable as error:
        pytest.skip(f"network namespaces are not permitted here: {error}")
    finally:
        drop_database(prefect_database)
        drop_database(store_database)


def run_to_the_end(deployment_id: str, out: Path, seconds: float = 0.0, timeout: float = 120) -> tuple[str, float]:
    """Start a run and wait for it to complete; return where it ran and how long it took to start (creation to first line)."""
    created = time.time()
    run_id = asyncio.run(start_run(deployment_id, out, seconds))
    wait_until(lambda: asyncio.run(run_state(run_id)) == "COMPLETED", timeout, f"run {run_id} to complete")
    seen = json.loads(out.read_text())
    return seen["VIGIA_WORKER_HOST"], seen["started"] - created


def namespace_of(cluster: Cluster, host: str) -> str:
    return f"net:[{os.stat(f'/var/run/netns/{cluster.lan.hosts[host].namespace}').st_ino}]"


async def health_check_run(parameters: dict) -> str:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("health-check/every-5-min")
        return str((await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)).id)


async def started_after(run_id: str) -> float:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        return (run.start_time - run.created).total_seconds()


@pytest.mark.timeout(600)
def test_prefect_yaml_deployed_after_vigia_setup_runs_a_health_check_on_a_remote_worker_into_the_shared_store(cluster):
    setup = subprocess.run(
        cluster.server.argv(VIGIA, "setup"),
        env=cluster.server_env(),
        cwd=cluster.tmp / "srv-home",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stderr
    assert "work pool vigia: process, kept" in setup.stdout
    deploy_env = cluster.server_env(PREFECT_API_AUTH_STRING=AUTH)
    deploy_env.pop("VIGIA_CHECKOUT", None)
    deployed = subprocess.run(
        cluster.server.argv(sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"),
        env=deploy_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    run_id = asyncio.run(health_check_run({"confirm_after_seconds": 0}))
    wait_until(lambda: asyncio.run(run_state(run_id)) in ("COMPLETED", "FAILED", "CRASHED"), 240, "the health check to finish")
    assert asyncio.run(run_state(run_id)) == "COMPLETED"
    ran_on = [name for name in WORKERS if run_id in cluster.worker_log(name)]
    assert len(ran_on) == 1, ran_on
    store = cluster.store_url.replace("+psycopg", "").replace(cluster.server.address, "127.0.0.1")
    with psycopg.connect(store) as connection:
        targets = {row[0] for row in connection.execute("SELECT DISTINCT target FROM probe_results")}
    assert {"prefect", "disk", "memory"} <= targets
    print(f"multi-host health check: on {ran_on[0]}, started {asyncio.run(started_after(run_id)):.2f} s after it was created")


async def deploy_limited_like_the_backup() -> str:
    """A where-it-ran deployment on pool vigia with the backup's own concurrency limit from prefect.yaml; return its id."""
    from prefect.client.schemas.objects import ConcurrencyOptions

    from deployments.definitions import read_definitions

    [backup] = [d for d in read_definitions() if d.entrypoint == "flows/backup.py:backup"]
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("where-it-ran")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="limited-like-the-backup",
            work_pool_name="vigia",
            work_queue_name="default",
            entrypoint="tests/deployments/worker_flows.py:where_it_ran",
            pull_steps=PULL_FROM_CHECKOUT,
            tags=["vigia"],
            concurrency_limit=backup.concurrency_limit.limit,
            concurrency_options=ConcurrencyOptions(collision_strategy=backup.concurrency_limit.collision_strategy),
        )
    return str(deployment_id)


@pytest.mark.timeout(600)
def test_the_backups_limit_of_one_run_holds_across_two_workers(cluster, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "UTC")  # prefect.yaml's {{ $VIGIA_TIMEZONE }}
    deployment_id = asyncio.run(deploy_limited_like_the_backup())
    first_out, second_out = cluster.tmp / "first.json", cluster.tmp / "second.json"
    first = asyncio.run(start_run(deployment_id, first_out, seconds=20))
    wait_until(lambda: read_json(first_out), 120, "the first run to start")
    second = asyncio.run(start_run(deployment_id, second_out, seconds=0))  # a second backup while one runs: two idle workers
    wait_until(lambda: asyncio.run(run_state(second)) in ("CANCELLED", "COMPLETED", "FAILED", "CRASHED"), 120, "the second run to end")
    wait_until(lambda: asyncio.run(run_state(first)) == "COMPLETED", 120, "the first run to complete")
    assert asyncio.run(run_state(second)) == "CANCELLED"  # CANCEL_NEW, as prefect.yaml says for the backup
    assert not second_out.exists()  # it never started, on either worker


@pytest.mark.timeout(600)
def test_remote_workers_take_the_runs_and_a_cut_workers_next_run_completes_on_the_other(cluster):
    deployment_id = asyncio.run(deploy_where_it_ran(queue="default"))
    # Remote pickup: each run is taken by one of the workers, from its own checkout, in its own namespace.
    pickups, hosts_seen = [], set()
    for number in range(4):
        out = cluster.tmp / f"run-{number}.json"
        host, pickup = run_to_the_end(deployment_id, out)
        seen = json.loads(out.read_text())
        assert (seen["cwd"], seen["netns"], seen["store_answers"]) == (str(cluster.checkouts[host]), namespace_of(cluster, host), True)
        pickups.append(pickup)
        hosts_seen.add(host)

    # A worker's link cut mid-run: the next run completes on the other worker.
    long_out = cluster.tmp / "long.json"
    long_run = asyncio.run(start_run(deployment_id, long_out, seconds=600))
    victim = wait_until(lambda: (read_json(long_out) or {}).get("VIGIA_WORKER_HOST"), 120, "the long run to start")
    cut_at = time.time()
    cluster.lan.hosts[victim].cut()
    survivor, _ = run_to_the_end(deployment_id, cluster.tmp / "after-cut.json")
    recovery = time.time() - cut_at
    # Its worker can tell Prefect nothing any more; the other worker's zombie sweep marks it Crashed (tasks/zombies.py).
    wait_until(lambda: asyncio.run(run_state(long_run)) == "CRASHED", 180, "the cut run to be marked Crashed")
    crash_marked = time.time() - cut_at

    timings = {"pickup_seconds": [round(p, 2) for p in pickups], "hosts": sorted(hosts_seen), "cut": victim}
    timings.update(recovery_seconds=round(recovery, 2), crash_marked_seconds=round(crash_marked, 1))
    print(f"multi-host timings: {json.dumps(timings)}")
    assert survivor != victim
    assert max(pickups) < 30
