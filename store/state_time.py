"""Seconds each target spent up, down and in maintenance, from raw rows: state changes, probe coverage, silences.

The one raw computation behind uptime (DESIGN §11) and its hourly roll-ups. It is pointwise — the state
at an instant, whether a probe covers it, whether a silence holds it — so seconds over consecutive
intervals add up to the seconds over their union. Every figure is a difference of two epoch-second
floats (exact: same magnitude) or a sum of such differences (exact below 2^31 s), so sums in any
order, and sums of stored hours, equal the raw figure to the bit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from store.models import ProbeResultRow, StateChangeRow
from store.silences import silences_between
from store.timearith import epoch_seconds

UP_STATES = ("UP", "PENDING")  # PENDING counts as up: it is not yet confirmed down

Span = tuple[float, float]


@dataclass(frozen=True)
class StateSeconds:
    """Seconds of one target in one interval; what is left of the interval is unknown."""

    up: float = 0.0
    down: float = 0.0
    maintenance: float = 0.0


def state_seconds(session: Session, bounds: Sequence[datetime], max_gap: timedelta) -> dict[str, list[StateSeconds]]:
    """Return per target its seconds in each interval [bounds[i], bounds[i+1]), read from raw rows once.

    A probe covers `max_gap` after it; covered time is up or down by state, uncovered time is unknown.
    MAINTENANCE time and silenced time count as maintenance, covered or not.
    """
    start, end = bounds[0], bounds[-1]
    timelines = _state_timelines(session, start, end)
    coverage = _probe_coverage(session, start, end, max_gap)
    silenced = _silenced_spans(session, start, end)
    edges = [bound.timestamp() for bound in bounds]
    report = {}
    for target, timeline in timelines.items():
        report[target] = [_seconds_in(timeline, coverage.get(target, []), silenced.get(target, []), a, b) for a, b in zip(edges, edges[1:])]
    return report


def _seconds_in(timeline: list[tuple[float, float, str]], covered: list[Span], silenced: list[Span], a: float, b: float) -> StateSeconds:
    totals = defaultdict(float)
    for seg_start, seg_end, state in timeline:
        seg_start, seg_end = max(seg_start, a), min(seg_end, b)
        if seg_end <= seg_start:
            continue
        if state == "MAINTENANCE":
            totals["maintenance"] += seg_end - seg_start
            continue
        totals["maintenance"] += _overlap(silenced, seg_start, seg_end)
        for piece_start, piece_end in _subtract(seg_start, seg_end, silenced):
            totals["up" if state in UP_STATES else "down"] += _overlap(covered, piece_start, piece_end)
    return StateSeconds(totals["up"], totals["down"], totals["maintenance"])


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


def _probe_coverage(session: Session, start: datetime, end: datetime, max_gap: timedelta) -> dict[str, list[Span]]:
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
    spans: dict[str, list[Span]] = defaultdict(list)
    span_start: dict[str, float] = {}
    for target, at, next_at, n in edges:
        if n == 1:
            span_start[target] = at
        if next_at is None or next_at - at > gap:
            spans[target].append((max(span_start[target], window_start), min(at + gap, window_end)))
            if next_at is not None:
                span_start[target] = next_at
    return spans


def _silenced_spans(session: Session, start: datetime, end: datetime) -> dict[str, list[Span]]:
    """Return per target the merged silence windows within the window: silenced time is MAINTENANCE."""
    spans: dict[str, list[Span]] = defaultdict(list)
    for silence in silences_between(session, start, end):
        a, b = max(silence.starts_at, start).timestamp(), min(silence.ends_at, end).timestamp()
        merged = spans[silence.target]
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return spans


def _subtract(start: float, end: float, holes: list[Span]) -> list[Span]:
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


def _overlap(spans: list[Span], start: float, end: float) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)
