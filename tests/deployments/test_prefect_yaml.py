"""prefect.yaml is the one list of deployments: `prefect deploy --all` and `vigia up` agree on it."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from deployments.serve import build_deployments
from store.health_runs import CHECK_INTERVAL

ROOT = Path(__file__).resolve().parents[2]


async def read_deployments() -> dict:
    async with get_client() as client:
        return {(await client.read_flow(d.flow_id)).name + "/" + d.name: d for d in await client.read_deployments()}


def test_prefect_deploy_all_creates_every_deployment_with_its_schedule_and_time_zone(prefect_server):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "VIGIA_TIMEZONE": "America/Sao_Paulo"}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    subprocess.run([*prefect, "work-pool", "create", "vigia", "--type", "process", "--overwrite"], env=env, cwd=ROOT, check=True, capture_output=True)
    deployed = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = asyncio.run(read_deployments())
    health = deployments["health-check/every-5-min"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in health.schedules] == [("*/5 * * * *", "UTC")]
    assert (health.work_pool_name, health.tags) == ("vigia", ["vigia"])
    assert (health.global_concurrency_limit.limit, health.concurrency_options.collision_strategy.value) == (1, "CANCEL_NEW")
    assert set(health.parameter_openapi_schema["properties"]) == {"targets_block", "confirm_after_seconds", "recheck_every_seconds"}
    assert all(p.get("description") for p in health.parameter_openapi_schema["properties"].values())


def test_vigia_up_serves_the_same_definitions_unpaused():
    served = {d.name: d for d in build_deployments({"VIGIA_TIMEZONE": "America/Sao_Paulo"})}
    health = served["every-5-min"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in health.schedules] == [("*/5 * * * *", "UTC")]
    assert (health.paused, health.tags, health.concurrency_limit) == (False, ["vigia"], 1)
    assert health.entrypoint == "flows.health_check.health_check"


def test_the_health_check_schedule_matches_the_interval_used_for_freshness():
    assert CHECK_INTERVAL.total_seconds() == 300
    assert '- cron: "*/5 * * * *"' in (ROOT / "prefect.yaml").read_text()
