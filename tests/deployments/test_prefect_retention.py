"""Prefect's own retention as `vigia up` sets it: old flow runs (with their artifacts) and old events go, recent ones stay."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

import httpx
import pytest

from tests.polling import wait_until

from .test_prefect_server import prefect_server_part_running


def query(database, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(database) as connection:
        return connection.execute(sql, args).fetchall()


def backdate(database, table: str, column: str, where: str, args: tuple, days: int) -> None:
    """Move a timestamp column back by `days`, in the format Prefect stored it."""
    with sqlite3.connect(database) as connection:
        for rowid, value in connection.execute(f"SELECT rowid, {column} FROM {table} WHERE {where}", args).fetchall():
            moved = datetime.fromisoformat(value) - timedelta(days=days)
            connection.execute(
                f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (moved.isoformat(sep=" " if " " in value else "T"), rowid)
            )


@pytest.mark.timeout(420)
def test_prefects_server_vacuums_flow_runs_past_35_days_with_their_artifacts_and_events_past_7_days(tmp_path):
    database = tmp_path / "prefect" / "prefect.db"
    runs = {}
    with prefect_server_part_running(tmp_path, seconds=180) as api_url:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            flow_id = client.post("/flows/", json={"name": "retention"}).json()["id"]
            for name in ("old", "recent"):
                run_id = client.post("/flow_runs/", json={"flow_id": flow_id, "name": name, "state": {"type": "PENDING"}}).json()["id"]
                client.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "RUNNING"}}).raise_for_status()
                client.post("/artifacts/", json={"type": "table", "data": [[1]], "flow_run_id": run_id}).raise_for_status()
                client.post(f"/flow_runs/{run_id}/set_state", json={"state": {"type": "COMPLETED"}}).raise_for_status()
                runs[name] = run_id

        def events_of(name: str) -> int:
            return query(database, "SELECT count(*) FROM events WHERE resource_id = ?", f"prefect.flow-run.{runs[name]}")[0][0]

        wait_until(lambda: events_of("old") and events_of("recent"), 60, "the runs' events were not persisted")
    backdate(database, "flow_run", "end_time", "id = ?", (runs["old"],), 40)
    old_events = "resource_id = ?", (f"prefect.flow-run.{runs['old']}",)
    backdate(database, "events", "occurred", *old_events, 10)
    backdate(database, "event_resources", "occurred", "event_id IN (SELECT id FROM events WHERE resource_id = ?)", old_events[1], 10)
    events_before = {name: events_of(name) for name in runs}

    with prefect_server_part_running(tmp_path, seconds=180):  # the vacuum runs as the server starts, then hourly

        def run_names() -> set[str]:
            return {name for (name,) in query(database, "SELECT name FROM flow_run")}

        wait_until(lambda: run_names() == {"recent"} and events_of("old") == 0, 120, "the old run and its events to be vacuumed", every=0.5)
        artifacts = {run for (run,) in query(database, "SELECT flow_run_id FROM artifact")}
    assert artifacts == {runs["recent"]}
    assert events_of("recent") == events_before["recent"] > 0
