"""The `vigia` CLI as a user runs it: check and status, with their exit codes and output; the platform found from VIGIA_HOME."""

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from store.database import open_session
from store.probes import ProbeResult, insert_probe_results
from store.states import record_probe
from tests.fakes.server import free_port
from tests.served_deployments import record_platform, serving

ROOT = Path(__file__).resolve().parents[2]
HEAVY_MODULES = ("prefect", "sqlalchemy", "pandas", "apprise", "httpx", "streamlit")


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return subprocess.run(["vigia", *args], env={**environ, **env}, capture_output=True, text=True, timeout=180)


def runs_of(api_url: str, deployment: str) -> list[dict]:
    found = httpx.get(f"{api_url}/deployments/name/{deployment}", timeout=10).json()
    body = {"deployments": {"id": {"any_": [found["id"]]}}, "sort": "START_TIME_DESC"}
    return httpx.post(f"{api_url}/flow_runs/filter", json=body, timeout=10).json()


def test_check_is_a_run_of_its_deployment_on_the_platform_found_from_vigia_home(prefect_server, sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    HealthTargets(
        targets=[
            HealthTarget(name="gateway", kind="tcp", url=f"127.0.0.1:{free_port()}", critical=True),
            HealthTarget(name="memory", kind="memory"),
        ]
    ).save("default", overwrite=True)
    record_platform(tmp_path, prefect_server)
    env = {"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url}
    with serving(prefect_server):
        before = len(runs_of(prefect_server, "health-check/every-5-min"))
        quiet = vigia("check", "--json", "--confirm-after", "0", env=env)
        verbose = vigia("check", "-v", "--confirm-after", "0", env=env)

    assert quiet.returncode == 1, quiet.stderr
    rows = {row["target"]: row for row in json.loads(quiet.stdout)}
    assert (rows["gateway"]["state"], rows["memory"]["state"], rows["gateway"]["critical"]) == ("DOWN", "UP", True)
    assert quiet.stderr.splitlines()[-1] == "vigia: critical targets DOWN: gateway"
    assert " | INFO | " not in quiet.stderr and "is Completed" in quiet.stderr
    runs = runs_of(prefect_server, "health-check/every-5-min")
    assert len(runs) == before + 2
    assert (runs[0]["state"]["type"], runs[0]["parameters"]) == ("COMPLETED", {"confirm_after_seconds": 0})
    assert verbose.returncode == 1
    assert "| INFO | health check done: 2 targets, 1 DOWN (gateway)" in verbose.stderr
    assert verbose.stdout.splitlines()[0].startswith("*gateway ")


def test_check_with_no_platform_running_says_so_and_writes_nothing_outside_vigia_home(tmp_path):
    home, user = tmp_path / "vigia", tmp_path / "user"
    user.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PREFECT_API_URL", "PREFECT_HOME")}
    env.update({"VIGIA_HOME": str(home), "HOME": str(user)})
    result = subprocess.run(["vigia", "check"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"vigia: no platform is running on VIGIA_HOME={home}; start it with `vigia up` (or set PREFECT_API_URL)\n")
    assert list(user.iterdir()) == []


def test_a_stale_platform_record_counts_as_no_platform(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    from deployments.platform_state import PlatformState, write_state

    write_state(tmp_path, PlatformState(pid=int(dead), marker="gone", prefect_api_url=f"http://127.0.0.1:{free_port()}/api"))
    result = vigia("backup", "run", env={"VIGIA_HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (
        1,
        f"vigia: no platform is running on VIGIA_HOME={tmp_path}; start it with `vigia up` (or set PREFECT_API_URL)\n",
    )


def test_importing_the_cli_loads_no_heavy_library():
    script = f"import sys, deployments.cli; print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert loaded == "[]\n"


def test_check_without_a_prefect_server_says_how_to_start_one(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/api"
    result = vigia("check", env={"PREFECT_API_URL": url, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr == f"vigia: the Prefect server at {url} does not answer; start the platform with `vigia up`\n"


def test_status_shows_uptime_per_window_from_the_store(sqlite_store_url, tmp_path):
    now = datetime.now(timezone.utc)
    start = now - timedelta(hours=2)
    record_probe(sqlite_store_url, ProbeResult("api", "http", start, True, "ok"), critical=True, confirm_after=timedelta(0))
    record_probe(
        sqlite_store_url,
        ProbeResult("api", "http", now - timedelta(hours=1), False, "critical", reason="HTTP 502"),
        critical=True,
        confirm_after=timedelta(0),
    )
    with open_session(sqlite_store_url) as session:
        insert_probe_results(session, [ProbeResult("api", "http", start + timedelta(minutes=5 * k), True, "ok") for k in range(25)], None)
    result = vigia("status", "--json", env={"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["target"], row["state"], row["critical"]) == ("api", "DOWN", True)
    assert row["uptime_24h"] == pytest.approx(50.0, abs=0.1)
    assert row["unknown_24h_s"] == pytest.approx(22 * 3600, abs=60)


def test_status_gives_the_bots_reply_time_and_unanswered_chats_over_24_hours(sqlite_store_url, tmp_path):
    from store.conversations import NewMessage, insert_messages

    now = datetime.now(timezone.utc)
    record_probe(sqlite_store_url, ProbeResult("api", "http", now, True, "ok"), critical=True, confirm_after=timedelta(0))
    env = {"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)}
    quiet = vigia("status", env=env)
    assert "The bot, last 24 h: no chat messages recorded" in quiet.stdout, quiet.stderr

    def said(number: int, chat: str, direction: str, minutes_ago: float) -> NewMessage:
        return NewMessage("bot", f"m{number}", chat, direction, "text", now - timedelta(minutes=minutes_ago), None)

    with open_session(sqlite_store_url) as session:
        insert_messages(session, [said(1, "a", "customer", 30), said(2, "a", "bot", 29.9), said(3, "b", "customer", 10)])
    result = vigia("status", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(
        "The bot, last 24 h: reply p95 6.0 s (target 60 s), 1 of 2 customer messages unanswered, 1 chats waiting now"
    )


def test_status_on_an_empty_store_says_what_to_do(sqlite_store_url, tmp_path):
    result = vigia("status", env={"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (1, "vigia: no health check has run yet; run `vigia check` or wait for the schedule\n")


def test_setup_writes_the_blocks_on_the_platform_found_from_vigia_home_and_names_its_dashboard(prefect_server, tmp_path):
    from deployments.platform_state import PlatformState, write_state

    write_state(
        tmp_path, PlatformState(pid=os.getpid(), marker="t", prefect_api_url=prefect_server, dashboard_url="http://127.0.0.1:18501")
    )
    result = vigia("setup", env={"VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"vigia-settings/default: store, home {tmp_path}, time zone America/Sao_Paulo" in result.stdout.splitlines()
    assert VigiaSettings.load("default").dashboard_url == "http://127.0.0.1:18501"
    assert VigiaSettings.load("default").prefect_ui_url == prefect_server.removesuffix("/api")
