"""Alerts for scheduled runs that fail or crash: Prefect's `on_failure` and `on_crashed` hooks, one alert per run.

A run that raises ends Failed and its own process runs `on_failure`; a run whose process dies (OOM,
`kill -9`) is marked Crashed by the runner or worker that started it, which runs `on_crashed`. Both
claim the same key, `run_alert_key(run)`, so a run alerts once whoever notices first, and a flow that
already alerted about its own failure (the backup's critical) under that key is not alerted twice.
Repeated failures alert once per run: a health check failing every 5 minutes alerts every 5 minutes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from clients.redaction import mask_secrets
from store.sla.freshness import format_local
from tasks.alerts import AlertSpec, deliver_alert, load_alert_context, run_logger
from tasks.messages import compose

Hook = Callable[..., Awaitable[None]]


def run_alert_key(flow_run_id: Any) -> str:
    """The once-only key of the alert about one run's failure or crash."""
    return f"flow-run:{flow_run_id}"


def alert_on_failed_run(severity: str) -> Hook:
    """Return a hook for `on_failure` and `on_crashed` that raises one `severity` alert naming the run, with its link.

    Prefect calls it with keywords (the runner) or positionally (the engine): `flow, flow_run, state`.
    """

    async def alert_failed_run(flow, flow_run, state) -> None:
        await raise_run_alert(severity, flow.name, flow_run, state)

    alert_failed_run.__name__ = f"alert_failed_run_{severity}"  # how Prefect names the hook in the run's log
    return alert_failed_run


async def raise_run_alert(severity: str, flow_name: str, flow_run, state) -> None:
    """Raise the alert for a run that ended Failed or Crashed, unless one was raised for this run already."""
    logger = run_logger()
    try:
        context = await load_alert_context(str(flow_run.id))
    except ValueError as error:  # no vigia-settings Block: there is no store to record it in nor route to send it by
        logger.error("%s run %s %s, and no alert could be raised: %s", flow_name, flow_run.name, state.name, error)
        return
    ended = "crashed" if state.is_crashed() else "failed"
    at = state.timestamp or datetime.now(timezone.utc)
    name = await _current_name(flow_run)
    title, body = compose(
        severity,
        f"{name} {ended}",  # runs are named by subject and date: `backup 2026-11-26 crashed`
        [
            f"The {flow_name} run {name} ended {state.name} at {format_local(at, context.zone)}.",
            f"Reason: {mask_secrets(state.message or 'none given')}",
        ],
        context.links,
    )
    spec = AlertSpec(run_alert_key(flow_run.id), "run", severity, title, body, cooldown=None, target=flow_name)
    if await deliver_alert(context, spec) is None:
        logger.info("%s run %s %s: its alert was already raised", flow_name, name, ended)


async def _current_name(flow_run) -> str:
    # A runner holds the run as it was when it started it: before the engine gave it its name.
    try:
        async with get_client() as client:
            return (await client.read_flow_run(flow_run.id)).name
    except (ObjectNotFound, httpx.HTTPError):
        return flow_run.name
