"""The health-check flow run for real against a local Prefect server, real services and loopback servers."""

import asyncio
import json
import re
import uuid

import pytest
from fastapi import FastAPI, Response

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.health_check import MissingBlock, health_check
from store.database import open_session
from store.health_runs import last_health_run_finished_at
from store.incidents import list_incidents
from store.states import list_state_changes
from tests.fakes.server import free_port, serve_app

pytestmark = pytest.mark.usefixtures("prefect_server")


def save_blocks(store_url: str, tmp_path, targets: list[HealthTarget], heartbeat_url: str | None = None) -> str:
    VigiaSettings(home=str(tmp_path), database_url=store_url, heartbeat_url=heartbeat_url).save("default", overwrite=True)
    name = f"t-{uuid.uuid4().hex[:12]}"
    HealthTargets(targets=targets).save(name, overwrite=True)
    return name


def flaky_app(failures: int) -> tuple[FastAPI, list[int]]:
    """An app whose /health answers 503 for the first `failures` requests, then 200."""
    app, hits = FastAPI(), []

    @app.get("/health")
    def health() -> Response:
        hits.append(1)
        return Response(status_code=503 if len(hits) <= failures else 200)

    return app, hits


def test_health_check_stores_states_and_the_run_and_pings_the_heartbeat(store_url, redis_url, tmp_path):
    app, hits = flaky_app(failures=0)
    with serve_app(app) as base:
        name = save_blocks(
            store_url,
            tmp_path,
            [
                HealthTarget(name="web", kind="http", url=f"{base}/health", critical=True),
                HealthTarget(name="db", kind="postgres", dsn="postgresql://postgres@127.0.0.1:5432/test", critical=True),
                HealthTarget(name="cache", kind="redis", dsn=redis_url, depends_on=["db"]),
                HealthTarget(name="disk", kind="disk", url=str(tmp_path)),
            ],
            heartbeat_url=f"{base}/health",
        )
        states = asyncio.run(health_check(targets_block=name))
    assert {n: s.state for n, s in states.items()} == {"web": "UP", "db": "UP", "cache": "UP", "disk": "UP"}
    assert len(hits) == 2  # the probe, then the heartbeat
    with open_session(store_url) as session:
        assert last_health_run_finished_at(session) is not None
        assert sorted((c.target, c.old_state, c.new_state) for c in list_state_changes(session)) == [
            ("cache", None, "UP"),
            ("db", None, "UP"),
            ("disk", None, "UP"),
            ("web", None, "UP"),
        ]


def test_a_target_failing_past_confirmation_is_reprobed_and_turns_down_with_an_incident(sqlite_store_url, tmp_path):
    port = free_port()
    name = save_blocks(sqlite_store_url, tmp_path, [HealthTarget(name="gone", kind="tcp", url=f"127.0.0.1:{port}", critical=True)])
    states = asyncio.run(health_check(targets_block=name, confirm_after_seconds=2, recheck_every_seconds=1))
    assert states["gone"].state == "DOWN"
    assert f"cannot connect to 127.0.0.1:{port}" in states["gone"].reason
    with open_session(sqlite_store_url) as session:
        assert [(c.old_state, c.new_state) for c in list_state_changes(session)] == [(None, "PENDING"), ("PENDING", "DOWN")]
        [incident] = list_incidents(session)
    assert (incident.target, incident.resolved_at) == ("gone", None)


def test_a_blip_that_recovers_on_the_recheck_alerts_nobody_and_opens_no_incident(sqlite_store_url, tmp_path):
    app, hits = flaky_app(failures=1)
    with serve_app(app) as base:
        name = save_blocks(sqlite_store_url, tmp_path, [HealthTarget(name="api", kind="http", url=f"{base}/health")])
        states = asyncio.run(health_check(targets_block=name, confirm_after_seconds=60, recheck_every_seconds=1))
    assert states["api"].state == "UP"
    assert len(hits) == 2
    with open_session(sqlite_store_url) as session:
        assert [(c.old_state, c.new_state, c.reason) for c in list_state_changes(session)] == [
            (None, "PENDING", "HTTP 503, expected 2xx or 3xx"),
            ("PENDING", "UP", "recovered: HTTP 200"),
        ]
        assert list_incidents(session) == []


