"""The `vigia` CLI as a user runs it: check and status, with their exit codes and output."""

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from store.probes import ProbeResult, insert_probe_results
from store.database import open_session
from store.states import record_probe
from tests.fakes.server import free_port


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["vigia", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=180)




def test_check_prints_each_target_and_exits_1_when_a_critical_target_is_down(prefect_server, sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    HealthTargets(targets=[
        HealthTarget(name="gateway", kind="tcp", url=f"127.0.0.1:{free_port()}", critical=True),
        HealthTarget(name="memory", kind="memory"),
    ]).save("default", overwrite=True)
    result = vigia("check", "--json", "--confirm-after", "0", env={"PREFECT_API_URL": prefect_server, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    rows = {row["target"]: row for row in json.loads(result.stdout)}
    assert (rows["gateway"]["state"], rows["memory"]["state"]) == ("DOWN", "UP")
    assert result.stderr.strip().endswith("vigia: critical targets DOWN: gateway")


def test_check_without_a_prefect_server_says_how_to_start_one(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    result = vigia("check", env={"PREFECT_API_URL": url, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr == f"vigia: the Prefect server at {url} does not answer; start the platform with `vigia up`\n"


def test_status_shows_uptime_per_window_from_the_store(sqlite_store_url, tmp_path):
    now = datetime.now(timezone.utc)
    start = now - timedelta(hours=2)
    record_probe(sqlite_store_url, ProbeResult("api", "http", start, True, "ok"), critical=True, confirm_after=timedelta(0))
    record_probe(sqlite_store_url, ProbeResult("api", "http", now - timedelta(hours=1), False, "critical", reason="HTTP 502"), critical=True, confirm_after=timedelta(0))
    with open_session(sqlite_store_url) as session:
        insert_probe_results(session, [ProbeResult("api", "http", start + timedelta(minutes=5 * k), True, "ok") for k in range(25)], None)
    result = vigia("status", "--json", env={"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["target"], row["state"], row["critical"]) == ("api", "DOWN", True)
    assert row["uptime_24h"] == pytest.approx(50.0, abs=0.1)
    assert row["unknown_24h_s"] == pytest.approx(22 * 3600, abs=60)


def test_status_on_an_empty_store_says_what_to_do(sqlite_store_url, tmp_path):
    result = vigia("status", env={"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (1, "vigia: no health check has run yet; run `vigia check` or wait for the schedule\n")
