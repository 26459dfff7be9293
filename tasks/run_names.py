"""Flow run names people can read in the Prefect UI: subject and date, the date in VIGIA_TIMEZONE.

Each function is a flow's `flow_run_name`: Prefect calls it with no arguments inside the run's context,
before the flow's body, so it reads the run's parameters and scheduled time from `prefect.runtime`.
A name must never fail a run: anything it cannot read falls back to a plainer name.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from prefect import runtime
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from store.sla.freshness import format_local

DEFAULT_ZONE = "America/Sao_Paulo"  # the settings' default of VIGIA_TIMEZONE
logger = logging.getLogger(__name__)


def health_check_run_name() -> str:
    """`health-check 2026-12-05 10:45 -03`: the run's scheduled time in VIGIA_TIMEZONE."""
    return f"health-check {format_local(_scheduled_at(), settings_zone())}"


def backup_run_name() -> str:
    """`backup 2026-11-26`: the run's scheduled day in VIGIA_TIMEZONE."""
    return f"backup {_scheduled_at().astimezone(ZoneInfo(settings_zone())):%Y-%m-%d}"


def weekly_run_name() -> str:
    """`weekly 2026-W47`: the ISO week the run reports (its `week`, or the previous week in VIGIA_TIMEZONE)."""
    from tasks.weekly_data import parse_week  # here: it brings pandas, which the other flows' runs do without

    week = runtime.flow_run.parameters.get("week")
    try:
        return f"weekly {parse_week(week, settings_zone(), _scheduled_at()).label}"
    except ValueError:
        return f"weekly {week}"  # the flow itself refuses the week, saying why


def settings_zone() -> str:
    """VIGIA_TIMEZONE as the vigia-settings/default Block holds it (what flows show times in); else the environment's."""
    zone = os.environ.get("VIGIA_TIMEZONE") or DEFAULT_ZONE
    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name("default", "vigia-settings", include_secrets=False)
        zone = document.data.get("timezone") or zone
    except (ObjectNotFound, httpx.HTTPError) as error:
        logger.info("run name in %s: vigia-settings/default not read (%s)", zone, type(error).__name__)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return zone


def _scheduled_at() -> datetime:
    # The nominal time of a scheduled run (a late run is still "the 03:00 backup"); now for a manual one.
    return runtime.flow_run.scheduled_start_time or datetime.now(timezone.utc)
