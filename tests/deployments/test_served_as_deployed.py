"""`vigia up` serves exactly what `prefect --no-prompt deploy --all` deploys: one prefect.yaml, deployed, read back
through Prefect's API, deleted, then served as `vigia up` serves it and read back again, field by field.

A copy of prefect.yaml adds what it does not use today, so nothing it may use later is dropped unseen: an interval and
an rrule schedule, per-schedule parameters, an inactive schedule with a slug, a trigger, a version, deployment
parameters, a concurrency grace period, no enforced schema, a description left to the flow's docstring."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.runner import Runner

from deployments.definitions import PREFECT_YAML, read_definitions
from deployments.serve import RUN_LIMIT, build_deployments, deployments_from_description, describe_deployments
from deployments.work_pool import ensure_work_pool

ROOT = Path(__file__).resolve().parents[2]
# What differs by design: where a worker finds the code (pool, queue, pull steps, file path) against the runner's
# in-process module path (compared apart), and what the server stamps on every write.
WHERE_IT_RUNS = {"work_pool_name", "work_queue_name", "work_queue_id", "pull_steps", "path", "job_variables", "entrypoint"}
STAMPS = {"id", "created", "updated", "created_by", "updated_by", "flow_id", "last_polled", "status", "deployment_id"}


def richer_prefect_yaml(folder: Path) -> Path:
    """prefect.yaml with every kind of field `prefect deploy` honours that the real one does not use yet."""
    document = yaml.safe_load(PREFECT_YAML.read_text())
    entries = {entry["entrypoint"].partition(":")[2]: entry for entry in document["deployments"]}
    health = entries["health_check"]
    health["version"] = "2026.12.5"
    health["schedules"].append(
        {
            "interval": 3600,
            "anchor_date": "2026-01-01T00:30:00",
            "timezone": "{{ $VIGIA_TIMEZONE }}",
            "slug": "hourly-quick",
            "active": False,
            "parameters": {"confirm_after_seconds": 0},
        }
    )
    health["concurrency_limit"]["grace_period_seconds"] = 120
    entries["weekly_analytics"]["schedules"].append(
        {"rrule": "FREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0", "timezone": "UTC", "parameters": {"send_email": False}}
    )
    entries["transcribe_voice_note"]["triggers"] = [
        {
            "match": {"prefect.resource.id": "vigia.voice-note.*"},
            "expect": ["vigia.voice-note.received"],
            "parameters": {"voice_note_ids": ["{{ event.payload.voice_note_id }}"]},
        }
    ]
    entries["backup"]["parameters"] = {"verify": False}
    entries["restore"]["enforce_parameter_schema"] = False
    del entries["restore"]["description"]
    path = folder / "prefect.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def deploy_with_prefect(prefect_file: Path, api_url: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": api_url}
    argv = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    deployed = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def describe_like_the_child(prefect_file: Path) -> list[dict]:
    """What `python -m deployments.serve --describe` prints."""
    return json.loads(json.dumps(describe_deployments(build_deployments(prefect_file))))


async def serve_like_vigia_up(described: list[dict]) -> None:
    """What `python -m deployments.serve` does with the child's description: rebuilt and added to the runner."""
    runner = Runner(pause_on_shutdown=False, limit=RUN_LIMIT)
    for deployment in deployments_from_description(described):
        await runner.add_deployment(deployment)


async def read_back(full_names: list[str]) -> dict[str, dict]:
    """Each deployment as Prefect's API holds it (its automations too), without what differs by design."""
    seen = {}
    async with get_client() as client:
        for full_name in full_names:
            deployment = await client.read_deployment_by_name(full_name)
            automations = await client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
            fields = deployment.model_dump(mode="json", exclude=WHERE_IT_RUNS | STAMPS)
            fields["entrypoint"] = deployment.entrypoint
            fields["global_concurrency_limit"] = deployment.global_concurrency_limit.limit if deployment.global_concurrency_limit else None
            fields["schedules"] = [s.model_dump(mode="json", exclude=STAMPS) for s in deployment.schedules]
            fields["automations"] = [a.model_dump(mode="json", exclude=STAMPS) for a in automations]
            seen[full_name] = json.loads(json.dumps(fields).replace(str(deployment.id), "<this deployment>"))
    return seen


async def delete_deployments(full_names: list[str]) -> None:
    async with get_client() as client:
        for full_name in full_names:
            deployment = await client.read_deployment_by_name(full_name)
            await client.delete_resource_owned_automations(f"prefect.deployment.{deployment.id}")
            await client.delete_deployment(deployment.id)


def module_path(entrypoint: str) -> str:
    path, _, function = entrypoint.partition(":")
    return f"{path.removesuffix('.py').replace('/', '.')}.{function}"


@pytest.mark.timeout(600)
def test_vigia_up_serves_every_field_prefect_deploy_deploys_from_prefect_yaml(prefect_server, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "America/Sao_Paulo")
    prefect_file = richer_prefect_yaml(tmp_path)
    flows = {d.entrypoint: (d.load_flow(), d.name) for d in read_definitions(prefect_file)}
    full_names = [f"{flow.name}/{name}" for flow, name in flows.values()]
    asyncio.run(ensure_work_pool())

    deploy_with_prefect(prefect_file, prefect_server)
    deployed = asyncio.run(read_back(full_names))
    asyncio.run(delete_deployments(full_names))
    try:
        asyncio.run(serve_like_vigia_up(describe_like_the_child(prefect_file)))
        served = asyncio.run(read_back(full_names))
    finally:  # the suite's Prefect server is shared: scheduled copies with limits would hold other tests' runs
        asyncio.run(delete_deployments(full_names))

    for full_name in full_names:
        deployed[full_name]["entrypoint"] = module_path(deployed[full_name]["entrypoint"])
        assert served[full_name] == deployed[full_name], full_name
    # What the comparison covers, as prefect deploy made it.
    health = deployed["health-check/every-5-min"]
    cron, hourly = sorted(health["schedules"], key=lambda s: s["slug"] or "")
    assert (cron["schedule"]["cron"], cron["active"], cron["parameters"]) == ("*/5 * * * *", True, {})
    assert (hourly["schedule"]["interval"], hourly["schedule"]["timezone"], hourly["active"], hourly["slug"], hourly["parameters"]) == (
        3600.0,
        "America/Sao_Paulo",
        False,
        "hourly-quick",
        {"confirm_after_seconds": 0},
    )
    assert (health["version"], health["global_concurrency_limit"], health["concurrency_options"]) == (
        "2026.12.5",
        1,
        {"collision_strategy": "CANCEL_NEW", "grace_period_seconds": 120},
    )
    weekly = deployed["weekly-analytics/weekly"]
    [monthly] = [s for s in weekly["schedules"] if "rrule" in s["schedule"]]
    assert monthly["schedule"]["rrule"].endswith("\nFREQ=MONTHLY;BYMONTHDAY=1;BYHOUR=9;BYMINUTE=0")
    assert monthly["parameters"] == {"send_email": False}
    [trigger] = deployed["transcribe-voice-note/on-webhook"]["automations"]
    assert trigger["name"] == "on-webhook__automation_1"
    assert trigger["actions"][0]["parameters"] == {"voice_note_ids": ["{{ event.payload.voice_note_id }}"]}
    assert deployed["backup/daily"]["parameters"] == {"verify": False}
    restore = deployed["restore/on-demand"]
    assert (restore["enforce_parameter_schema"], restore["description"]) == (False, flows["flows/restore.py:restore"][0].description)
