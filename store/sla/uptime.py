"""Uptime (DESIGN §11): time-weighted from state changes, gaps unknown, MAINTENANCE and silences excluded."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from store.health_runs import CHECK_INTERVAL
from store.models import ProbeResultRow, StateChangeRow, TargetStateRow
from store.silences import silences_between
from store.sla.targets import UPTIME_TARGET_PERCENT, WINDOWS
from store.timearith import epoch_seconds

_UP_STATES = ("UP", "PENDING")  # PENDING counts as up: it is not yet confirmed down


@dataclass(frozen=True)
class Uptime:
    """Time-weighted uptime of one target over a window; unknown time is shown apart, never as up."""

    target: str
    critical: bool
    start: datetime
    end: datetime
    up_seconds: float
    down_seconds: float
    maintenance_seconds: float
    unknown_seconds: float

    @property
    def percent(self) -> float | None:
        """Up time over up-plus-down time, or None when nothing was observed."""
        observed = self.up_seconds + self.down_seconds
        return None if observed == 0 else 100.0 * self.up_seconds / observed

    @property
    def meets_target(self) -> bool | None:
        """Whether the uptime reaches the 99.5 % target, or None without data."""
        percent = self.percent
        return None if percent is None else percent >= UPTIME_TARGET_PERCENT


def uptime(session: Session, start: datetime, end: datetime, *, probe_interval: timedelta = CHECK_INTERVAL) -> list[Uptime]:
    """Return each known target's uptime in [start, end), from its state changes and probe coverage.

    A probe covers the two intervals after it; time no probe covers is unknown. MAINTENANCE time
    and silenced time are excluded from both up and down.
    """
    max_gap = 2 * probe_interval
    targets = {row.target: row.critical for row in session.execute(select(TargetStateRow.target, TargetStateRow.critical))}
    timelines = _state_timelines(session, start, end)
    coverage = _probe_coverage(session, start, end, max_gap)
    silenced = _silenced_spans(session, start, end)
    report = []
    for target in sorted(targets):
        totals = defaultdict(float)
        for seg_start, seg_end, state in timelines.get(target, []):
            if state == "MAINTENANCE":
                totals["maintenance"] += seg_end - seg_start
                continue
            totals["maintenance"] += _overlap(silenced.get(target, []), seg_start, seg_end)
            for piece_start, piece_end in _subtract(seg_start, seg_end, silenced.get(target, [])):
                covered = _overlap(coverage.get(target, []), piece_start, piece_end)
                totals["up" if state in _UP_STATES else "down"] += covered
        window = end.timestamp() - start.timestamp()
        unknown = window - totals["up"] - totals["down"] - totals["maintenance"]
        report.append(
            Uptime(
                target=target,
                critical=targets[target],
                start=start,
                end=end,
                up_seconds=totals["up"],
                down_seconds=totals["down"],
                maintenance_seconds=totals["maintenance"],
                unknown_seconds=max(unknown, 0.0),
            )
        )
    return report


def uptime_windows(session: Session, now: datetime | None = None, **kwargs) -> dict[str, list[Uptime]]:
    """Return uptime for the standard windows (24 h, 7 d, 30 d) ending now."""
    now = now or datetime.now(timezone.utc)
    return {name: uptime(session, now - length, now, **kwargs) for name, length in WINDOWS.items()}


def _state_timelines(session: Session, start: datetime, end: datetime) -> dict[str, list[tuple[float, float, str]]]:
    """Return per target the (start, end, state) segments within the window, in epoch seconds."""
    before = (
        select(StateChangeRow.target, func.max(StateChangeRow.id).label("id"))
        .where(StateChangeRow.at < start)
        .group_by(StateChangeRow.target)
        .subquery()
    )
    opening = session.execute(select(StateChangeRow.target, StateChangeRow.new_state).join(before, StateChangeRow.id == before.c.id)).all()
    changes = session.execute(
        select(StateChangeRow.target, StateChangeRow.at, StateChangeRow.new_state)
        .where(StateChangeRow.at >= start, StateChangeRow.at < end)
        .order_by(StateChangeRow.target, StateChangeRow.at, StateChangeRow.id)
    ).all()
    points: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for target, state in opening:
        points[target].append((start.timestamp(), state))
    for target, at, state in changes:
        points[target].append((at.timestamp(), state))
    timelines = {}
    for target, marks in points.items():
        bounds = [at for at, _ in marks[1:]] + [end.timestamp()]
        timelines[target] = [(at, bound, state) for (at, state), bound in zip(marks, bounds) if bound > at]
    return timelines


def _probe_coverage(session: Session, start: datetime, end: datetime, max_gap: timedelta) -> dict[str, list[tuple[float, float]]]:
    """Return per target the covered spans of the window: each probe covers `max_gap` after it.

    Only the gaps leave the database (LEAD over the probes), not every probe.
    """
    gap = max_gap.total_seconds()
    at_s = epoch_seconds(ProbeResultRow.at)
    ordered = (
        select(
            ProbeResultRow.target.label("target"),
            at_s.label("at_s"),
            func.lead(at_s).over(partition_by=ProbeResultRow.target, order_by=ProbeResultRow.at).label("next_s"),
            func.row_number().over(partition_by=ProbeResultRow.target, order_by=ProbeResultRow.at).label("n"),
        )
        .where(and_(ProbeResultRow.at >= start - max_gap, ProbeResultRow.at < end))
        .subquery()
    )
    edges = session.execute(
        select(ordered.c.target, ordered.c.at_s, ordered.c.next_s, ordered.c.n)
        .where((ordered.c.n == 1) | ordered.c.next_s.is_(None) | (ordered.c.next_s - ordered.c.at_s > gap))
        .order_by(ordered.c.target, ordered.c.at_s)
    ).all()
    window_start, window_end = start.timestamp(), end.timestamp()
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    span_start: dict[str, float] = {}
    for target, at, next_at, n in edges:
        if n == 1:
            span_start[target] = at
        if next_at is None or next_at - at > gap:
            spans[target].append((max(span_start[target], window_start), min(at + gap, window_end)))
            if next_at is not None:
                span_start[target] = next_at
    return spans


def _silenced_spans(session: Session, start: datetime, end: datetime) -> dict[str, list[tuple[float, float]]]:
    """Return per target the merged silence windows within the window: silenced time is MAINTENANCE."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for silence in silences_between(session, start, end):
        a, b = max(silence.starts_at, start).timestamp(), min(silence.ends_at, end).timestamp()
        merged = spans[silence.target]
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return spans


def _subtract(start: float, end: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    pieces, cursor = [], start
    for a, b in holes:
        if b <= cursor or a >= end:
            continue
        if a > cursor:
            pieces.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        pieces.append((cursor, end))
    return pieces


def _overlap(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)
