"""Flow runs from the Prefect API: counts for the error rate, runs per deployment, recent runs.

The Overview's two counts go to the REST API with httpx: importing Prefect's client costs ~2.6 s of a first
visit (its settings, plugins and analytics). The Workflows page's lists go through Prefect's own client.

The dashboard never starts a run; it links each run to its page in the Prefect UI, where it can be re-run.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import httpx
import streamlit as st

from store.sla import WorkflowRuns

TTL_SECONDS = 60
TIMEOUT_SECONDS = 5.0
RECENT_RUNS = 200
FINISHED_TYPES = ("COMPLETED", "FAILED", "CRASHED")
FAILED_TYPES = ("FAILED", "CRASHED")


class PrefectUnavailable(Exception):
    """The Prefect API did not answer or refused; the message names it and the next step."""


@dataclass(frozen=True)
class RunLink:
    """One flow run as the Workflows page lists it, with its page in the Prefect UI."""

    id: str
    name: str
    deployment: str
    state: str  # the state's name: Completed, Failed, Crashed, Late, Running…
    state_type: str
    expected_start: datetime | None
    start: datetime | None
    end: datetime | None
    seconds: float | None
    url: str


@dataclass(frozen=True)
class DeploymentRuns:
    """The runs of one deployment in a window, by outcome."""

    deployment: str  # flow/deployment, as `prefect deployment run` names it
    completed: int
    failed: int
    crashed: int
    late: int
    running: int
    url: str  # the deployment's page in the Prefect UI

    @property
    def finished(self) -> int:
        """Completed, failed and crashed runs."""
        return self.completed + self.failed + self.crashed


def run_url(ui_url: str, run_id: str) -> str:
    """Return the Prefect UI page of one flow run."""
    return f"{ui_url}/runs/flow-run/{run_id}"


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def workflow_counts(api_url: str, start: datetime, end: datetime) -> WorkflowRuns:
    """Return the runs that finished in [start, end) and how many failed or crashed, as the error-rate SLA counts them.

    Raises:
        PrefectUnavailable: when the API does not answer.
    """
    counts = []
    # One client for the three requests: one connection, and one TLS context built instead of three (~10 ms each).
    with httpx.Client(headers=_auth_headers(), timeout=TIMEOUT_SECONDS) as http:
        _check_health(http, api_url)
        for state_types in (FINISHED_TYPES, FAILED_TYPES):
            # The body Prefect's client sends for count_flow_runs(flow_run_filter=...) with an end-time range and state types.
            ended = {"end_time": {"after_": start.isoformat(), "before_": end.isoformat()}, "state": {"type": {"any_": list(state_types)}}}
            try:
                response = http.post(f"{api_url}/flow_runs/count", json={"flow_runs": ended})
                response.raise_for_status()
            except httpx.HTTPError as error:
                raise PrefectUnavailable(f"the Prefect API at {api_url} failed: {str(error).splitlines()[0]}") from error
            counts.append(int(response.json()))
    return WorkflowRuns(finished=counts[0], failed=counts[1])


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def deployment_runs(api_url: str, ui_url: str, start: datetime, end: datetime) -> list[DeploymentRuns]:
    """Return per deployment its runs in [start, end): finished by outcome, late and running.

    Raises:
        PrefectUnavailable: when the API does not answer.
    """
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    report = []
    with _client(api_url) as client:
        for deployment in client.read_deployments():
            only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            counts = {
                kind: client.count_flow_runs(deployment_filter=only, flow_run_filter=_ended_in(start, end, (kind,)))
                for kind in FINISHED_TYPES
            }
            late = client.count_flow_runs(deployment_filter=only, flow_run_filter=_state_named("Late", start, end))
            running = client.count_flow_runs(deployment_filter=only, flow_run_filter=_of_types(("RUNNING",)))
            name = f"{_flow_name(client, deployment.flow_id)}/{deployment.name}"
            report.append(
                DeploymentRuns(
                    name,
                    counts["COMPLETED"],
                    counts["FAILED"],
                    counts["CRASHED"],
                    late,
                    running,
                    f"{ui_url}/deployments/deployment/{deployment.id}",
                )
            )
    return sorted(report, key=lambda item: item.deployment)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def recent_runs(api_url: str, ui_url: str, start: datetime, end: datetime) -> list[RunLink]:
    """Return the newest runs expected to start in [start, end), at most RECENT_RUNS.

    Raises:
        PrefectUnavailable: when the API does not answer.
    """
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterExpectedStartTime
    from prefect.client.schemas.sorting import FlowRunSort

    window = FlowRunFilter(expected_start_time=FlowRunFilterExpectedStartTime(after_=start, before_=end))
    with _client(api_url) as client:
        runs = client.read_flow_runs(flow_run_filter=window, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=RECENT_RUNS)
        names = {d.id: f"{_flow_name(client, d.flow_id)}/{d.name}" for d in client.read_deployments()}
    return [
        RunLink(
            id=str(run.id),
            name=run.name,
            deployment=names.get(run.deployment_id, "(no deployment)"),
            state=run.state.name if run.state else "Unknown",
            state_type=run.state.type.value if run.state else "UNKNOWN",
            expected_start=run.expected_start_time,
            start=run.start_time,
            end=run.end_time,
            seconds=run.total_run_time.total_seconds() if run.start_time else None,
            url=run_url(ui_url, str(run.id)),
        )
        for run in runs
    ]


@contextmanager
def _client(api_url: str) -> Iterator:
    """Yield Prefect's sync client on `api_url`, after a quick health check so a dead server fails in seconds."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

    with httpx.Client(headers=_auth_headers(), timeout=TIMEOUT_SECONDS) as http:
        _check_health(http, api_url)
    # The health check proved the server answers: no slow back-off on top of it when it then fails.
    updates = {PREFECT_API_URL: api_url, PREFECT_CLIENT_MAX_RETRIES: 1}
    try:
        with temporary_settings(updates=updates), get_client(sync_client=True, httpx_settings={"timeout": TIMEOUT_SECONDS}) as client:
            yield client
    except (httpx.HTTPError, RuntimeError) as error:
        raise PrefectUnavailable(f"the Prefect API at {api_url} failed: {str(error).splitlines()[0]}") from error


def _auth_headers() -> dict[str, str]:
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}


def _check_health(http: httpx.Client, api_url: str) -> None:
    try:
        response = http.get(f"{api_url}/health")
    except httpx.HTTPError as error:
        raise PrefectUnavailable(f"the Prefect API at {api_url} does not answer ({type(error).__name__})") from error
    if response.status_code == 401:
        raise PrefectUnavailable(f"the Prefect API at {api_url} wants credentials (401): set PREFECT_API_AUTH_STRING")
    if response.status_code != 200:
        raise PrefectUnavailable(f"the Prefect API at {api_url} answered {response.status_code} to /health")


def _flow_name(client, flow_id) -> str:
    return client.read_flow(flow_id).name


def _ended_in(start: datetime, end: datetime, state_types: tuple[str, ...]):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterEndTime

    return FlowRunFilter(end_time=FlowRunFilterEndTime(after_=start, before_=end), state=_of_types(state_types).state)


def _of_types(state_types: tuple[str, ...]):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    return FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(t) for t in state_types])))


def _state_named(name: str, start: datetime, end: datetime):
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    # "Late" is a state name under the SCHEDULED type, not a type of its own.
    return FlowRunFilter(
        state=FlowRunFilterState(name=FlowRunFilterStateName(any_=[name])),
        expected_start_time=FlowRunFilterExpectedStartTime(after_=start, before_=end),
    )
