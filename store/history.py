"""Read-only history for the dashboard and the weekly report: backup runs, restores, voice-note volume
and failures, store contents.

The SLA figures themselves live in `store.sla`; these are the lists and breakdowns around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import AlertRow, BackupItemRow, BackupRunRow, RestoreRow, TargetStateRow, VoiceNoteRow
from store.timearith import epoch_seconds


@dataclass(frozen=True)
class StoreContents:
    """How much the store holds of each kind; all zero for a store nothing has written to yet."""

    targets: int
    voice_notes: int
    backup_runs: int
    alerts: int

    @property
    def is_empty(self) -> bool:
        """Whether no health check, voice note, backup or alert was ever stored."""
        return not (self.targets or self.voice_notes or self.backup_runs or self.alerts)


@dataclass(frozen=True)
class BackupRunSummary:
    """One backup run as the dashboard lists it: outcome, size, stage timings, error."""

    id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    verified: bool
    size_bytes: int | None
    dump_seconds: float | None
    upload_seconds: float | None
    verify_seconds: float | None
    items: int
    items_verified: int
    error: str | None


@dataclass(frozen=True)
class RestoreSummary:
    """One restore of one backup item, with how long it took."""

    run_id: str
    source: str
    target: str  # stored masked
    started_at: datetime
    seconds: float | None
    status: str
    error: str | None


@dataclass(frozen=True)
class FailureCount:
    """How many notes ended with one status and reason (failed or skipped)."""

    status: str
    reason: str
    count: int


def store_contents(session: Session) -> StoreContents:
    """Return how many targets, voice notes, backup runs and alerts the store holds."""

    def count(model) -> int:
        return session.scalar(select(func.count()).select_from(model)) or 0

    return StoreContents(count(TargetStateRow), count(VoiceNoteRow), count(BackupRunRow), count(AlertRow))


def backup_runs_between(session: Session, start: datetime, end: datetime) -> list[BackupRunSummary]:
    """Return the backup runs started in [start, end), newest first, with their items' verification."""
    items = (
        select(
            BackupItemRow.run_id,
            func.count().label("n_items"),
            func.count().filter(BackupItemRow.verified.is_(True)).label("n_verified"),
        )
        .group_by(BackupItemRow.run_id)
        .subquery()
    )
    rows = session.execute(
        select(BackupRunRow, items.c.n_items, items.c.n_verified)
        .outerjoin(items, items.c.run_id == BackupRunRow.id)
        .where(BackupRunRow.started_at >= start, BackupRunRow.started_at < end)
        .order_by(BackupRunRow.started_at.desc())
    ).all()
    return [
        BackupRunSummary(
            id=run.id,
            started_at=run.started_at,
            finished_at=run.finished_at,
            status=run.status,
            verified=run.verified,
            size_bytes=run.size_bytes,
            dump_seconds=run.dump_seconds,
            upload_seconds=run.upload_seconds,
            verify_seconds=run.verify_seconds,
            items=n_items or 0,
            items_verified=n_verified or 0,
            error=run.error,
        )
        for run, n_items, n_verified in rows
    ]


def restores_between(session: Session, start: datetime, end: datetime) -> list[RestoreSummary]:
    """Return the restores started in [start, end), newest first."""
    rows = session.scalars(
        select(RestoreRow).where(RestoreRow.started_at >= start, RestoreRow.started_at < end).order_by(RestoreRow.started_at.desc())
    )
    return [RestoreSummary(r.run_id, r.source, r.target, r.started_at, r.seconds, r.status, r.error) for r in rows]


def transcription_failures(session: Session, start: datetime, end: datetime) -> list[FailureCount]:
    """Return the notes received in [start, end) that failed or were skipped, counted by status and reason."""
    reason = func.coalesce(VoiceNoteRow.error_reason, "unknown")
    rows = session.execute(
        select(VoiceNoteRow.status, reason, func.count())
        .where(VoiceNoteRow.received_at >= start, VoiceNoteRow.received_at < end, VoiceNoteRow.status.in_(("failed", "skipped")))
        .group_by(VoiceNoteRow.status, reason)
        .order_by(func.count().desc())
    ).all()
    return [FailureCount(status, why, count) for status, why, count in rows]


@dataclass(frozen=True)
class NoteVolume:
    """Voice notes received in a window."""

    received: int
    audio_seconds: float


def note_volume(session: Session, start: datetime, end: datetime) -> NoteVolume:
    """Return how many voice notes arrived in [start, end) and their total audio length."""
    received, audio = session.execute(
        select(func.count(), func.coalesce(func.sum(VoiceNoteRow.audio_seconds), 0.0)).where(
            VoiceNoteRow.received_at >= start, VoiceNoteRow.received_at < end
        )
    ).one()
    return NoteVolume(received, float(audio))


def notes_per_hour(session: Session, start: datetime, end: datetime) -> dict[datetime, int]:
    """Return voice notes of [start, end) counted per UTC hour (the caller turns hours into local time)."""
    hour = func.floor(epoch_seconds(VoiceNoteRow.received_at) / 3600)
    rows = session.execute(
        select(hour, func.count()).where(VoiceNoteRow.received_at >= start, VoiceNoteRow.received_at < end).group_by(hour)
    )
    return {datetime.fromtimestamp(int(bucket) * 3600, timezone.utc): count for bucket, count in rows}
