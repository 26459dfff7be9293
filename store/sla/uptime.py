"""Uptime (DESIGN §11): time-weighted from state changes, gaps unknown, MAINTENANCE and silences excluded.

Whole hours come from the hourly roll-ups (store.probe_hours) where they exist; the window's ragged
edges, and hours not rolled up yet, from raw rows. The figures are the same to the bit (store.state_time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.health_runs import CHECK_INTERVAL
from store.models import TargetStateRow
from store.probe_hours import rolled_range, state_seconds_rolled
from store.sla.targets import UPTIME_TARGET_PERCENT, WINDOWS
from store.state_time import StateSeconds, state_seconds


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
    targets = {row.target: row.critical for row in session.execute(select(TargetStateRow.target, TargetStateRow.critical))}
    totals: dict[str, list[StateSeconds]] = {}
    for piece_start, piece_end, rolled in _pieces(session, start, end, rolled_ok=probe_interval == CHECK_INTERVAL):
        if rolled:
            found = state_seconds_rolled(session, piece_start, piece_end)
        else:
            found = {target: seconds[0] for target, seconds in state_seconds(session, [piece_start, piece_end], 2 * probe_interval).items()}
        for target, seconds in found.items():
            totals.setdefault(target, []).append(seconds)
    window = end.timestamp() - start.timestamp()
    report = []
    for target in sorted(targets):
        pieces = totals.get(target, [])
        up = sum((piece.up for piece in pieces), 0.0)
        down = sum((piece.down for piece in pieces), 0.0)
        maintenance = sum((piece.maintenance for piece in pieces), 0.0)
        report.append(
            Uptime(
                target=target,
                critical=targets[target],
                start=start,
                end=end,
                up_seconds=up,
                down_seconds=down,
                maintenance_seconds=maintenance,
                unknown_seconds=max(window - up - down - maintenance, 0.0),
            )
        )
    return report


def uptime_windows(session: Session, now: datetime | None = None, **kwargs) -> dict[str, list[Uptime]]:
    """Return uptime for the standard windows (24 h, 7 d, 30 d) ending now."""
    now = now or datetime.now(timezone.utc)
    return {name: uptime(session, now - length, now, **kwargs) for name, length in WINDOWS.items()}


def _pieces(session: Session, start: datetime, end: datetime, *, rolled_ok: bool) -> list[tuple[datetime, datetime, bool]]:
    """Split [start, end) into raw edges and the rolled-up whole hours between them: (start, end, rolled).

    Roll-ups assume the health check's own interval; another interval reads raw rows only.
    """
    done = rolled_range(session) if rolled_ok else None
    middle = done.clip(start, end) if done is not None else None
    if middle is None:
        return [(start, end, False)]
    pieces = [(start, middle[0], False), (*middle, True), (middle[1], end, False)]
    return [piece for piece in pieces if piece[0] < piece[1]]
