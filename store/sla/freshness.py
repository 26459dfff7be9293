"""Backup freshness (DESIGN §11): now − the newest verified backup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import BackupRunRow
from store.sla.targets import FRESHNESS_TARGET_SECONDS


@dataclass(frozen=True)
class Freshness:
    """The newest verified backup and its age; no verified backup at all fails the target."""

    run_id: str | None
    verified_at: datetime | None
    age_seconds: float | None

    @property
    def meets_target(self) -> bool:
        """Whether a verified backup younger than 26 h exists."""
        return self.age_seconds is not None and self.age_seconds < FRESHNESS_TARGET_SECONDS


def backup_freshness(session: Session, now: datetime | None = None) -> Freshness:
    """Return the newest verified backup finished by `now`, and its age at `now`."""
    now = now or datetime.now(timezone.utc)
    row = session.execute(
        select(BackupRunRow.id, BackupRunRow.finished_at)
        .where(BackupRunRow.verified.is_(True), BackupRunRow.finished_at.is_not(None), BackupRunRow.finished_at <= now)
        .order_by(BackupRunRow.finished_at.desc())
        .limit(1)
    ).first()
    if row is None:
        return Freshness(None, None, None)
    return Freshness(row.id, row.finished_at, (now - row.finished_at).total_seconds())
