"""The `health-check` flow: probe every target, move states, record incidents, alert, ping the heartbeat."""

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import acreate_table_artifact
from prefect.settings import get_current_settings
from pydantic import Field

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTargets
from blocks.probe_kinds import PROBE_KINDS
from blocks.vigia import VigiaSettings
from store.health_runs import CHECK_INTERVAL
from store.sla.freshness import format_local
from store.states import TargetState
from tasks.alerts import load_alert_context
from tasks.bot_service import check_bot_service
from tasks.heartbeat import ping_heartbeat
from tasks.notifier import notify_changes
from tasks.probes import ProbeContext, probe_targets
from tasks.run_failures import alert_on_failed_run
from tasks.run_names import health_check_run_name
from tasks.states import record_results, record_run, roll_up_probe_hours


class MissingBlock(Exception):
    """A Block document the flow needs has not been created."""


@flow(
    name="health-check",
    description="Probe every target, update states and incidents, ping the heartbeat.",
    flow_run_name=health_check_run_name,
    on_failure=[alert_on_failed_run("warning")],
    on_crashed=[alert_on_failed_run("warning")],
)
async def health_check(
    targets_block: str = "default",
    confirm_after_seconds: Annotated[int, Field(ge=0)] = 120,
    recheck_every_seconds: Annotated[int, Field(ge=1)] = 30,
) -> dict[str, TargetState]:
    """Probe every target, re-probing failing ones until they are confirmed DOWN or recover.

    Args:
        targets_block: Name of the health-targets Block document to probe.
        confirm_after_seconds: A failing target turns DOWN after failing this long (0: at once).
        recheck_every_seconds: How often a failing target is probed again within the run.
    """
    logger = get_run_logger()
    started_at = datetime.now(timezone.utc)
    settings = await _load(VigiaSettings, "default")
    targets = await _load(HealthTargets, targets_block)
    context = await _probe_context(targets, Path(settings.home).expanduser() / "probes")
    database_url = settings.database_url.get_secret_value()
    run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    confirm_after = timedelta(seconds=confirm_after_seconds)
    # Stop re-probing before the next scheduled run would start; it carries on from the stored state.
    deadline = started_at + CHECK_INTERVAL - timedelta(seconds=recheck_every_seconds)

    results = await probe_targets(targets.ordered(), context)
    states = dict(record_results(database_url, results, targets, confirm_after, run_id).states)
    latest = {result.target: result for result in results}
    while pending := [t for t in targets.ordered() if states[t.name].state == "PENDING"]:
        if datetime.now(timezone.utc) + timedelta(seconds=recheck_every_seconds) > deadline:
            logger.info("%d targets still PENDING; the next run goes on from here", len(pending))
            break
        await asyncio.sleep(recheck_every_seconds)
        results = await probe_targets(pending, context)
        latest.update({result.target: result for result in results})
        states.update(record_results(database_url, results, targets, confirm_after, run_id).states)

    record_run(database_url, run_id, started_at, datetime.now(timezone.utc), states)
    alert_context = await load_alert_context(run_id, settings)
    await notify_changes(alert_context, targets, claimer=run_id or f"health-check-{started_at:%Y%m%dT%H%M%S}")
    roll_up_probe_hours(database_url, datetime.now(timezone.utc))  # after the alerts: they must not wait for it
    await _publish_summary(states, latest, settings.timezone)
    await check_bot_service(settings)
    if settings.heartbeat_url is not None:
        ping = await ping_heartbeat(settings.heartbeat_url, return_state=True)
        if not ping.is_completed():  # a lost heartbeat is the monitor's to report; this run's checks still hold
            logger.warning("heartbeat not pinged: %s", ping.message)
    down = sorted(name for name, state in states.items() if state.state == "DOWN")
    logger.info("health check done: %d targets, %d DOWN%s", len(states), len(down), f" ({', '.join(down)})" if down else "")
    return states


async def _load(block_type, name: str):
    try:
        return await block_type.aload(name)
    except ValueError as error:
        raise MissingBlock(f"{block_type.get_block_type_slug()}/{name} could not be loaded ({error}); run `vigia setup`") from error


async def _probe_context(targets: HealthTargets, samples_dir: Path) -> ProbeContext:
    gateways = {PROBE_KINDS[target.kind].gateway for target in targets.targets}
    settings = get_current_settings()
    auth = settings.api.auth_string
    return ProbeContext(
        evolution=await _load_optional(EvolutionApi) if "evolution" in gateways else None,
        groq=await _load_optional(GroqApi) if "groq" in gateways else None,
        prefect_api_url=settings.api.url,
        prefect_auth_string=auth.get_secret_value() if auth else None,
        samples_dir=samples_dir,
    )


async def _load_optional(block_type):
    try:
        return await block_type.aload("default")
    except ValueError:
        return None  # the probe reports the target as "not configured"


async def _publish_summary(states: dict[str, TargetState], latest: dict, zone: str) -> None:
    rows = []
    for name, state in sorted(states.items()):
        result = latest.get(name)
        rows.append(
            {
                "target": name,
                "state": state.state,
                "level": state.level,
                "since": format_local(state.since, zone),
                "latency_ms": round(result.latency_ms) if result and result.latency_ms is not None else None,
                "reason": state.reason or "",
            }
        )
    await acreate_table_artifact(rows, key="health-check", description="Where every target stands after this run.")
