"""A restore run leaves a `restore` artifact: what, from where, rows, and the time against the 30-minute RTO."""

from __future__ import annotations

import asyncio

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from flows.backup import backup
from flows.restore import restore
from tests.backup.conftest import make_plan


def restore_artifact(flow_run_id) -> str:
    async def read() -> str:
        async with get_client() as client:
            [artifact] = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["restore"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                )
            )
            return artifact.data

    return asyncio.run(read())


def test_a_restore_run_publishes_what_it_restored_from_where_and_how_long_against_the_rto(
    source_database, sqlite_store_url, save_blocks, tmp_path
):
    save_blocks(make_plan(tmp_path, None, sqlite_store_url, postgres=source_database), sqlite_store_url)
    run_id = backup(prune=False).run_id
    state = restore(run_id=run_id, source="postgres-app", force=True, return_state=True)
    assert state.is_completed()
    outcome = state.result()
    markdown = restore_artifact(state.state_details.flow_run_id)
    assert f"# Restore of postgres-app from backup {run_id}" in markdown
    assert "| from | the local copy, SHA-256 checked |" in markdown
    assert f"| into | {source_database} |" in markdown
    assert "| restored | 2 tables, 650 rows, 1 large objects |" in markdown
    assert f"| took | {outcome.seconds:.1f} s, within the 30-minute RTO |" in markdown
