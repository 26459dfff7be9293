"""Workflow runs are counted by the Prefect API per deployment and state type; Late is a state name."""

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Completed, Crashed, Failed, Late, Running

from store.sla import ErrorRate
from tasks.workflow_runs import count_workflow_runs, total_runs

pytestmark = pytest.mark.usefixtures("prefect_server")


@flow(name="counted-flow")
def counted_flow() -> None:
    """A flow whose runs the test creates and moves by hand."""


async def runs_in_states(deployment_name: str) -> None:
    async with get_client() as client:
        flow_id = await client.create_flow(counted_flow)
        deployment_id = await client.create_deployment(flow_id=flow_id, name=deployment_name, entrypoint="x.py:counted_flow")
        finals = [Completed(), Completed(), Completed(), Failed(), Crashed(), Cancelled()]
        for final in finals:
            run = await client.create_flow_run_from_deployment(deployment_id)
            await client.set_flow_run_state(run.id, Running(), force=True)
            await client.set_flow_run_state(run.id, final, force=True)
        late = await client.create_flow_run_from_deployment(deployment_id)
        await client.set_flow_run_state(late.id, Late(scheduled_time=datetime.now(timezone.utc)), force=True)


def test_runs_are_counted_per_deployment_and_state_and_feed_the_error_rate():
    name = f"counted-{uuid.uuid4().hex[:8]}"
    asyncio.run(runs_in_states(name))
    now = datetime.now(timezone.utc)
    counts = asyncio.run(count_workflow_runs.fn(now - timedelta(hours=1), now + timedelta(minutes=5)))
    [mine] = [item for item in counts if item.deployment == name]
    assert (mine.flow, mine.completed, mine.failed, mine.crashed, mine.cancelled, mine.late) == ("counted-flow", 3, 1, 1, 1, 1)
    totals = total_runs([mine])
    assert (totals.finished, totals.failed) == (5, 2)
    rate = ErrorRate(totals.finished, totals.failed, 0, 0)
    assert rate.workflow_percent == pytest.approx(40.0) and rate.meets_target is False


def test_runs_outside_the_window_are_not_counted():
    name = f"counted-{uuid.uuid4().hex[:8]}"
    asyncio.run(runs_in_states(name))
    past = datetime.now(timezone.utc) - timedelta(days=8)
    counts = asyncio.run(count_workflow_runs.fn(past, past + timedelta(days=7)))
    assert all(item.finished == 0 and item.late == 0 for item in counts if item.deployment == name)
