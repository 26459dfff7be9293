"""Incidents: an outage of one target from its first failure to its first success."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import IncidentRow


@dataclass(frozen=True)
class Incident:
    """One outage; `resolved_at` is None while it lasts."""

    id: int
    target: str
    critical: bool
    reason: str
    opened_at: datetime
    confirmed_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None


def open_incident(session: Session, target: str, *, critical: bool, reason: str, opened_at: datetime, confirmed_at: datetime) -> int:
    """Open an incident and return its id."""
    row = IncidentRow(
        target=target, critical=critical, reason=reason, opened_at=opened_at, confirmed_at=confirmed_at
    )
    session.add(row)
    session.flush()
    return row.id


def resolve_incident(session: Session, incident_id: int, resolved_at: datetime) -> None:
    """Mark an incident resolved, once."""
    row = session.get(IncidentRow, incident_id)
    if row is not None and row.resolved_at is None:
        row.resolved_at = resolved_at


def list_incidents(session: Session, *, since: datetime | None = None, open_only: bool = False) -> list[Incident]:
    """Return incidents opened since a time (or still open), oldest first."""
    query = select(IncidentRow).order_by(IncidentRow.opened_at)
    if open_only:
        query = query.where(IncidentRow.resolved_at.is_(None))
    if since is not None:
        query = query.where((IncidentRow.opened_at >= since) | IncidentRow.resolved_at.is_(None))
    return [_to_incident(row) for row in session.scalars(query)]


def _to_incident(row: IncidentRow) -> Incident:
    return Incident(
        id=row.id,
        target=row.target,
        critical=row.critical,
        reason=row.reason,
        opened_at=row.opened_at,
        confirmed_at=row.confirmed_at,
        acknowledged_at=row.acknowledged_at,
        resolved_at=row.resolved_at,
    )
