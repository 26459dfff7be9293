"""prefect.yaml on worker hosts: `vigia setup` creates the work pool, `prefect --no-prompt deploy --all` then deploys
every entry with a pull step that starts each run in the worker host's own checkout."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from .test_worker import PULL_FROM_CHECKOUT

ROOT = Path(__file__).resolve().parents[2]


async def delete_pool(name: str) -> None:
    async with get_client() as client:
        try:
            await client.delete_work_pool(name)
        except ObjectNotFound:
            pass


async def pool_type(name: str) -> str:
    async with get_client() as client:
        return (await client.read_work_pool(name)).type


async def pull_steps_of(name: str) -> list:
    async with get_client() as client:
        return (await client.read_deployment_by_name(name)).pull_steps


def test_prefect_deploy_all_works_after_vigia_setup_made_the_pool_and_records_the_checkout_pull_step(prefect_server, tmp_path):
    asyncio.run(delete_pool("vigia"))
    env = {k: v for k, v in os.environ.items() if k != "VIGIA_CHECKOUT"}
    env.update(
        {
            "PREFECT_API_URL": prefect_server,
            "VIGIA_HOME": str(tmp_path),
            "VIGIA_DATABASE_URL": f"sqlite:///{tmp_path / 'vigia.db'}",
            "VIGIA_TIMEZONE": "UTC",
        }
    )
    setup = subprocess.run(["vigia", "setup"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert setup.returncode == 0, setup.stderr
    assert "work pool vigia: created (process)" in setup.stdout
    assert asyncio.run(pool_type("vigia")) == "process"

    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    deployed = subprocess.run([*prefect, "deploy", "--all"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    for name in ("health-check/every-5-min", "backup/daily", "transcribe-voice-note/on-webhook"):
        assert asyncio.run(pull_steps_of(name)) == PULL_FROM_CHECKOUT  # filled on the worker, not here

    again = subprocess.run(["vigia", "setup"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert "work pool vigia: process, kept" in again.stdout
