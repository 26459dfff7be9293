"""Shared fixtures: real PostgreSQL, Redis and a Prefect test server, all on 127.0.0.1."""

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

# Before Prefect is imported anywhere: a private home, no telemetry, no stray API URL.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="vigia-prefect-home-")
os.environ.pop("PREFECT_API_URL", None)
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import psycopg  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402
from sqlalchemy import text  # noqa: E402

from store.database import get_engine, migrate  # noqa: E402
from store.models import Base  # noqa: E402

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# VIGIA_TEST_REDIS_DB lets two suites share one Redis without flushing each other's keys; each
# pytest-xdist worker (gw0, gw1, …) takes two databases of its own from there.
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
REDIS_TEST_DB = int(os.environ.get("VIGIA_TEST_REDIS_DB", "9")) + 2 * XDIST_WORKER
REDIS_SCRATCH_DB = REDIS_TEST_DB + 1  # a second database of this suite's own, for restores into a shared server
TABLES = tuple(Base.metadata.tables)  # every table of the store, truncated between PostgreSQL tests


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server for the session, started as `vigia up` starts it (SQLite), with flow heartbeats off (~1 s per flow)."""
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from deployments.parts import UNUSED_SERVER_SERVICES
    from tests.fakes.server import free_port

    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        **UNUSED_SERVER_SERVICES,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "deployments.prefect_server", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
    with open(home / "server.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_for_prefect(api_url, process, home / "server.log")
        with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            # Like prefect_test_harness: contexts copied before this point see the server too.
            with prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
                yield api_url
                APILogWorker.drain_all(timeout=10)
                EventsWorker.drain_all(timeout=10)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for_prefect(api_url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Prefect server did not answer within {seconds:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def postgres_schema_url():
    """A store URL on PostgreSQL in a schema of its own for this session, migrated."""
    schema = f"vigia_test_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    migrate(url)
    yield url
    get_engine(url).dispose()
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """A migrated, empty store: a fresh SQLite file, or the session's PostgreSQL schema truncated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vigia.db'}"
        migrate(url)
        yield url
        get_engine(url).dispose()
        return
    url = request.getfixturevalue("postgres_schema_url")
    with get_engine(url).begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield url


@pytest.fixture
def sqlite_store_url(tmp_path):
    """A migrated, empty SQLite store, for tests that need one backend only."""
    url = f"sqlite:///{tmp_path / 'vigia.db'}"
    migrate(url)
    yield url
    get_engine(url).dispose()


@pytest.fixture
def redis_url():
    """A Redis database of the tests' own, flushed before and after each test."""
    url = f"redis://127.0.0.1:6379/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


YEAR_END = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)  # a Friday


@pytest.fixture(scope="session")
def year_store_url(tmp_path_factory):
    """A SQLite store holding a year of synthetic history (demo data) ending YEAR_END; tests only read it.

    Seeded once per run (~40 s of CPU): pytest-xdist's workers share the file through the run's own
    folder, the first to come seeding it under a lock while the others wait.
    """
    from store.database import open_session
    from store.demo import seed_history

    basetemp = tmp_path_factory.getbasetemp()
    folder = (basetemp.parent if "PYTEST_XDIST_WORKER" in os.environ else basetemp) / "year-store"
    folder.mkdir(exist_ok=True)
    database = folder / "vigia.db"
    with open(folder / "seeding.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            partial = folder / "vigia.db.partial"
            partial.unlink(missing_ok=True)
            migrate(f"sqlite:///{partial}")
            with open_session(f"sqlite:///{partial}") as session:
                seed_history(session, days=365, seed=3, now=YEAR_END, notes_per_day=60, chats_per_day=40)
            get_engine(f"sqlite:///{partial}").dispose()
            partial.rename(database)
    url = f"sqlite:///{database}"
    yield url
    get_engine(url).dispose()
