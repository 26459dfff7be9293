"""The `restore/on-demand` deployment takes a reference to its target, never a URL: run parameters are stored in clear."""

from __future__ import annotations

import asyncio

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.exceptions import PrefectHTTPStatusError

from blocks.backup_plan import BackupPlan, BackupSource
from flows.restore import restore
from tasks.restores import RestoreRefused, resolve_target

SECRET_URL = "redis://:restore-Pass-3310@cache:6379/13"


async def start_and_list_runs(deployment_id, targets: list[str]) -> tuple[list[str], list[dict]]:
    refusals = []
    async with get_client() as client:
        for target in targets:
            try:
                await client.create_flow_run_from_deployment(
                    deployment_id, parameters={"run_id": "2026-11-22T030000Z", "source": "redis", "target": target}
                )
            except PrefectHTTPStatusError as error:
                refusals.append(f"{error.response.status_code} {target}")
        runs = await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
    return refusals, [run.parameters for run in runs]


def test_the_deployment_refuses_a_url_target_before_storing_the_run_and_accepts_a_reference(prefect_server):
    deployment_id = restore.to_deployment(name="on-demand-test").apply()

    refusals, stored = asyncio.run(start_and_list_runs(deployment_id, [SECRET_URL, "secret/restore-target", "redis", "/srv/restored"]))

    assert refusals == [f"409 {SECRET_URL}"]
    assert sorted(parameters["target"] for parameters in stored) == ["/srv/restored", "redis", "secret/restore-target"]
    assert "restore-Pass-3310" not in repr(stored)


def test_calling_the_flow_with_a_url_target_fails_saying_to_use_a_secret_block(prefect_server):
    with pytest.raises(RestoreRefused, match=r"^the target is a URL, which would be stored in clear with the run: .*`secret/NAME`$"):
        restore(run_id="2026-11-22T030000Z", source="redis", target=SECRET_URL)


def test_a_target_reference_resolves_to_a_secret_blocks_url_or_a_sources_url(prefect_server, tmp_path):
    Secret(value=SECRET_URL).save("restore-target", overwrite=True)
    plan = BackupPlan(
        local_dir=str(tmp_path / "backups"),
        sources=[
            BackupSource(name="redis", kind="redis", url="redis://:source-Pass@cache:6379/0"),
            BackupSource(name="store", kind="store", url=f"sqlite:///{tmp_path}/vigia.db"),
        ],
    )

    assert resolve_target(plan, "secret/restore-target", "redis") == SECRET_URL
    assert resolve_target(plan, "redis", "redis") == "redis://:source-Pass@cache:6379/0"
    assert resolve_target(plan, "store", "sqlite") == f"{tmp_path}/vigia.db"
    assert resolve_target(plan, "redis://127.0.0.1:6379/13", "redis") == "redis://127.0.0.1:6379/13"  # the CLI's --to
    with pytest.raises(RestoreRefused, match=r"^no Secret block 'absent': create it with `prefect block create secret`"):
        resolve_target(plan, "secret/absent", "redis")
