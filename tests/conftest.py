"""Shared fixtures: real PostgreSQL, Redis and a Prefect test server, all on 127.0.0.1."""

import os
import tempfile

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

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
# VIGIA_TEST_REDIS_DB lets two suites share one Redis without flushing each other's keys.
REDIS_TEST_DB = int(os.environ.get("VIGIA_TEST_REDIS_DB", "9"))
TABLES = (
    "voice_notes",
    "restores",
    "backup_items",
    "backup_runs",
    "deliveries",
    "alerts",
    "alert_keys",
    "silences",
    "state_changes",
    "target_states",
    "incidents",
    "probe_results",
    "health_runs",
)


@pytest.fixture(scope="session")
def prefect_server():
    """A real local Prefect server for the session, with flow heartbeats off (they add ~1 s per flow)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            from prefect.settings import PREFECT_API_URL

            yield PREFECT_API_URL.value()


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
