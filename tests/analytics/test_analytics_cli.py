"""`vigia demo-data`, the SLA lines of `vigia status`, and `vigia report` (a run of weekly-analytics/weekly), as a user runs them."""

import os
import subprocess
from datetime import datetime, timezone

import httpx

from store.database import open_session
from store.sla import WINDOWS, sla_summary
from tests.served_deployments import record_platform, serving


def vigia(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return subprocess.run(["vigia", *args], env={**environ, **env}, capture_output=True, text=True, timeout=180)


def test_demo_data_fills_an_empty_store_once_and_status_shows_its_sla(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"VIGIA_DATABASE_URL": url, "VIGIA_HOME": str(tmp_path)}
    made = vigia("demo-data", "--days", "8", "--seed", "5", "--notes-per-day", "40", env=env)
    assert made.returncode == 0, made.stderr
    assert "20 target states" in made.stdout and "probe results" in made.stdout
    assert int(made.stdout.split("; ")[-1].removesuffix(" hours rolled up\n")) >= 8 * 24 - 1  # as the health checks would have

    again = vigia("demo-data", "--days", "2", env=env)
    assert (again.returncode, again.stderr) == (1, "vigia: the store already holds history; demo data only goes into an empty store\n")

    shown = vigia("status", env=env)
    assert shown.returncode == 0, shown.stderr
    output = shown.stdout.splitlines()
    sla = output[next(n for n, line in enumerate(output) if line.startswith("SLA, last 7 days")) + 1 :][:5]
    lines = {line.split()[0]: line for line in sla}
    assert set(lines) == {"Uptime", "Response", "Error", "Recovery", "Backup"}
    assert output[-1].startswith("The bot, last 24 h: reply p95 ")  # demo-data writes conversations too
    with open_session(url) as session:
        now = datetime.now(timezone.utc)
        expected = {row.name.split()[0]: row for row in sla_summary(session, now - WINDOWS["7d"], now, now=now)}
    assert expected["Response"].display in lines["Response"]
    assert expected["Backup"].display.split()[0] in lines["Backup"]


def test_report_rejects_a_malformed_week_before_starting_anything(tmp_path):
    result = vigia("report", "--week", "week 46", env={"VIGIA_HOME": str(tmp_path)})
    assert (result.returncode, result.stderr) == (2, "vigia: week 'week 46' is not an ISO week such as 2026-W46\n")


def test_report_is_a_run_of_weekly_analytics_and_prints_where_the_report_went(prefect_server, sqlite_store_url, tmp_path):
    from blocks.alert_routes import AlertRoutes
    from blocks.vigia import VigiaSettings

    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url, timezone="UTC").save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    record_platform(tmp_path, prefect_server)
    env = {"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_TIMEZONE": "UTC"}
    with serving(prefect_server):
        result = vigia("report", "--week", "2026-W46", "--no-email", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"weekly report: {tmp_path / 'reports' / '2026-W46.html'}\n"
    assert (tmp_path / "reports" / "2026-W46.html").read_text().count("2026-W46") >= 1
    deployment = httpx.get(f"{prefect_server}/deployments/name/weekly-analytics/weekly", timeout=10).json()
    body = {"deployments": {"id": {"any_": [deployment["id"]]}}, "sort": "START_TIME_DESC", "limit": 1}
    [run] = httpx.post(f"{prefect_server}/flow_runs/filter", json=body, timeout=10).json()
    assert (run["state"]["type"], run["parameters"]) == ("COMPLETED", {"week": "2026-W46", "send_email": False})
