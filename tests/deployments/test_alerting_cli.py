"""`vigia ack`, `vigia silence` and `vigia alert test`, run in-process (the CLI's subprocess start is tested elsewhere),
except where the `vigia` script's own store-error line is what is tested."""

import os
import re
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from deployments.cli_support import QUIET_PREFECT
from store.alerts import list_alerts, list_deliveries
from store.database import open_session
from store.probes import ProbeResult
from store.states import read_state, record_probe
from tests.fakes.capture import CaptureServer


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def vigia(*args: str, env: dict[str, str]) -> Outcome:
    # Named here so that CliRunner restores them: the CLI sets them in its own process.
    env = {**{name: os.environ.get(name) for name in QUIET_PREFECT}, **env}
    result = CliRunner().invoke(app, list(args), env=env)
    return Outcome(result.exit_code, result.stdout, result.stderr)


def down(url: str, target: str) -> int:
    record_probe(
        url,
        ProbeResult(target, "tcp", datetime.now(timezone.utc), False, "critical", reason="refused"),
        critical=True,
        confirm_after=timedelta(0),
    )
    with open_session(url) as session:
        return read_state(session, target).incident_id


def test_ack_stops_reminders_and_refuses_a_second_time(sqlite_store_url, tmp_path):
    incident = down(sqlite_store_url, "api")
    env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)}
    first = vigia("ack", str(incident), "--reason", "ana is on it", env=env)
    assert (first.returncode, first.stdout) == (0, f"incident {incident} (api) acknowledged: no more reminders or escalation\n")
    again = vigia("ack", str(incident), "--reason", "me too", env=env)
    assert (again.returncode, again.stderr) == (1, f"vigia: incident {incident} (api) is already acknowledged\n")


def test_silence_add_list_remove(sqlite_store_url, tmp_path):
    down(sqlite_store_url, "db")
    env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path), "VIGIA_TIMEZONE": "America/Sao_Paulo"}
    added = vigia("silence", "add", "db", "--for", "2h", "--reason", "vacuum full", env=env)
    assert added.returncode == 0 and re.fullmatch(r"silence 1: db held until \d{4}-\d\d-\d\d \d\d:\d\d -03 \(vacuum full\)\n", added.stdout)
    listed = vigia("silence", "list", env=env)
    assert "db" in listed.stdout and "vacuum full" in listed.stdout and " -03 " in listed.stdout
    status = vigia("status", "--json", env=env)
    assert '"state": "MAINTENANCE"' in status.stdout
    assert vigia("silence", "remove", "1", env=env).stdout == "silence 1 removed\n"
    assert vigia("silence", "list", env=env).stdout == "no silence in force\n"
    typo = vigia("silence", "add", "dbb", "--for", "2h", "--reason", "x", env=env)
    assert (typo.returncode, typo.stderr) == (1, "vigia: unknown target 'dbb'; known: db\n")
    bad = vigia("silence", "add", "db", "--for", "soon", "--reason", "x", env=env)
    assert (bad.returncode, bad.stderr) == (2, "vigia: --for: 'soon' is not a duration like 30m, 2h or 1d\n")


def test_alert_test_prints_each_channel_and_fails_when_none_succeeded(sqlite_store_url, tmp_path):
    capture = CaptureServer()
    with capture.serving() as base:
        host = base.removeprefix("http://")
        config = tmp_path / "alerts.yaml"
        config.write_text(
            f"urls:\n  - json://{host}/ok/telegram:\n      - tag: critical\n  - json://{host}/fail/discord:\n      - tag: critical, warning\n"
        )
        env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path), "VIGIA_APPRISE_CONFIG": str(config)}
        critical = vigia("alert", "test", "--severity", "critical", env=env)
        warning = vigia("alert", "test", "--severity", "warning", env=env)
    assert critical.returncode == 0
    lines = sorted(critical.stdout.splitlines())
    assert lines[0].startswith("failure  json://") and "/fail/discord" in lines[0] and "500" in lines[0]
    assert lines[1].startswith("success  json://") and "/ok/telegram" in lines[1]
    assert (warning.returncode, warning.stderr.splitlines()[-1]) == (1, "vigia: no channel succeeded")
    assert [c.json["title"] for c in capture.received if c.path == "/ok/telegram"] == ["[CRITICAL] Vigia test alert"]


