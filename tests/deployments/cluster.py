"""The multi-host cluster (tests/deployments/test_multi_host.py): Prefect on PostgreSQL on host srv, `vigia worker` on
hosts w1 and w2 (each from its own checkout copy), the store on PostgreSQL, every host on one bridge (netns.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from deployments.work_pool import ensure_work_pool
from tests.fakes.server import free_port
from tests.polling import wait_until

from .netns import Host, Network, network
from .test_parts import POSTGRES_ADMIN

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

    @property
    def store_url_here(self) -> str:
        """The store as this test (outside the hosts) reaches it, for psycopg."""
        return self.store_url.replace("+psycopg", "").replace(self.server.address, "127.0.0.1")

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


@contextlib.contextmanager
def running_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Prefect on PostgreSQL on host srv, `vigia worker` on w1 and w2, the store on PostgreSQL, Prefect's client settings
    pointing at it; all torn down after.

    Raises:
        NamespacesUnavailable: when this machine does not permit network namespaces.
    """
    prefect_database, store_database = create_database("vigia_prefect"), create_database("vigia_store")
    try:
        with network() as lan:
            server, postgres, api = start_server_host(lan, tmp_path, prefect_database)
            store_url = f"postgresql+psycopg://postgres@{postgres}/{store_database}"
            built = Cluster(lan, tmp_path, server, store_url, api, {})
            wait_until(lambda: answers(f"{api}/ready"), 240, f"Prefect on PostgreSQL on host srv; see {tmp_path / 'srv.log'}", every=0.25)
            with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_API_AUTH_STRING: AUTH}):
                asyncio.run(ensure_work_pool())
                for name in WORKERS:
                    start_worker_host(built, name)
                wait_until(lambda: asyncio.run(online_workers()) == set(WORKERS), 120, "both workers to be online", every=0.25)
                yield built
    finally:
        drop_database(prefect_database)
        drop_database(store_database)
