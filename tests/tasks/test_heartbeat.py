"""The heartbeat ping is retried within the health check's interval: a blip does not make the monitor report Vigia dead."""

import asyncio
import time
import uuid

import pytest
from fastapi import FastAPI, Response

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.health_check import health_check
from tests.fakes.server import serve_app

pytestmark = pytest.mark.usefixtures("prefect_server")


def monitor(failures: int, status: int) -> tuple[FastAPI, list[float]]:
    """A heartbeat monitor answering `status` to the first `failures` pings, then 200; it records when each arrived."""
    app, arrivals = FastAPI(), []

    @app.get("/ping/{uuid}")
    def ping(uuid: str) -> Response:
        arrivals.append(time.monotonic())
        return Response(status_code=status if len(arrivals) <= failures else 200)

    return app, arrivals


def run_health_check(store_url: str, tmp_path, heartbeat_url: str):
    VigiaSettings(home=str(tmp_path), database_url=store_url, heartbeat_url=heartbeat_url).save("default", overwrite=True)
    name = f"t-{uuid.uuid4().hex[:12]}"
    HealthTargets(targets=[HealthTarget(name="mem", kind="memory")]).save(name, overwrite=True)
    return asyncio.run(health_check(targets_block=name, return_state=True))


def test_a_ping_refused_twice_is_retried_with_backoff_and_gets_through_in_seconds(sqlite_store_url, tmp_path):
    app, arrivals = monitor(failures=2, status=503)
    with serve_app(app) as base:
        started = time.monotonic()
        state = run_health_check(sqlite_store_url, tmp_path, f"{base}/ping/5f0c-secret")
    assert state.is_completed()
    assert len(arrivals) == 3
    first_wait, second_wait = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
    assert 1 <= first_wait < 2 and 2 <= second_wait < 3
    assert arrivals[-1] - started < 30  # well inside the 5-minute interval


def test_a_ping_answered_404_is_not_retried_and_the_health_check_still_completes(sqlite_store_url, tmp_path):
    app, arrivals = monitor(failures=10, status=404)
    with serve_app(app) as base:
        state = run_health_check(sqlite_store_url, tmp_path, f"{base}/ping/wrong-uuid")
    assert state.is_completed()
    assert len(arrivals) == 1
