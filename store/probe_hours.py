"""Hourly roll-ups of probes per target: seconds per state, probe counts, latency sum/count/max and a histogram.

`roll_up_hours` turns complete hours into `probe_hours` rows and moves the mark (`rollup_marks`) that
says which hours are rolled up; reads use roll-ups inside the mark and raw rows outside it. An hour
is complete once every row that decides it is stored: probes and state changes are written within
a health-check run (at most CHECK_INTERVAL after their `at`), and silences only start and end from
the moment they are added or removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import BigInteger, case, cast, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.database import open_session
from store.health_runs import CHECK_INTERVAL
from store.models import ProbeHourRow, ProbeResultRow, RollupMarkRow
from store.state_time import StateSeconds, state_seconds
from store.timearith import epoch_seconds

HOUR = timedelta(hours=1)
MARK = "probe_hours"
# Rows may still arrive for an hour until the run that probed in it has finished (runs stop
# re-probing before the next one is due); three intervals leave room for a late-starting run.
SETTLE = 3 * CHECK_INTERVAL
# Upper bounds (ms) of the latency histogram's buckets; a last bucket holds everything slower.
# Approximate percentiles only: no read of ours computes latency percentiles from probes.
LATENCY_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000)
HISTOGRAM_COLUMNS = (*(f"latency_le_{bound}_ms" for bound in LATENCY_BOUNDS_MS), f"latency_over_{LATENCY_BOUNDS_MS[-1]}_ms")


@dataclass(frozen=True)
class RolledRange:
    """The hours [start, end) whose roll-ups are complete; None before the first roll-up."""

    start: datetime
    end: datetime

    def clip(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """Return the whole hours of [start, end) inside the range, or None when there are none."""
        first, last = max(ceil_hour(start), self.start), min(floor_hour(end), self.end)
        return (first, last) if first < last else None


def floor_hour(at: datetime) -> datetime:
    """Return the start of the UTC hour `at` falls in."""
    return at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def ceil_hour(at: datetime) -> datetime:
    """Return the first whole UTC hour at or after `at`."""
    floor = floor_hour(at)
    return floor if floor == at else floor + HOUR


def rolled_range(session: Session) -> RolledRange | None:
    """Return the hours rolled up so far, or None."""
    mark = session.execute(select(RollupMarkRow.rolled_from, RollupMarkRow.rolled_until).where(RollupMarkRow.name == MARK)).first()
    if mark is None or mark.rolled_from is None or mark.rolled_until is None:
        return None
    return RolledRange(mark.rolled_from, mark.rolled_until)


def roll_up_hours(session: Session, now: datetime, *, max_hours: int = 24, max_gap: timedelta = 2 * CHECK_INTERVAL) -> int:
    """Roll up the next complete hours (at most `max_hours`) and return how many; idempotent and safe to overlap.

    The mark moves with a conditional UPDATE, so of two overlapping roll-ups one does the work and the
    other returns 0.
    """
    done = rolled_range(session)
    if done is None:
        first_probe = session.scalar(select(func.min(ProbeResultRow.at)))
        if first_probe is None:
            return 0
        start = floor_hour(first_probe)
    else:
        start = done.end
    end = min(floor_hour(now - SETTLE), start + max_hours * HOUR)
    if end <= start or not _claim(session, done, start, end):
        return 0
    hours = [start + index * HOUR for index in range(int((end - start) / HOUR) + 1)]
    session.execute(delete(ProbeHourRow).where(ProbeHourRow.hour >= start, ProbeHourRow.hour < end))
    rows = _hour_rows(session, hours, max_gap)
    if rows:
        session.execute(insert(ProbeHourRow), rows)
    return len(hours) - 1


def roll_up_pending_hours(url: str, now: datetime, *, max_days: int | None = None) -> int:
    """Roll up every complete hour not rolled up yet (at most `max_days` of them), a day per transaction; return how many."""
    total, days = 0, 0
    while max_days is None or days < max_days:
        with open_session(url) as session:
            hours = roll_up_hours(session, now, max_hours=24)
        total, days = total + hours, days + 1
        if hours < 24:
            return total
    return total


def forget_hours_before(session: Session, cutoff: datetime) -> int:
    """Delete the roll-ups of hours before `cutoff` (whole hours) and move the mark's start; return rows deleted."""
    cutoff = floor_hour(cutoff)
    deleted = session.execute(delete(ProbeHourRow).where(ProbeHourRow.hour < cutoff)).rowcount
    session.execute(
        update(RollupMarkRow)
        .where(RollupMarkRow.name == MARK, RollupMarkRow.rolled_from < cutoff)
        .values(rolled_from=cutoff)
        .execution_options(synchronize_session=False)
    )
    return deleted


