"""The parts `vigia up` runs: Prefect's server on PostgreSQL with VIGIA_PREFECT_DATABASE_URL, the setting's strict parsing,
and the supervisor's own imports (no Prefect, pandas or Streamlit)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from deployments.migration_stamps import is_migrated, prefect_stamp, record_migrated, store_stamp
from deployments.parts import PartsError, Ports, build_parts, platform_urls, prefect_database_url, prefect_server_part
from deployments.settings import load_settings
from store.alerts import list_alerts
from store.database import migrate, open_session
from tests.fakes.server import free_port

from .test_prefect_server import prefect_server_part_running

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def scratch_database():
    """A PostgreSQL database of this test's own, dropped afterwards."""
    name = f"vigia_prefect_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.timeout(300)
def test_the_prefect_server_runs_on_the_postgresql_database_vigia_prefect_database_url_names(tmp_path, scratch_database):
    url = prefect_database_url({"VIGIA_PREFECT_DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{scratch_database}"}, None)
    assert url == f"postgresql+asyncpg://postgres@127.0.0.1:5432/{scratch_database}"
    with prefect_server_part_running(tmp_path, url):
        pass
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{scratch_database}") as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        block_types = connection.execute("SELECT count(*) FROM block_type").fetchone()[0]
    assert {"flow_run", "deployment", "block_document", "alembic_version"} <= tables
    assert block_types > 0  # registered on its first start, in PostgreSQL
    assert not (tmp_path / "prefect" / "prefect.db").exists()


def test_a_prefect_database_url_that_is_not_postgresql_is_refused_naming_the_variable():
    with pytest.raises(PartsError) as raised:
        prefect_database_url({"VIGIA_PREFECT_DATABASE_URL": "sqlite:////tmp/prefect.db"}, None)
    assert str(raised.value) == (
        "VIGIA_PREFECT_DATABASE_URL: invalid value (not a PostgreSQL URL); accepts postgresql+asyncpg://user:password@host:5432/prefect"
    )
    assert prefect_database_url({}, None) is None


def test_the_prefect_database_url_may_come_from_a_file(tmp_path):
    secret = tmp_path / "prefect-url"
    secret.write_text("postgresql+asyncpg://prefect:s3cret@db:5432/prefect\n")
    assert (
        prefect_database_url({"VIGIA_PREFECT_DATABASE_URL_FILE": str(secret)}, None)
        == "postgresql+asyncpg://prefect:s3cret@db:5432/prefect"
    )


def test_the_supervisor_imports_no_prefect_pandas_or_streamlit():
    script = (
        "import sys, deployments.up, deployments.cli; "
        "print(sorted(m for m in ('prefect', 'pandas', 'streamlit', 'alembic') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_a_warm_start_skips_the_store_migration_only_while_the_stamp_matches_the_scripts_and_the_file_exists(tmp_path):
    settings = load_settings({"VIGIA_HOME": str(tmp_path)}, env_file=None)
    urls = platform_urls(settings, Ports())
    assert store_stamp(settings.database_url) is None  # no store yet: migrate
    assert "migrate" in {part.name for part in build_parts(settings, Ports(), urls, None)}

    migrate(settings.database_url)
    record_migrated(tmp_path, "store", store_stamp(settings.database_url))
    parts = {part.name: part for part in build_parts(settings, Ports(), urls, None)}
    assert "migrate" not in parts and parts["receiver"].needs == ("migrate",)  # a need on a part not run is met

    (tmp_path / "vigia.db").unlink()
    assert not is_migrated(tmp_path, "store", store_stamp(settings.database_url))


def test_prefect_skips_its_migration_check_once_this_version_answered_on_this_database(tmp_path):
    settings = load_settings({"VIGIA_HOME": str(tmp_path)}, env_file=None)
    urls = platform_urls(settings, Ports())
    assert "PREFECT_SERVER_DATABASE_MIGRATE_ON_START" not in prefect_server_part(settings, Ports(), urls, None).env
    (tmp_path / "prefect").mkdir()
    (tmp_path / "prefect" / "prefect.db").touch()
    record_migrated(tmp_path, "prefect", prefect_stamp(tmp_path, None))
    assert prefect_server_part(settings, Ports(), urls, None).env["PREFECT_SERVER_DATABASE_MIGRATE_ON_START"] == "false"
    other = "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect"
    assert "PREFECT_SERVER_DATABASE_MIGRATE_ON_START" not in prefect_server_part(settings, Ports(), urls, other).env


def test_a_part_that_keeps_dying_is_reported_by_a_critical_alert_from_a_child_without_prefects_server(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'vigia.db'}"
    migrate(store_url)
    log = tmp_path / "prefect-server.log"
    log.write_text("starting\nsqlite3.OperationalError: database is locked\n")
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}  # nothing there
    argv = [sys.executable, "-m", "deployments.part_alert", "--part", "prefect-server", "--deaths", "4", "--log", str(log)]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "critical alert for prefect-server (died 4 times): logged" in first.stderr
    assert "critical alert for prefect-server (died 4 times): cooling down" in again.stderr
    with open_session(store_url) as session:
        [alert] = list_alerts(session)
    assert (alert.severity, alert.key, alert.title) == (
        "critical",
        "platform:prefect-server:keeps-dying",
        "[CRITICAL] vigia up: prefect-server keeps dying",
    )
    assert alert.body.endswith("Its last log lines: starting | sqlite3.OperationalError: database is locked")


def test_the_served_runner_polls_prefect_every_second(tmp_path):
    settings = load_settings({"VIGIA_HOME": str(tmp_path)}, env_file=None)
    parts = {part.name: part for part in build_parts(settings, Ports(), platform_urls(settings, Ports()), None)}
    assert parts["serve"].env == {"PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    assert all("PREFECT_RUNNER_POLL_FREQUENCY" not in part.env for name, part in parts.items() if name != "serve")


def test_the_prefect_server_part_turns_on_prefects_flow_run_and_event_retention_as_prefect_reads_it(tmp_path, monkeypatch):
    from datetime import timedelta

    from prefect.settings.models.root import Settings as PrefectSettings

    for environ, runs_days, events_days in (
        ({}, 35, 7),
        ({"VIGIA_PREFECT_KEEP_RUNS_DAYS": "60", "VIGIA_PREFECT_KEEP_EVENTS_DAYS": "3"}, 60, 3),
    ):
        settings = load_settings({"VIGIA_HOME": str(tmp_path), **environ}, env_file=None)
        env = prefect_server_part(settings, Ports(), platform_urls(settings, Ports()), None).env
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        server = PrefectSettings().server
        assert {"events", "flow_runs"} <= server.services.db_vacuum.enabled_vacuum_types
        assert server.services.db_vacuum.retention_period == timedelta(days=runs_days)
        assert server.events.retention_period == timedelta(days=events_days)
