"""`GET /health` on the receiver: 200 with a summary, 503 when stale or the store is down."""

from datetime import datetime, timedelta, timezone

import httpx

from deployments.webhook import create_app
from store.database import open_session
from store.health_runs import record_health_run
from store.probes import ProbeResult
from store.states import record_probe
from tests.fakes.server import serve_app


def get_health(url: str) -> httpx.Response:
    with serve_app(create_app(url)) as base:
        return httpx.get(f"{base}/health", timeout=10)


def finish_run(url: str, minutes_ago: float) -> None:
    finished = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    with open_session(url) as session:
        record_health_run(session, run_id=None, started_at=finished, finished_at=finished, targets_total=1, targets_down=0)


def test_health_is_200_with_states_after_a_recent_check(store_url):
    now = datetime.now(timezone.utc)
    record_probe(
        store_url, ProbeResult("db", "postgres", now, False, "critical", reason="refused"), critical=True, confirm_after=timedelta(0)
    )
    finish_run(store_url, minutes_ago=1)
    response = get_health(store_url)
    assert response.status_code == 200
    assert response.json() | {"last_check_at": None} == {"status": "ok", "last_check_at": None, "targets": {"db": "DOWN"}, "down": ["db"]}


def test_health_is_503_before_any_check_and_when_the_last_is_older_than_two_intervals(store_url):
    assert get_health(store_url).json()["reason"] == "no health check has completed yet"
    finish_run(store_url, minutes_ago=11)
    response = get_health(store_url)
    assert response.status_code == 503
    assert response.json()["reason"] == "the last health check finished 11 min ago (limit 10 min)"


def test_health_is_503_naming_the_store_when_it_is_unreachable():
    url = "postgresql+psycopg://vigia:hunter22@127.0.0.1:1/vigia"
    response = get_health(url)
    assert response.status_code == 503
    assert response.json()["reason"].startswith("store postgresql+psycopg://vigia:***@127.0.0.1:1/vigia failed:")
    assert "hunter22" not in response.text
