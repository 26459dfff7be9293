"""A target going DOWN and recovering shows in Prefect's Event Feed, as `vigia.target.down` / `vigia.target.recovered`."""

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.health_check import health_check
from tests.fakes.server import serve_app
from tests.flows.test_health_check import flaky_app
from tests.prefect_events import wait_for_events

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_a_target_down_then_up_emits_down_and_recovered_once_each_with_the_reason(sqlite_store_url, tmp_path):
    started = datetime.now(timezone.utc)
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    target = f"api-{uuid.uuid4().hex[:8]}"
    name = f"t-{uuid.uuid4().hex[:12]}"
    app, _ = flaky_app(failures=1)
    with serve_app(app) as base:
        HealthTargets(targets=[HealthTarget(name=target, kind="http", url=f"{base}/health")]).save(name, overwrite=True)
        down_run = asyncio.run(health_check(targets_block=name, confirm_after_seconds=0, return_state=True))
        up_run = asyncio.run(health_check(targets_block=name, confirm_after_seconds=0, return_state=True))
        asyncio.run(health_check(targets_block=name, confirm_after_seconds=0))  # still UP: no event
    down, recovered = wait_for_events(f"vigia.target.{target}", ["vigia.target.down", "vigia.target.recovered"], started)
    assert (down.payload["old_state"], down.payload["new_state"]) == (None, "DOWN")
    assert down.payload["reason"] == "HTTP 503, expected 2xx or 3xx"
    assert (recovered.payload["old_state"], recovered.payload["new_state"]) == ("DOWN", "UP")
    assert down.resource["prefect.resource.name"] == target
    runs = {related.id for related in down.related} | {related.id for related in recovered.related}
    assert {f"prefect.flow-run.{down_run.state_details.flow_run_id}", f"prefect.flow-run.{up_run.state_details.flow_run_id}"} <= runs
