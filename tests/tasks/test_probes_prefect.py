"""`probe_target` for the Prefect API: the real test server, and stand-ins for auth and health failures."""

from __future__ import annotations

import base64
import re

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from blocks.health_targets import HealthTarget
from store.probes import ProbeResult
from tasks.probes import ProbeContext
from tests.fakes.server import serve_app
from tests.tasks.servers import probe

SUMMARY = re.compile(r"error rate (\d+\.\d)% of (\d+) runs in the last hour, (\d+) late")


def prefect_summary(result: ProbeResult) -> tuple[int, int]:
    """The (finished runs, late runs) a prefect probe's reason reports."""
    match = SUMMARY.fullmatch(result.reason)
    assert match, result.reason
    return int(match[2]), int(match[3])


def test_prefect_probe_of_a_healthy_server_is_ok_with_the_error_rate_summary(prefect_server: str) -> None:
    # Other tests share this server and may leave failed runs, so thresholds are set out of reach here;
    # grading of the error rate is covered by the grade tests below.
    target = HealthTarget(name="prefect", kind="prefect", warning_at=100, critical_at=100)

    result = probe(target, ProbeContext(prefect_api_url=prefect_server))

    assert (result.ok, result.level) == (True, "ok")
    match = SUMMARY.fullmatch(result.reason)
    assert match, result.reason
    assert match[1] == f"{result.value:.1f}"


def test_prefect_probe_counts_runs_that_finished_in_the_last_hour_and_late_runs(prefect_server: str) -> None:
    target = HealthTarget(name="prefect", kind="prefect", warning_at=100, critical_at=100)
    context = ProbeContext(prefect_api_url=prefect_server)
    api = httpx.Client(base_url=prefect_server, timeout=10)
    flow_id = api.post("/flows/", json={"name": "vigia-probe-test-flow"}).json()["id"]
    run_ids: list[str] = []
    try:
        before = probe(target, context)
        finished_before, late_before = prefect_summary(before)
        failed_before = round(before.value * finished_before / 100)
        for state_type, state_name in [
            ("COMPLETED", "Completed"),
            ("COMPLETED", "Completed"),
            ("FAILED", "Failed"),
            ("CRASHED", "Crashed"),
            ("SCHEDULED", "Late"),
            ("RUNNING", "Running"),
        ]:
            reply = api.post("/flow_runs/", json={"flow_id": flow_id, "state": {"type": state_type, "name": state_name}})
            assert reply.status_code == 201, reply.text
            run_ids.append(reply.json()["id"])

        after = probe(target, context)
    finally:
        for run_id in run_ids:  # keep the shared server's error rate as other tests found it
            api.delete(f"/flow_runs/{run_id}")
        api.delete(f"/flows/{flow_id}")
        api.close()

    finished_after, late_after = prefect_summary(after)
    assert (finished_after, late_after) == (finished_before + 4, late_before + 1)
    assert after.value == pytest.approx(100 * (failed_before + 2) / (finished_before + 4))


def test_prefect_probe_of_a_closed_port_fails_saying_it_cannot_reach_the_api(closed_port: int) -> None:
    api_url = f"http://127.0.0.1:{closed_port}/api"

    result = probe(HealthTarget(name="prefect", kind="prefect", url=api_url))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"cannot reach the Prefect API at {api_url}/: All connection attempts failed"


def test_prefect_probe_of_a_server_that_never_answers_fails_saying_health_timed_out(silent_port: int) -> None:
    target = HealthTarget(name="prefect", kind="prefect", url=f"http://127.0.0.1:{silent_port}/api", timeout_seconds=0.5)

    result = probe(target)

    assert (result.ok, result.reason) == (False, "Prefect API /health timed out")


def build_prefect_api(auth_string: str | None = None, healthy: bool = True) -> FastAPI:
    """A stand-in for a Prefect API behind basic auth (as PREFECT_SERVER_API_AUTH_STRING makes it), with no runs."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    expected = "Basic " + base64.b64encode(auth_string.encode()).decode() if auth_string else None

    @app.middleware("http")
    async def basic_auth(request: Request, call_next):
        if expected and request.headers.get("authorization") != expected:
            return JSONResponse({"exception_message": "Unauthorized"}, status_code=401)
        return await call_next(request)

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return JSONResponse(healthy)

    @app.post("/api/flow_runs/count")
    async def count() -> JSONResponse:
        return JSONResponse(0)

    return app


def test_prefect_probe_of_a_server_wanting_credentials_fails_saying_which_setting_to_set() -> None:
    with serve_app(build_prefect_api(auth_string="admin:Pr3fect-pass")) as base_url:
        result = probe(HealthTarget(name="prefect", kind="prefect"), ProbeContext(prefect_api_url=f"{base_url}/api"))

    assert (result.ok, result.reason) == (False, "Prefect API wants credentials (401): set PREFECT_API_AUTH_STRING")


def test_prefect_probe_sends_the_auth_string_as_basic_auth() -> None:
    with serve_app(build_prefect_api(auth_string="admin:Pr3fect-pass")) as base_url:
        context = ProbeContext(prefect_api_url=f"{base_url}/api", prefect_auth_string="admin:Pr3fect-pass")
        result = probe(HealthTarget(name="prefect", kind="prefect"), context)

    assert (result.ok, result.level, result.value) == (True, "ok", 0.0)
    assert result.reason == "error rate 0.0% of 0 runs in the last hour, 0 late"


def test_prefect_probe_of_a_server_reporting_unhealthy_fails() -> None:
    with serve_app(build_prefect_api(healthy=False)) as base_url:
        result = probe(HealthTarget(name="prefect", kind="prefect", url=f"{base_url}/api"))

    assert (result.ok, result.reason) == (False, "Prefect API health answered False")


def test_prefect_probe_without_an_api_url_fails_as_not_configured() -> None:
    result = probe(HealthTarget(name="prefect", kind="prefect"), ProbeContext())

    assert (result.ok, result.reason) == (False, "not configured: no Prefect API URL (PREFECT_API_URL)")
