"""Silences: maintenance windows that hold a target's notifications and count as MAINTENANCE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import SilenceRow


@dataclass(frozen=True)
class Silence:
    """One maintenance window of one target."""

    id: int
    target: str
    starts_at: datetime
    ends_at: datetime
    reason: str


def add_silence(session: Session, target: str, starts_at: datetime, ends_at: datetime, reason: str) -> Silence:
    """Store a silence and return it.

    Raises:
        ValueError: when it ends before it starts or has no reason.
    """
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    if not reason.strip():
        raise ValueError("a silence needs a reason")
    row = SilenceRow(target=target, starts_at=starts_at, ends_at=ends_at, reason=reason.strip())
    session.add(row)
    session.flush()
    return _to_silence(row)


def remove_silence(session: Session, silence_id: int, now: datetime) -> bool:
    """End a silence now; return False when there is no such active silence."""
    outcome = session.execute(
        update(SilenceRow)
        .where(SilenceRow.id == silence_id, SilenceRow.removed_at.is_(None), SilenceRow.ends_at > now)
        .values(removed_at=now, ends_at=now)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount == 1


def active_silences(session: Session, now: datetime) -> list[Silence]:
    """Return the silences in force now, soonest ending first."""
    query = (
        select(SilenceRow)
        .where(SilenceRow.starts_at <= now, SilenceRow.ends_at > now, SilenceRow.removed_at.is_(None))
        .order_by(SilenceRow.ends_at)
    )
    return [_to_silence(row) for row in session.scalars(query)]


def silences_between(session: Session, start: datetime, end: datetime) -> list[Silence]:
    """Return every silence overlapping [start, end), as it actually ran (removal ends it)."""
    query = select(SilenceRow).where(SilenceRow.starts_at < end, SilenceRow.ends_at > start).order_by(SilenceRow.starts_at)
    return [_to_silence(row) for row in session.scalars(query)]


def _to_silence(row: SilenceRow) -> Silence:
    return Silence(id=row.id, target=row.target, starts_at=row.starts_at, ends_at=row.ends_at, reason=row.reason)
