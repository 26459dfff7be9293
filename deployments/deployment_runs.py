"""CLI runs as runs of their deployments: create one through Prefect's REST API and follow it to its end.

The platform's served runner executes the run, so it counts under its deployment in the UI like a
scheduled one. Only httpx is used (no Prefect import): the command starts fast and needs no
Prefect settings of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

TERMINAL = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
POLL_SECONDS = 0.5
WAITING_NOTICE_SECONDS = 30.0  # a run nobody picks up after this long: say that the runner may be down
LOG_SETTLE_SECONDS = 3.0  # Prefect ships a run's logs in batches (every 2 s): wait for the last one
LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}


class DeploymentRunError(Exception):
    """The deployment is missing, or Prefect's API refused or failed a request."""


@dataclass(frozen=True)
class FinishedRun:
    """A flow run at its end: its id and name, the state it ended in, and the state's message."""

    id: str
    name: str
    state_type: str
    state_name: str
    message: str
    artifact: list[dict] = field(default_factory=list)  # the rows of the table artifact asked for, if any

    @property
    def ok(self) -> bool:
        """Whether the run completed."""
        return self.state_type == "COMPLETED"

    def error(self) -> tuple[str, str]:
        """The exception type and text of a failed run, from its state message ("", message when there is none)."""
        text = self.message.removeprefix("Flow run encountered an exception:").strip()
        kind, separator, rest = text.partition(": ")
        if separator and kind.isidentifier():
            return kind, rest.strip()
        return "", text


class DeploymentRun:
    """One run of a deployment, created and followed through the REST API at `api_url`."""

    def __init__(self, api_url: str, auth: tuple[str, str] | None = None, say: Callable[[str], None] = print):
        self.client = httpx.Client(base_url=api_url.rstrip("/") + "/", auth=auth, timeout=30)
        self.say = say
        self.log_offset = 0

    def start(self, deployment: str, parameters: dict) -> dict:
        """Create a run of `deployment` (`flow/deployment`) with `parameters`; return the flow run as the API shows it.

        Raises:
            DeploymentRunError: when the deployment does not exist or the API refuses.
        """
        found = self._request("GET", f"deployments/name/{deployment}")
        if found is None:
            raise DeploymentRunError(f"deployment {deployment} does not exist on this Prefect server; is `vigia up` serving it?")
        run = self._request("POST", f"deployments/{found['id']}/create_flow_run", json={"parameters": parameters})
        return run

    def follow(self, run: dict, verbose: bool, on_log: Callable[[str], None]) -> FinishedRun:
        """Poll the run until it ends, saying each state it enters and, when `verbose`, passing each log line to `on_log`."""
        started = time.monotonic()
        shown, warned = None, False
        while True:
            run = self._request("GET", f"flow_runs/{run['id']}")
            state = run.get("state") or {}
            if state.get("name") != shown:
                shown = state.get("name")
                self.say(f"run {run['name']} is {shown}")
            if verbose:
                self._stream_logs(run["id"], on_log)
            if state.get("type") in TERMINAL:
                break
            if not warned and state.get("type") in ("SCHEDULED", "PENDING") and time.monotonic() - started > WAITING_NOTICE_SECONDS:
                warned = True
                self.say(f"run {run['name']} still waits for the platform's runner (see `vigia up`'s logs); Ctrl-C stops waiting")
            time.sleep(POLL_SECONDS)
        if verbose:
            self._drain_logs(run["id"], on_log)
        return FinishedRun(run["id"], run["name"], state.get("type", ""), state.get("name", ""), state.get("message") or "")

    def cancel(self, run_id: str) -> None:
        """Ask Prefect to cancel the run (Ctrl-C while following it)."""
        self._request("POST", f"flow_runs/{run_id}/set_state", json={"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})

    def table_artifact(self, run_id: str, key: str) -> list[dict]:
        """The rows of the run's table artifact `key`, or [] when the run made none."""
        body = {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [key]}}, "limit": 1}
        found = self._request("POST", "artifacts/filter", json=body) or []
        if not found:
            return []
        data = found[0].get("data")
        return json.loads(data) if isinstance(data, str) else list(data or [])

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()

    def _drain_logs(self, run_id: str, on_log: Callable[[str], None]) -> None:
        deadline = time.monotonic() + LOG_SETTLE_SECONDS
        while time.monotonic() < deadline:
            self._stream_logs(run_id, on_log)
            time.sleep(POLL_SECONDS)
        self._stream_logs(run_id, on_log)

    def _stream_logs(self, run_id: str, on_log: Callable[[str], None]) -> None:
        body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "offset": self.log_offset, "limit": 200}
        logs = self._request("POST", "logs/filter", json=body) or []
        self.log_offset += len(logs)
        for log in logs:
            at = datetime.fromisoformat(log["timestamp"]).astimezone()
            on_log(f"{at:%H:%M:%S} | {LEVELS.get(log['level'], log['level'])} | {log['message']}")

    def _request(self, method: str, path: str, **kwargs):
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise DeploymentRunError(f"Prefect's API at {self.client.base_url} failed: {error}") from None
        if response.status_code == 404:
            return None
        if response.is_error:
            raise DeploymentRunError(f"Prefect's API refused {method} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()
