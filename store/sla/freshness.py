"""Backup freshness (DESIGN §11): now − the newest verified backup.

A fresh install has no backup yet, and none was due: until the first scheduled daily backup
(prefect.yaml's `backup/daily`, 03:00 in VIGIA_TIMEZONE) plus the 26 h target has passed, the
target is met and reads "first backup due by …". The install time is the store's earliest row
(a health run, a probe, a backup run): every install writes one within minutes of `vigia up`, the
retention keeps them 35 to 400 days (far past the ~2-day grace), and an upgraded install with
history is judged as before at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import BackupRunRow, HealthRunRow, ProbeResultRow
from store.sla.targets import FRESHNESS_TARGET_SECONDS

# prefect.yaml's backup/daily schedule (a test keeps the two equal); only "M H * * *" is understood.
DAILY_BACKUP_CRON = "0 3 * * *"
# The default of VIGIA_TIMEZONE in the settings, which `vigia up` fills prefect.yaml's schedules with.
DEFAULT_ZONE = "America/Sao_Paulo"


@dataclass(frozen=True)
class Freshness:
    """The newest verified backup and its age; without one, when the first one is due (if still ahead)."""

    run_id: str | None
    verified_at: datetime | None
    age_seconds: float | None
    first_due_at: datetime | None = None  # set only while no verified backup exists and none is due yet
    zone: str = "UTC"

    @property
    def awaiting_first(self) -> bool:
        """Whether this is a fresh install whose first backup is not due yet."""
        return self.age_seconds is None and self.first_due_at is not None

    @property
    def meets_target(self) -> bool:
        """Whether a verified backup younger than 26 h exists, or the first one is not due yet."""
        if self.awaiting_first:
            return True
        return self.age_seconds is not None and self.age_seconds < FRESHNESS_TARGET_SECONDS

    def first_due_text(self) -> str:
        """Return "first backup due by <time>" in the zone, labelled, or "" when not awaiting the first."""
        if self.first_due_at is None:
            return ""
        return f"first backup due by {format_local(self.first_due_at, self.zone)}"


def backup_freshness(session: Session, now: datetime | None = None, zone: str | None = None) -> Freshness:
    """Return the newest verified backup finished by `now` and its age at `now`.

    Args:
        zone: The time zone of the daily backup schedule; default VIGIA_TIMEZONE, else the settings' default.
    """
    now = now or datetime.now(timezone.utc)
    zone = zone or os.environ.get("VIGIA_TIMEZONE") or DEFAULT_ZONE
    row = session.execute(
        select(BackupRunRow.id, BackupRunRow.finished_at)
        .where(BackupRunRow.verified.is_(True), BackupRunRow.finished_at.is_not(None), BackupRunRow.finished_at <= now)
        .order_by(BackupRunRow.finished_at.desc())
        .limit(1)
    ).first()
    if row is not None:
        return Freshness(row.id, row.finished_at, (now - row.finished_at).total_seconds(), zone=zone)
    due = first_backup_due(installed_at(session, now), zone)
    return Freshness(None, None, None, first_due_at=due if now < due else None, zone=zone)


def installed_at(session: Session, now: datetime) -> datetime:
    """Return when the platform started writing to this store: its earliest row by `now`, or `now` if none."""
    earliest = [
        session.scalar(select(func.min(column)).where(column <= now))
        for column in (HealthRunRow.finished_at, ProbeResultRow.at, BackupRunRow.started_at)
    ]
    return min((at for at in earliest if at is not None), default=now)


def first_backup_due(installed: datetime, zone: str) -> datetime:
    """Return when a fresh install's freshness turns DOWN: its first scheduled daily backup + 26 h."""
    return first_scheduled_backup(installed, zone) + timedelta(seconds=FRESHNESS_TARGET_SECONDS)


def first_scheduled_backup(after: datetime, zone: str) -> datetime:
    """Return the first daily backup time (DAILY_BACKUP_CRON in `zone`) strictly after `after`, in UTC."""
    minute, hour = (int(field) for field in DAILY_BACKUP_CRON.split()[:2])
    local_zone = ZoneInfo(zone)
    day = after.astimezone(local_zone).date()
    today = datetime.combine(day, time(hour, minute), local_zone).astimezone(timezone.utc)
    if today > after:
        return today
    return datetime.combine(day + timedelta(days=1), time(hour, minute), local_zone).astimezone(timezone.utc)


def format_local(at: datetime, zone: str) -> str:
    """Return a time as people read it in `zone`, labelled: 2026-12-06 05:00 -03."""
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M %Z}"
