"""Serve every deployment of prefect.yaml in this process (what `vigia up` runs as a child).

Building a deployment needs its flow (its parameters' schema, its version), and importing every flow would keep
pandas, Altair and vl-convert (the weekly report's) in this long-lived process for nothing: the runner starts each
flow run in a subprocess of its own. So a short-lived child imports the flows and describes the deployments as
JSON (`python -m deployments.serve --describe`), and this process serves them from that description."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

from prefect import serve
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.events import DeploymentTriggerTypes
from prefect.runner import Runner
from prefect.utilities.callables import ParameterSchema
from pydantic import TypeAdapter

from deployments.definitions import PREFECT_YAML, read_definitions

RUN_LIMIT = 4  # serve(limit=None) would start a whole backlog of late runs at once
DESCRIBE_SECONDS = 180

TRIGGERS: TypeAdapter[DeploymentTriggerTypes] = TypeAdapter(DeploymentTriggerTypes)  # as `prefect deploy` validates them

logger = logging.getLogger(__name__)


def build_deployments(path: Path = PREFECT_YAML) -> list[RunnerDeployment]:
    """Turn prefect.yaml's definitions into runner deployments, as `prefect deploy` would (imports every flow).

    Un-paused unless prefect.yaml pauses one: a previous serve() may have paused them on shutdown."""
    return [
        definition.load_flow().to_deployment(
            name=definition.name,
            description=definition.description,
            version=definition.version,
            version_type=definition.version_type,
            tags=definition.tags,
            schedules=definition.schedules,
            triggers=[TRIGGERS.validate_python(spec) for spec in definition.triggers],
            parameters=definition.parameters,
            concurrency_limit=definition.concurrency_limit,
            enforce_parameter_schema=True if definition.enforce_parameter_schema is None else definition.enforce_parameter_schema,
            paused=bool(definition.paused),
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for definition in read_definitions(path)
    ]


def describe_deployments(deployments: list[RunnerDeployment]) -> list[dict]:
    """What serving a deployment needs, as JSON-able dicts: its fields, schedules, triggers, parameter schema, entrypoint type."""
    return [
        {
            "fields": deployment.model_dump(mode="json", exclude={"storage", "schedules", "triggers"}),
            "schedules": [item.model_dump(mode="json", exclude_unset=True) for item in deployment.schedules or []],
            "triggers": [trigger.model_dump(mode="json") for trigger in deployment.triggers],
            "parameter_schema": deployment._parameter_openapi_schema.model_dump(mode="json", exclude_unset=True),  # as apply() sends it
            "entrypoint_type": deployment.entrypoint_type.value,
            "version_from_flow": deployment._version_from_flow,
        }
        for deployment in deployments
    ]


def deployments_from_description(described: list[dict]) -> list[RunnerDeployment]:
    """Rebuild the runner deployments `describe_deployments` described, without importing any flow."""
    deployments = []
    for item in described:
        deployment = RunnerDeployment(
            **item["fields"],
            schedules=[DeploymentScheduleCreate(**schedule) for schedule in item["schedules"]],
            triggers=[TRIGGERS.validate_python(trigger) for trigger in item["triggers"]],
        )
        # Private in Prefect 3.9.1: to_deployment() sets them from the flow, and apply() sends them.
        deployment._parameter_openapi_schema = ParameterSchema(**item["parameter_schema"])
        deployment._entrypoint_type = EntrypointType(item["entrypoint_type"])
        deployment._version_from_flow = item["version_from_flow"]
        deployments.append(deployment)
    return deployments


def described_in_child() -> list[RunnerDeployment]:
    """Have a short-lived child import the flows and describe their deployments; rebuild them here.

    Raises:
        RuntimeError: when the child fails, with the end of what it printed.
    """
    result = subprocess.run(
        [sys.executable, "-m", "deployments.serve", "--describe"],
        capture_output=True,
        text=True,
        timeout=DESCRIBE_SECONDS,
    )
    if result.returncode != 0:
        raise RuntimeError(f"describing prefect.yaml's deployments failed (exit {result.returncode}): {result.stderr[-2000:]}")
    return deployments_from_description(json.loads(result.stdout))


async def serve_with_transcriber(deployments: list[RunnerDeployment]) -> None:
    """Serve the deployments and run a transcriber beside them until SIGINT or SIGTERM.

    One process instead of two: both load Prefect's client, and the runner only polls (its flow runs are
    subprocesses), so together they take ~80 MB less than apart (measured on the idle platform). The
    transcriber has a thread of its own (deployments/dispatch.py), so a stop lets its batches finish.
    """
    from deployments.dispatch import TranscriberThread
    from deployments.transcriber import DRAIN_SECONDS, configured
    from tasks.zombies import sweep_forever

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    runner = Runner(pause_on_shutdown=False, limit=RUN_LIMIT)
    for deployment in deployments:
        await runner.add_deployment(deployment)
    transcriber = TranscriberThread.from_config(await configured())
    serving = asyncio.create_task(runner.start())
    done_sweeping = asyncio.Event()
    sweeping = asyncio.create_task(sweep_forever(done_sweeping))  # runs whose process died: marked Crashed, alerted
    for signum in (signal.SIGINT, signal.SIGTERM):  # after runner.start() has set its own SIGTERM handler
        loop.add_signal_handler(signum, stop.set)
    await asyncio.to_thread(transcriber.start)
    try:
        while not stop.is_set() and not serving.done() and transcriber.is_alive():
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
    finally:
        done_sweeping.set()
        await asyncio.to_thread(transcriber.stop, DRAIN_SECONDS + 10)
        await runner.astop()
        await sweeping
    if serving.done() and not serving.cancelled() and serving.exception() is not None:
        raise serving.exception()
    await asyncio.gather(serving, return_exceptions=True)
    if not stop.is_set():
        raise RuntimeError("the runner or the transcriber stopped on its own (see above)")


def main(argv: list[str] | None = None) -> None:
    """Serve prefect.yaml's deployments until interrupted; with --describe, print their description and exit;
    with --with-transcriber, run a transcriber in this process too."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--describe"]:
        print(json.dumps(describe_deployments(build_deployments())))
        return
    deployments = described_in_child()
    logger.info("serving %d deployments", len(deployments))
    if args == ["--with-transcriber"]:
        logging.getLogger("deployments").setLevel(logging.INFO)
        asyncio.run(serve_with_transcriber(deployments))
        return
    serve(*deployments, limit=RUN_LIMIT, pause_on_shutdown=False, print_starting_message=False)


if __name__ == "__main__":
    main()
