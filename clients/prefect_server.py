"""The Prefect server's REST API, read with plain HTTP: health, late runs and failed runs."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from clients.errors import ClientError


class PrefectServerError(ClientError):
    """The Prefect API refused or did not answer."""


@dataclass(frozen=True)
class RunCounts:
    """Flow runs that finished in a window, by outcome, and runs late now."""

    completed: int
    failed: int
    crashed: int
    late: int
    latency_ms: float

    @property
    def error_rate_percent(self) -> float:
        """Failed or crashed runs over finished runs, as a percentage (0 without runs)."""
        finished = self.completed + self.failed + self.crashed
        return 0.0 if finished == 0 else 100.0 * (self.failed + self.crashed) / finished


def create_client(api_url: str, *, timeout: float, auth_string: str | None = None) -> httpx.AsyncClient:
    """Return an HTTP client for a Prefect API (`…/api`), with basic auth when the server wants it."""
    headers = {"User-Agent": "vigia/0.1"}
    if auth_string:
        headers["Authorization"] = "Basic " + base64.b64encode(auth_string.encode()).decode()
    return httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=timeout, headers=headers)


async def count_runs(client: httpx.AsyncClient, now: datetime, window: timedelta) -> RunCounts:
    """Check the API's health, then count runs that ended in the window by state type, and late runs.

    Raises:
        PrefectServerError: when the API is unhealthy, refuses, or times out.
    """
    started = time.perf_counter()
    health = await _request(client, "GET", "/health")
    if health is not True:
        raise PrefectServerError(f"Prefect API health answered {health!r}")
    since = (now - window).isoformat()
    counts = {}
    for state_type in ("COMPLETED", "FAILED", "CRASHED"):
        counts[state_type] = await _request(
            client,
            "POST",
            "/flow_runs/count",
            {"flow_runs": {"state": {"type": {"any_": [state_type]}}, "end_time": {"after_": since}}},
        )
    # "Late" is a state name under the SCHEDULED type, not a type of its own.
    late = await _request(client, "POST", "/flow_runs/count", {"flow_runs": {"state": {"name": {"any_": ["Late"]}}}})
    return RunCounts(counts["COMPLETED"], counts["FAILED"], counts["CRASHED"], late, (time.perf_counter() - started) * 1000)


async def _request(client: httpx.AsyncClient, method: str, path: str, body: dict | None = None):
    try:
        response = await client.request(method, path, json=body)
    except httpx.TimeoutException as error:
        raise PrefectServerError(f"Prefect API {path} timed out") from error
    except httpx.HTTPError as error:
        raise PrefectServerError(f"cannot reach the Prefect API at {client.base_url}: {error}") from error
    if response.status_code == 401:
        raise PrefectServerError("Prefect API wants credentials (401): set PREFECT_API_AUTH_STRING")
    if response.status_code >= 400:
        raise PrefectServerError(f"Prefect API {path} answered {response.status_code}: {response.text[:200]}")
    return response.json()
