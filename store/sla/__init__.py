"""The SLA definitions of DESIGN §11, each written once; the CLI, dashboard and report call these.

`sla_summary` gives the five figures with their targets, as the dashboard tiles and the report's
SLA table show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from store.sla.error_rate import ErrorRate, WorkflowRuns, error_rate
from store.sla.freshness import Freshness, backup_freshness
from store.sla.recovery import Recoveries, Recovery, recovery_times
from store.sla.targets import (
    ERROR_RATE_TARGET_PERCENT,
    FRESHNESS_TARGET_SECONDS,
    RECOVERY_TARGET_SECONDS,
    RESPONSE_TARGET_SECONDS,
    UPTIME_TARGET_PERCENT,
    WINDOWS,
)
from store.sla.transcriptions import ResponseTimes, percentile, response_time_samples, response_times, transcription_outcomes
from store.sla.uptime import Uptime, uptime, uptime_windows

__all__ = [
    "ERROR_RATE_TARGET_PERCENT",
    "FIGURES",
    "FRESHNESS_TARGET_SECONDS",
    "RECOVERY_TARGET_SECONDS",
    "RESPONSE_TARGET_SECONDS",
    "UPTIME_TARGET_PERCENT",
    "WINDOWS",
    "ErrorRate",
    "Freshness",
    "Recoveries",
    "Recovery",
    "ResponseTimes",
    "SlaRow",
    "Uptime",
    "WorkflowRuns",
    "backup_freshness",
    "error_rate",
    "format_duration",
    "percentile",
    "recovery_times",
    "response_time_samples",
    "response_times",
    "sla_rows",
    "sla_summary",
    "transcription_outcomes",
    "uptime",
    "uptime_windows",
    "worst_critical_uptime",
]


@dataclass(frozen=True)
class SlaRow:
    """One SLA figure against its target: a dashboard tile, a row of the report's SLA table."""

    key: str  # uptime, response_time, error_rate, recovery_time, backup_freshness
    name: str
    value: float | None  # in `unit`; None when there is no data
    unit: str  # "%" or "s"
    display: str
    target: str
    meets: bool | None  # None: no data to judge


def sla_summary(
    session: Session,
    start: datetime,
    end: datetime,
    workflow_runs: WorkflowRuns | None = None,
    now: datetime | None = None,
    zone: str | None = None,
) -> list[SlaRow]:
    """Return the five SLA figures of [start, end) in DESIGN §11's order; freshness is measured at `now`.

    Args:
        zone: VIGIA_TIMEZONE, for a fresh install's "first backup due by …" (default: the environment's).
    """
    now = now or datetime.now(timezone.utc)
    return sla_rows(
        uptime(session, start, end),
        response_times(session, start, end),
        error_rate(session, start, end, workflow_runs),
        recovery_times(session, start, end, now),
        backup_freshness(session, now, zone),
    )


# The five figures in DESIGN §11's order: key, name, and the target as people read it.
FIGURES = (
    ("uptime", "Uptime", f"≥ {UPTIME_TARGET_PERCENT} % per critical target"),
    ("response_time", "Response time", f"p95 < {RESPONSE_TARGET_SECONDS:.0f} s"),
    ("error_rate", "Error rate", f"< {ERROR_RATE_TARGET_PERCENT:.0f} %"),
    ("recovery_time", "Recovery time", f"< {RECOVERY_TARGET_SECONDS / 60:.0f} min"),
    ("backup_freshness", "Backup freshness", f"< {FRESHNESS_TARGET_SECONDS / 3600:.0f} h"),
)


def sla_rows(uptimes: list[Uptime], times: ResponseTimes, errors: ErrorRate, recoveries: Recoveries, fresh: Freshness) -> list[SlaRow]:
    """Return the five SLA rows from figures already read (the report reads each figure once for several uses)."""
    worst = worst_critical_uptime(uptimes)
    figures = [
        (
            None if worst is None else worst.percent,
            "%",
            "no data" if worst is None else f"{worst.percent:.2f} % ({worst.target})",
            None if worst is None else worst.meets_target,
        ),
        (
            times.p95_seconds,
            "s",
            "no data" if times.p95_seconds is None else f"p95 {times.p95_seconds:.1f} s",
            times.meets_target,
        ),
        (errors.percent, "%", "no data" if errors.percent is None else f"{errors.percent:.2f} %", errors.meets_target),
        (
            recoveries.worst_seconds,
            "s",
            "no incidents"
            if not recoveries.incidents
            else f"worst {format_duration(recoveries.worst_seconds)}, MTTR {format_duration(recoveries.mttr_seconds)}",
            recoveries.meets_target,
        ),
        (
            fresh.age_seconds,
            "s",
            fresh.first_due_text() or ("no verified backup" if fresh.age_seconds is None else format_duration(fresh.age_seconds)),
            fresh.meets_target,
        ),
    ]
    return [
        SlaRow(key, name, value, unit, display, target, meets)
        for (key, name, target), (value, unit, display, meets) in zip(FIGURES, figures, strict=True)
    ]


def worst_critical_uptime(report: list[Uptime]) -> Uptime | None:
    """Return the lowest uptime among critical targets with data (all targets when none is critical)."""
    measured = [item for item in report if item.percent is not None]
    critical = [item for item in measured if item.critical] or measured
    return min(critical, key=lambda item: item.percent, default=None)


def format_duration(seconds: float | None) -> str:
    """Return a duration as people read it: 45 s, 12 min, 5.2 h, 3.1 d; "—" for None."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
