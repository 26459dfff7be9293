"""Probe results: one row per probe of a target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.models import ProbeHourRow, ProbeResultRow
from store.probe_hours import floor_hour, hour_epoch, rolled_range
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
    """Return each target's mean and worst probe latency per bucket of the probes in [start, end), oldest first.

    Buckets of whole hours start on the hour at or before `start`, shorter ones at `start`. The rolled-up
    whole hours (store.probe_hours) come from the roll-ups and only the window's ragged edges from raw
    rows: counts and maxima are the raw ones; a mean may differ in its last bits (its sum is added in
    another order). The grouping happens in SQL, so only a few hundred rows per target leave the database.
    """
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    whole_hours = bucket_seconds % 3600 == 0
    origin = floor_hour(start) if whole_hours else start
    done = rolled_range(session) if whole_hours else None
    rolled = done.clip(start, end) if done is not None else None
    raw = [(start, end)] if rolled is None else [(start, rolled[0]), (rolled[1], end)]
    sums: dict[tuple[str, int], list] = {}
    for piece_start, piece_end in raw:
        if piece_start < piece_end:
            _add(sums, _raw_latency(session, piece_start, piece_end, origin, bucket_seconds))
    if rolled is not None:
        _add(sums, _rolled_latency(session, rolled, origin, bucket_seconds))
    return [
        LatencyPoint(target, origin + timedelta(seconds=index * bucket_seconds), total / count, worst, count)
        for (target, index), (total, worst, count) in sorted(sums.items())
    ]


def _raw_latency(session: Session, start: datetime, end: datetime, origin: datetime, bucket_seconds: int):
    latency = ProbeResultRow.latency_ms
    bucket = func.floor((epoch_seconds(ProbeResultRow.at) - origin.timestamp()) / bucket_seconds).label("bucket")
    return session.execute(
        select(ProbeResultRow.target, bucket, func.sum(latency), func.max(latency), func.count(latency))
        .where(ProbeResultRow.at >= start, ProbeResultRow.at < end, latency.is_not(None))
        .group_by(ProbeResultRow.target, bucket)
    ).all()


def _rolled_latency(session: Session, rolled: tuple[datetime, datetime], origin: datetime, bucket_seconds: int):
    bucket = func.floor((hour_epoch() - int(origin.timestamp())) / float(bucket_seconds)).label("bucket")
    return session.execute(
        select(
            ProbeHourRow.target,
            bucket,
            func.sum(ProbeHourRow.latency_sum_ms),
            func.max(ProbeHourRow.latency_max_ms),
            func.sum(ProbeHourRow.latency_count),
        )
        .where(ProbeHourRow.hour >= rolled[0], ProbeHourRow.hour < rolled[1], ProbeHourRow.latency_count > 0)
        .group_by(ProbeHourRow.target, bucket)
    ).all()


def _add(sums: dict[tuple[str, int], list], rows) -> None:
    for target, index, total, worst, count in rows:
        mine = sums.setdefault((target, int(index)), [0.0, float(worst), 0])
        mine[0], mine[1], mine[2] = mine[0] + float(total), max(mine[1], float(worst)), mine[2] + int(count)
