"""Probe results: one row per probe of a target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.models import ProbeResultRow
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
    five-minute probes leaves the database as a few hundred rows per target.
    """
    if bucket_seconds <= 0:
        raise ValueError("bucket_seconds must be positive")
    offset = epoch_seconds(ProbeResultRow.at) - start.timestamp()
    bucket = func.floor(offset / bucket_seconds).label("bucket")
    rows = session.execute(
        select(
            ProbeResultRow.target,
            bucket,
            func.avg(ProbeResultRow.latency_ms),
            func.max(ProbeResultRow.latency_ms),
            func.count(ProbeResultRow.latency_ms),
        )
        .where(ProbeResultRow.at >= start, ProbeResultRow.at < end, ProbeResultRow.latency_ms.is_not(None))
        .group_by(ProbeResultRow.target, bucket)
        .order_by(ProbeResultRow.target, bucket)
    ).all()
    return [
        LatencyPoint(target, start + timedelta(seconds=int(index) * bucket_seconds), float(mean), float(worst), int(count))
        for target, index, mean, worst, count in rows
    ]
