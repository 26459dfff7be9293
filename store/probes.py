"""Probe results: one row per probe of a target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.models import ProbeHourRow, ProbeResultRow
from store.probe_hours import hour_epoch, rolled_range
from store.timearith import epoch_seconds

Level = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of probing one target once; `ok` is False when it failed or crossed a critical threshold."""

    target: str
    kind: str
    at: datetime
    ok: bool
    level: Level
    latency_ms: float | None = None
    value: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class LatencyPoint:
    """Probe latency of one target over one time bucket."""

    target: str
    at: datetime  # the bucket's start
    mean_ms: float
    max_ms: float
    probes: int


def insert_probe_results(session: Session, results: Iterable[ProbeResult], run_id: str | None) -> int:
    """Store a batch of probe results and return how many were stored."""
    rows = [
        {
            "target": result.target,
            "at": result.at,
            "ok": result.ok,
            "level": result.level,
            "latency_ms": result.latency_ms,
            "value": result.value,
            "reason": result.reason,
            "run_id": run_id,
        }
        for result in results
    ]
    if rows:
        session.execute(insert(ProbeResultRow), rows)
    return len(rows)


def latency_series(session: Session, start: datetime, end: datetime, bucket_seconds: int) -> list[LatencyPoint]:
    """Return each target's mean and worst probe latency per bucket in [start, end), oldest first.

    Buckets are aligned to `start`; the grouping happens in SQL, so a 30-day window of
    five-minute probes leaves the database as a few hundred rows per target. With buckets of
    whole hours, the rolled-up hours wholly inside a bucket come from the roll-ups and only the
    rest from raw rows: counts and maxima are the same; a mean may differ in its last bits
    (its sum is added in another order).
    """
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    rolled = _rolled_hours(session, start, end, bucket_seconds)
    offset = epoch_seconds(ProbeResultRow.at) - start.timestamp()
    bucket = func.floor(offset / bucket_seconds).label("bucket")
    latency = ProbeResultRow.latency_ms
    query = (
        select(ProbeResultRow.target, bucket, func.sum(latency), func.max(latency), func.count(latency))
        .where(ProbeResultRow.at >= start, ProbeResultRow.at < end, latency.is_not(None))
        .group_by(ProbeResultRow.target, bucket)
    )
    if rolled is not None:
        query = query.where(~_inside(ProbeResultRow.at, rolled, start, bucket_seconds))
    sums: dict[tuple[str, int], list[float]] = {}
    for target, index, total, worst, count in session.execute(query):
        sums[(target, int(index))] = [float(total), float(worst), int(count)]
    if rolled is not None:
        for target, index, total, worst, count in _rolled_latency(session, rolled, start, bucket_seconds):
            mine = sums.setdefault((target, int(index)), [0.0, float(worst), 0])
            mine[0], mine[1], mine[2] = mine[0] + float(total), max(mine[1], float(worst)), mine[2] + int(count)
    return [
        LatencyPoint(target, start + timedelta(seconds=index * bucket_seconds), total / count, worst, count)
        for (target, index), (total, worst, count) in sorted(sums.items())
    ]


def _rolled_hours(session: Session, start: datetime, end: datetime, bucket_seconds: int) -> tuple[datetime, datetime] | None:
    """The rolled-up whole hours of the window, when buckets are whole hours from a whole second; else None."""
    if bucket_seconds % 3600 or start.microsecond:
        return None
    done = rolled_range(session)
    return None if done is None else done.clip(start, end)


def _inside(column, rolled: tuple[datetime, datetime], start: datetime, bucket_seconds: int):
    """Whether a timestamp's hour is rolled up and lies wholly inside one bucket (buckets start at `start`)."""
    phase = (hour_epoch(column) - int(start.timestamp())) % bucket_seconds
    return (column >= rolled[0]) & (column < rolled[1]) & (phase <= bucket_seconds - 3600)


def _rolled_latency(session: Session, rolled: tuple[datetime, datetime], start: datetime, bucket_seconds: int):
    index = func.floor((hour_epoch() - int(start.timestamp())) / float(bucket_seconds)).label("bucket")
    return session.execute(
        select(
            ProbeHourRow.target,
            index,
            func.sum(ProbeHourRow.latency_sum_ms),
            func.max(ProbeHourRow.latency_max_ms),
            func.sum(ProbeHourRow.latency_count),
        )
        .where(_inside(ProbeHourRow.hour, rolled, start, bucket_seconds), ProbeHourRow.latency_count > 0)
        .group_by(ProbeHourRow.target, index)
    ).all()
