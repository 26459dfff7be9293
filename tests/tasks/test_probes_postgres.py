"""`probe_target` for PostgreSQL targets, against the real local server and a stand-in that asks for a password."""

from __future__ import annotations

import re

import psycopg
import pytest

from blocks.health_targets import HealthTarget
from tests.conftest import POSTGRES_ADMIN
from tests.tasks.servers import postgres_wanting_a_password, probe


def test_postgres_probe_is_ok_with_the_share_of_connections_in_use_as_value() -> None:
    with psycopg.connect(POSTGRES_ADMIN) as connection:
        max_connections = int(connection.execute("SHOW max_connections").fetchone()[0])

    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN))

    assert (result.target, result.kind, result.ok, result.level) == ("db", "postgres", True, "ok")
    match = re.fullmatch(r"(\d+)/(\d+) connections in use", result.reason)
    assert match, result.reason
    in_use, maximum = int(match[1]), int(match[2])
    assert maximum == max_connections
    assert in_use >= 1  # the probe's own connection
    assert result.value == pytest.approx(100 * in_use / maximum)
    assert result.latency_ms is not None and result.latency_ms > 0


def test_postgres_probe_accepts_the_stores_sqlalchemy_url() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dpublic"

    result = probe(HealthTarget(name="store", kind="postgres", dsn=url))

    assert (result.ok, result.level) == (True, "ok")
    assert re.fullmatch(r"\d+/\d+ connections in use", result.reason)


def test_postgres_probe_over_the_warning_threshold_on_connections_is_a_warning() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN, warning_at=0))

    assert (result.ok, result.level) == (True, "warning")
    assert re.fullmatch(r"\d+/\d+ connections in use \(warning threshold 0\)", result.reason)


def test_postgres_probe_over_the_critical_threshold_on_connections_fails() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN, critical_at=0))

    assert (result.ok, result.level) == (False, "critical")
    assert re.fullmatch(r"\d+/\d+ connections in use \(critical threshold 0\)", result.reason)


def test_postgres_probe_on_a_closed_port_is_down_saying_connection_refused(closed_port: int) -> None:
    dsn = f"postgresql://vigia:Pg-Passw0rd-123@127.0.0.1:{closed_port}/test"

    result = probe(HealthTarget(name="db", kind="postgres", dsn=dsn))

    assert (result.ok, result.level, result.value) == (False, "critical", None)
    # libpq: `connection to server at "127.0.0.1", port N failed: Connection refused` + a hint line.
    assert "Connection refused" in result.reason
    assert str(closed_port) in result.reason
    assert "Pg-Passw0rd-123" not in result.reason


def test_postgres_probe_with_a_wrong_password_is_down_naming_the_reason_without_the_password() -> None:
    with postgres_wanting_a_password("vigia") as (port, passwords_seen):
        dsn = f"postgresql://vigia:Wr0ng-Pg-Password@127.0.0.1:{port}/test"

        result = probe(HealthTarget(name="db", kind="postgres", dsn=dsn))

    assert passwords_seen == ["Wr0ng-Pg-Password"]  # the server really was given the wrong password
    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  password authentication failed for user "vigia"')
    assert "Wr0ng-Pg-Password" not in result.reason


def test_postgres_probe_of_a_database_that_does_not_exist_is_down_naming_it() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://postgres@127.0.0.1:5432/no_such_db"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  database "no_such_db" does not exist')


def test_postgres_probe_of_a_role_that_does_not_exist_is_down_naming_it() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://ghost:Gh0st-pw@127.0.0.1:5432/test"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  role "ghost" does not exist')
    assert "Gh0st-pw" not in result.reason


def test_postgres_probe_of_a_malformed_dsn_masks_the_password_libpq_echoes() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://vigia:Ech0ed-Secret@[::1/test"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == (
        'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://vigia:***@[::1/test"'
    )


def test_postgres_probe_against_a_server_that_never_answers_times_out(silent_port: int) -> None:
    # libpq's connect_timeout has a floor of 2 s, so this is the shortest timeout that is honoured.
    target = HealthTarget(name="db", kind="postgres", dsn=f"postgresql://postgres@127.0.0.1:{silent_port}/test", timeout_seconds=2)

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "connection timeout expired"
    assert 1900 <= result.latency_ms < 4000