def test_a_config_apprise_cannot_use_stops_with_a_clear_line(sqlite_store_url, tmp_path):
    config = tmp_path / "alerts.yaml"
    config.write_text("urls:\n  - nothing-known://here\n")
    env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path), "VIGIA_APPRISE_CONFIG": str(config)}
    result = vigia("alert", "test", env=env)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"vigia: VIGIA_APPRISE_CONFIG {config}: Apprise loaded no notification target from it")


def test_alert_test_prints_and_stores_channels_without_header_or_query_secrets(sqlite_store_url, tmp_path):
    header, query = "SuperSecretHeader", "QuerySecret42"
    capture = CaptureServer()
    with capture.serving() as base:
        config = tmp_path / "alerts.yaml"
        config.write_text(
            f"urls:\n  - json://{base.removeprefix('http://')}/ok/telegram?+X-Token={header}&-token={query}:\n      - tag: critical\n"
        )
        env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path), "VIGIA_APPRISE_CONFIG": str(config)}
        result = vigia("alert", "test", "--severity", "critical", env=env)
        [arrived] = capture.wait_for(count=1)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("success  json://") and "X-Token=***" in result.stdout and "token=***" in result.stdout
    with open_session(sqlite_store_url) as session:
        [alert] = list_alerts(session)
        [delivery] = list_deliveries(session, alert.id)
    for secret in (header, query):
        assert secret not in result.stdout + result.stderr
        assert secret not in delivery.channel
    assert (arrived.headers["x-token"], arrived.query) == (header, f"token={query}")


def test_alert_test_records_a_channel_that_never_answers_as_a_timeout(sqlite_store_url, tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # the kernel completes the handshake; nobody ever reads or answers
        config = tmp_path / "alerts.yaml"
        config.write_text(f"urls:\n  - json://127.0.0.1:{listener.getsockname()[1]}/mute?rto=1:\n      - tag: critical\n")
        env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path), "VIGIA_APPRISE_CONFIG": str(config)}
        result = vigia("alert", "test", env=env)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (1, "vigia: no channel succeeded")
    assert re.fullmatch(r"timeout  json://127\.0\.0\.1:\d+/mute\?\S*  no answer in 1\.\d s\n", result.stdout)
    with open_session(sqlite_store_url) as session:
        [alert] = list_alerts(session)
        [delivery] = list_deliveries(session, alert.id)
    assert (alert.status, delivery.status, delivery.elapsed_ms >= 1000) == ("failed", "timeout", True)


@pytest.mark.parametrize(
    "command",
    [
        ["alert", "test"],
        ["ack", "1", "--reason", "on it"],
        ["silence", "add", "redis", "--for", "1h", "--reason", "upgrade"],
    ],
)
def test_alerting_commands_on_a_home_never_set_up_say_to_run_vigia_setup(tmp_path, command):
    config = tmp_path / "alerts.yaml"
    config.write_text("urls:\n  - json://127.0.0.1:9/ok/telegram:\n      - tag: critical\n")
    env = {**os.environ, "VIGIA_HOME": str(tmp_path / "fresh"), "VIGIA_APPRISE_CONFIG": str(config)}
    env.pop("VIGIA_DATABASE_URL", None)
    result = subprocess.run(["vigia", *command], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"vigia: store sqlite:///{tmp_path}/fresh/vigia.db failed: ")
    assert "no such table" in line and line.endswith("; migrate it with `vigia up` or `vigia setup`")
