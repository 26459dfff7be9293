"""Recovery time (DESIGN §11): incident resolved − opened, each incident checked, MTTR shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import IncidentRow
from store.sla.targets import RECOVERY_TARGET_SECONDS


@dataclass(frozen=True)
class Recovery:
    """One incident's time to recovery; an open incident counts its age so far."""

    incident_id: int
    target: str
    critical: bool
    opened_at: datetime
    resolved_at: datetime | None
    seconds: float

    @property
    def is_open(self) -> bool:
        """Whether the incident is still unresolved."""
        return self.resolved_at is None

    @property
    def meets_target(self) -> bool:
        """Whether it recovered (or, while open, has lasted) under 30 minutes."""
        return self.seconds < RECOVERY_TARGET_SECONDS


@dataclass(frozen=True)
class Recoveries:
    """The incidents opened in a window, with their mean time to recovery."""

    incidents: tuple[Recovery, ...]

    @property
    def mttr_seconds(self) -> float | None:
        """Mean seconds from opened to resolved over resolved incidents, or None without any."""
        resolved = [item.seconds for item in self.incidents if not item.is_open]
        return sum(resolved) / len(resolved) if resolved else None

    @property
    def worst_seconds(self) -> float | None:
        """The longest recovery (or open age), or None without incidents."""
        return max((item.seconds for item in self.incidents), default=None)

    @property
    def meets_target(self) -> bool:
        """Whether every incident recovered under 30 minutes (no incidents meets it too)."""
        return all(item.meets_target for item in self.incidents)


def recovery_times(session: Session, start: datetime, end: datetime, now: datetime | None = None) -> Recoveries:
    """Return every incident opened in [start, end), oldest first, with its recovery time."""
    now = now or datetime.now(timezone.utc)
    rows = session.scalars(
        select(IncidentRow)
        .where(IncidentRow.opened_at >= start, IncidentRow.opened_at < end)
        .order_by(IncidentRow.opened_at, IncidentRow.id)
    )
    return Recoveries(
        tuple(
            Recovery(
                incident_id=row.id,
                target=row.target,
                critical=row.critical,
                opened_at=row.opened_at,
                resolved_at=row.resolved_at,
                seconds=((row.resolved_at or now) - row.opened_at).total_seconds(),
            )
            for row in rows
        )
    )
