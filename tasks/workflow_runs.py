"""Workflow runs per deployment, counted by the Prefect API (the error-rate SLA's flow-run half)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterEndTime,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType

from store.sla import WorkflowRuns

_FINISHED = {"completed": StateType.COMPLETED, "failed": StateType.FAILED, "crashed": StateType.CRASHED, "cancelled": StateType.CANCELLED}


@dataclass(frozen=True)
class WorkflowRunCount:
    """Runs of one deployment (or of all ad-hoc runs) that finished or were late in a window."""

    flow: str
    deployment: str  # "(ad hoc)" for runs started without a deployment
    completed: int
    failed: int
    crashed: int
    cancelled: int
    late: int

    @property
    def finished(self) -> int:
        """Runs that reached a verdict: completed, failed or crashed (cancelled runs have none)."""
        return self.completed + self.failed + self.crashed


@task(name="count-workflow-runs", cache_policy=NO_CACHE)
async def count_workflow_runs(start: datetime, end: datetime) -> list[WorkflowRunCount]:
    """Count, per deployment, the runs that ended in [start, end) by state type, and the late ones.

    "Late" is a state name under the SCHEDULED type, so it is counted by name over the runs
    expected to start in the window.
    """
    async with get_client() as client:
        deployments = await client.read_deployments()
        flows = {flow.id: flow.name for flow in await client.read_flows()}
        groups = [(flows.get(d.flow_id, "?"), d.name, FlowRunFilterDeploymentId(any_=[d.id])) for d in deployments]
        groups.append(("*", "(ad hoc)", FlowRunFilterDeploymentId(is_null_=True)))

        async def count(deployment_filter, state: FlowRunFilterState, by_end: bool) -> int:
            window = (
                {"end_time": FlowRunFilterEndTime(after_=start, before_=end)}
                if by_end
                else {"expected_start_time": FlowRunFilterExpectedStartTime(after_=start, before_=end)}
            )
            return await client.count_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=deployment_filter, state=state, **window))

        counts = []
        for flow, deployment, deployment_filter in groups:
            finished = await asyncio.gather(
                *(
                    count(deployment_filter, FlowRunFilterState(type=FlowRunFilterStateType(any_=[state])), True)
                    for state in _FINISHED.values()
                )
            )
            late = await count(deployment_filter, FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"])), False)
            counts.append(WorkflowRunCount(flow, deployment, *finished, late))
    return [item for item in counts if item.finished or item.cancelled or item.late or item.deployment != "(ad hoc)"]


def total_runs(counts: list[WorkflowRunCount]) -> WorkflowRuns:
    """Return the totals the error-rate SLA takes: finished runs and failed or crashed ones."""
    return WorkflowRuns(finished=sum(item.finished for item in counts), failed=sum(item.failed + item.crashed for item in counts))