def state_seconds_rolled(session: Session, start: datetime, end: datetime) -> dict[str, StateSeconds]:
    """Return per target the rolled-up seconds of the whole hours [start, end)."""
    rows = session.execute(
        select(
            ProbeHourRow.target,
            func.sum(ProbeHourRow.up_seconds),
            func.sum(ProbeHourRow.down_seconds),
            func.sum(ProbeHourRow.maintenance_seconds),
        )
        .where(ProbeHourRow.hour >= start, ProbeHourRow.hour < end)
        .group_by(ProbeHourRow.target)
    )
    return {target: StateSeconds(float(up), float(down), float(maintenance)) for target, up, down, maintenance in rows}


def hour_epoch(column=ProbeHourRow.hour):
    """The whole epoch second an hour column (or any timestamp's hour) starts at, as an integer in SQL."""
    return cast(func.floor(epoch_seconds(column) / 3600), BigInteger) * 3600


def _claim(session: Session, done: RolledRange | None, start: datetime, end: datetime) -> bool:
    if done is None:
        try:
            with session.begin_nested():
                session.add(RollupMarkRow(name=MARK, rolled_from=start, rolled_until=end))
        except IntegrityError:
            return False  # another roll-up made the mark first
        return True
    moved = session.execute(
        update(RollupMarkRow)
        .where(RollupMarkRow.name == MARK, RollupMarkRow.rolled_until == done.end)
        .values(rolled_until=end)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1


def _hour_rows(session: Session, hours: Sequence[datetime], max_gap: timedelta) -> list[dict]:
    seconds = state_seconds(session, hours, max_gap)
    counts = _probe_counts(session, hours[0], hours[-1])
    rows = []
    for target in sorted(set(seconds) | {target for target, _ in counts}):
        for index, hour in enumerate(hours[:-1]):
            spent = seconds[target][index] if target in seconds else StateSeconds()
            counted = counts.get((target, int(hour.timestamp())))
            if counted is None and not (spent.up or spent.down or spent.maintenance):
                continue  # an hour with nothing is all unknown: no row needed
            known = spent.up + spent.down + spent.maintenance
            rows.append(
                {
                    "target": target,
                    "hour": hour,
                    "up_seconds": spent.up,
                    "down_seconds": spent.down,
                    "maintenance_seconds": spent.maintenance,
                    "unknown_seconds": max(HOUR.total_seconds() - known, 0.0),
                    **(counted or _no_probes()),
                }
            )
    return rows


def _probe_counts(session: Session, start: datetime, end: datetime) -> dict[tuple[str, int], dict]:
    """Return per (target, hour's epoch second) the probes' counts, latency sum/count/max and histogram."""
    latency = ProbeResultRow.latency_ms
    lower = [None, *LATENCY_BOUNDS_MS]
    upper = [*LATENCY_BOUNDS_MS, None]
    buckets = []
    for low, high in zip(lower, upper):
        inside = latency.is_not(None)
        if low is not None:
            inside = inside & (latency > low)
        if high is not None:
            inside = inside & (latency <= high)
        buckets.append(func.sum(case((inside, 1), else_=0)))
    hour = hour_epoch(ProbeResultRow.at).label("hour")
    query = (
        select(
            ProbeResultRow.target,
            hour,
            func.count(),
            func.sum(case((ProbeResultRow.ok.is_(False), 1), else_=0)),
            func.sum(case((ProbeResultRow.level == "warning", 1), else_=0)),
            func.sum(case((ProbeResultRow.level == "critical", 1), else_=0)),
            func.count(latency),
            func.sum(latency),
            func.max(latency),
            *buckets,
        )
        .where(ProbeResultRow.at >= start, ProbeResultRow.at < end)
        .group_by(ProbeResultRow.target, hour)
    )
    counts = {}
    for target, hour_s, probes, failed, warning, critical, latency_count, latency_sum, latency_max, *histogram in session.execute(query):
        counts[(target, int(hour_s))] = {
            "probes": probes,
            "probes_failed": int(failed),
            "probes_warning": int(warning),
            "probes_critical": int(critical),
            "latency_count": latency_count,
            "latency_sum_ms": float(latency_sum or 0.0),
            "latency_max_ms": None if latency_max is None else float(latency_max),
            **{column: int(count) for column, count in zip(HISTOGRAM_COLUMNS, histogram)},
        }
    return counts


def _no_probes() -> dict:
    return {
        "probes": 0,
        "probes_failed": 0,
        "probes_warning": 0,
        "probes_critical": 0,
        "latency_count": 0,
        "latency_sum_ms": 0.0,
        "latency_max_ms": None,
        **dict.fromkeys(HISTOGRAM_COLUMNS, 0),
    }
