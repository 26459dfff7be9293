"""A scheduled run that fails or crashes alerts once, with its link: `critical` for a backup, `warning` for the others."""

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled

from blocks.alert_routes import AlertRoutes
from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.backup import backup
from flows.health_check import health_check
from store.alerts import list_alerts, list_deliveries
from store.database import open_session
from tasks.run_failures import alert_on_failed_run
from tests.fakes.capture import CaptureServer
from tests.fakes.server import free_port
from tests.served_deployments import serving

pytestmark = pytest.mark.usefixtures("prefect_server")


def routes(base: str) -> str:
    host = base.removeprefix("http://")
    return f"urls:\n  - json://{host}/ok/telegram:\n      - tag: critical\n  - json://{host}/ok/discord:\n      - tag: warning, critical\n"


async def read_run(flow_run_id):
    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_a_failed_health_check_alerts_warning_once_with_the_runs_link(sqlite_store_url, tmp_path):
    capture = CaptureServer()
    with capture.serving() as base:
        VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url, timezone="UTC").save("default", overwrite=True)
        AlertRoutes(config=routes(base), config_format="yaml").save("default", overwrite=True)
        try:
            state = asyncio.run(health_check(targets_block=f"absent-{uuid.uuid4().hex[:8]}", return_state=True))
            [message] = capture.wait_for(count=1)
            run = asyncio.run(read_run(state.state_details.flow_run_id))
            # The runner would run on_crashed for the same run if its process then died: still one alert.
            asyncio.run(alert_on_failed_run("warning")(flow=health_check, flow_run=run, state=state))
        finally:
            AlertRoutes().save("default", overwrite=True)
    assert state.is_failed()
    assert message.path == "/ok/discord"
    assert message.json["title"] == f"[WARNING] {run.name} failed"
    assert f"Prefect run: http://127.0.0.1:4200/runs/flow-run/{run.id}" in message.json["message"]
    assert "Reason: Flow run encountered an exception: MissingBlock: health-targets/absent-" in message.json["message"]
    with open_session(sqlite_store_url) as session:
        [alert] = list_alerts(session)
        assert (alert.key, alert.kind, alert.severity, alert.status) == (f"flow-run:{run.id}", "run", "warning", "sent")
        assert [d.status for d in list_deliveries(session, alert.id)] == ["success"]
    assert len(capture.received) == 1


def test_a_backup_that_fails_before_its_own_alerting_alerts_critical(sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    state = backup(plan_block=f"absent-{uuid.uuid4().hex[:8]}", return_state=True)
    assert state.is_failed()
    with open_session(sqlite_store_url) as session:
        [alert] = list_alerts(session)
    run_id = state.state_details.flow_run_id
    assert (alert.key, alert.severity, alert.status) == (f"flow-run:{run_id}", "critical", "logged")
    assert alert.title.startswith("[CRITICAL] backup ") and alert.title.endswith(" failed")
    assert f"/runs/flow-run/{run_id}" in alert.body


def flow_run_process(flow_run_id) -> int | None:
    """The pid of the process running the flow run (the runner gives it PREFECT__FLOW_RUN_ID), or None."""
    wanted = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


async def cancel_active_runs(client, deployment_id) -> None:
    """The suite's Prefect server is shared: a run of the deployment another test left Running would hold its one slot
    (CANCEL_NEW), and this test's run would be cancelled before it starts."""
    active = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])))
    for run in await client.read_flow_runs(flow_run_filter=active, deployment_filter=DeploymentFilter(id={"any_": [deployment_id]})):
        await client.set_flow_run_state(run.id, Cancelled(), force=True)


def poll(read, done, what: str, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {seconds:.0f} s: {value!r}")
        time.sleep(0.2)


def test_a_health_check_killed_mid_run_is_marked_crashed_and_alerts_once(prefect_server, sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    targets = f"t-{uuid.uuid4().hex[:12]}"
    # A target that keeps failing while confirmation is far away: the run re-probes it for minutes.
    HealthTargets(targets=[HealthTarget(name="gone", kind="tcp", url=f"127.0.0.1:{free_port()}")]).save(targets, overwrite=True)

    async def start_run():
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("health-check/every-5-min")
            await cancel_active_runs(client, deployment.id)
            parameters = {"targets_block": targets, "confirm_after_seconds": 3600, "recheck_every_seconds": 1}
            return await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)

    def alerts():
        with open_session(sqlite_store_url) as session:
            return list_alerts(session)

    capture = CaptureServer()
    with capture.serving() as base, serving(prefect_server):
        AlertRoutes(config=routes(base), config_format="yaml").save("default", overwrite=True)
        try:
            run = asyncio.run(start_run())
            pid = poll(lambda: flow_run_process(run.id), bool, "the flow run's process")
            poll(lambda: asyncio.run(read_run(run.id)).state.type.value, lambda value: value == "RUNNING", "the run Running")
            os.kill(pid, signal.SIGKILL)
            crashed = poll(lambda: asyncio.run(read_run(run.id)), lambda r: r.state.type.value == "CRASHED", "the run Crashed")
            [message] = capture.wait_for(count=1, timeout=60)  # sent by the runner, which saw the process die
            [alert] = poll(alerts, lambda stored: stored and stored[0].status != "sending", "the delivery recorded")
        finally:
            AlertRoutes().save("default", overwrite=True)
    assert (message.path, message.json["title"]) == ("/ok/discord", f"[WARNING] {crashed.name} crashed")
    assert alert.status == "sent"
    assert (alert.key, alert.severity) == (f"flow-run:{run.id}", "warning")
    assert alert.title == f"[WARNING] {crashed.name} crashed"
    assert "Reason: Process exited with status code: -9" in alert.body
    assert f"/runs/flow-run/{run.id}" in alert.body
