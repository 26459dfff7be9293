"""Incidents: an outage of one target from its first failure to its first success."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
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
    row = IncidentRow(target=target, critical=critical, reason=reason, opened_at=opened_at, confirmed_at=confirmed_at)
    session.add(row)
    session.flush()
    return row.id


def resolve_incident(session: Session, incident_id: int, resolved_at: datetime) -> None:
    """Mark an incident resolved, once."""
    row = session.get(IncidentRow, incident_id)
    if row is not None and row.resolved_at is None:
        row.resolved_at = resolved_at


def acknowledge_incident(session: Session, incident_id: int, reason: str, at: datetime) -> Incident:
    """Acknowledge an open incident, stopping its reminders and escalation.

    Raises:
        LookupError: when there is no such incident.
        ValueError: when it is resolved or already acknowledged, or the reason is empty.
    """
    if not reason.strip():
        raise ValueError("an acknowledgement needs a reason")
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise LookupError(f"no incident {incident_id}")
    outcome = session.execute(
        update(IncidentRow)
        .where(IncidentRow.id == incident_id, IncidentRow.acknowledged_at.is_(None), IncidentRow.resolved_at.is_(None))
        .values(acknowledged_at=at, acknowledge_reason=reason.strip())
        .execution_options(synchronize_session=False)
    )
    if outcome.rowcount != 1:
        state = "resolved" if row.resolved_at else "already acknowledged"
        raise ValueError(f"incident {incident_id} ({row.target}) is {state}")
    session.refresh(row)
    return _to_incident(row)


def read_incident(session: Session, incident_id: int) -> Incident | None:
    """Return one incident, or None."""
    row = session.get(IncidentRow, incident_id)
    return None if row is None else _to_incident(row)


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