def test_a_malformed_target_fails_alone_and_the_flow_completes(sqlite_store_url, tmp_path):
    name = save_blocks(
        sqlite_store_url,
        tmp_path,
        [
            HealthTarget(name="typo", kind="http", url="htp:/nowhere"),
            HealthTarget(name="mem", kind="memory"),
        ],
    )
    states = asyncio.run(health_check(targets_block=name, confirm_after_seconds=0))
    assert states["typo"].state == "DOWN"
    assert states["typo"].reason.startswith("malformed URL")
    assert states["mem"].state == "UP"


def test_an_unreachable_heartbeat_does_not_fail_the_health_check(sqlite_store_url, tmp_path):
    name = save_blocks(
        sqlite_store_url,
        tmp_path,
        [HealthTarget(name="mem", kind="memory")],
        heartbeat_url=f"http://127.0.0.1:{free_port()}/ping/secret-uuid",
    )
    states = asyncio.run(health_check(targets_block=name))
    assert states["mem"].state == "UP"


def test_a_missing_targets_block_fails_with_the_next_step(sqlite_store_url, tmp_path):
    save_blocks(sqlite_store_url, tmp_path, [])
    with pytest.raises(MissingBlock, match=r"health-targets/absent could not be loaded .*run `vigia setup`"):
        asyncio.run(health_check(targets_block="absent"))


def test_a_down_found_by_the_health_check_is_alerted_through_the_saved_routes(sqlite_store_url, tmp_path):
    from blocks.alert_routes import AlertRoutes
    from tests.fakes.capture import CaptureServer

    capture = CaptureServer()
    with capture.serving() as base:
        config = f"urls:\n  - json://{base.removeprefix('http://')}/ok/telegram:\n      - tag: critical\n"
        AlertRoutes(config=config, config_format="yaml").save("default", overwrite=True)
        try:
            name = save_blocks(
                sqlite_store_url, tmp_path, [HealthTarget(name="gone", kind="tcp", url=f"127.0.0.1:{free_port()}", critical=True)]
            )
            asyncio.run(health_check(targets_block=name, confirm_after_seconds=0))
            [message] = capture.wait_for(count=1)
        finally:
            AlertRoutes().save("default", overwrite=True)
    assert message.json["title"] == "[CRITICAL] gone is DOWN"
    assert "Prefect run: http://127.0.0.1:4200/runs/flow-run/" in message.json["message"]


def test_the_runs_summary_artifact_shows_since_in_vigia_timezone(sqlite_store_url, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url, timezone="America/Sao_Paulo").save("default", overwrite=True)
    name = f"t-{uuid.uuid4().hex[:12]}"
    HealthTargets(targets=[HealthTarget(name="disk", kind="disk", url=str(tmp_path))]).save(name, overwrite=True)
    asyncio.run(health_check(targets_block=name))

    async def newest_summary():
        async with get_client() as client:
            [artifact] = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["health-check"])), sort=ArtifactSort.CREATED_DESC, limit=1
            )
            return artifact.data

    [row] = json.loads(asyncio.run(newest_summary()))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d -03", row["since"]), row


def test_a_health_check_rolls_up_the_hours_completed_since_the_first_probe(sqlite_store_url, tmp_path):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import func, select

    from store.models import ProbeHourRow
    from store.probe_hours import floor_hour, rolled_range
    from store.probes import ProbeResult, insert_probe_results

    earlier = datetime.now(timezone.utc) - timedelta(hours=3)
    with open_session(sqlite_store_url) as session:
        insert_probe_results(session, [ProbeResult("disk", "disk", earlier, True, "ok", latency_ms=2.0)], run_id=None)
    name = save_blocks(sqlite_store_url, tmp_path, [HealthTarget(name="disk", kind="disk", url=str(tmp_path))])
    asyncio.run(health_check(targets_block=name))
    with open_session(sqlite_store_url) as session:
        done = rolled_range(session)
        [(probes, latency)] = session.execute(select(func.sum(ProbeHourRow.probes), func.sum(ProbeHourRow.latency_sum_ms))).all()
    assert done.start == floor_hour(earlier) and done.end >= floor_hour(earlier) + timedelta(hours=2)
    assert (probes, latency) == (1, 2.0)  # the probe of three hours ago; this run's hour is not complete yet
