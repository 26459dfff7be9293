"""Retention of the store (DESIGN §13): raw probes once rolled up, everything else after a longer limit.

Probes older than their limit go only when their hours are rolled up, and the health-check runs of
that age with them (one row per check, read only for the newest); the hourly roll-ups, state
changes, incidents, alerts, deliveries, silences, backups, restores, voice notes and chat metadata
go after the history limit. What a read needs to start a window is kept: each target's
newest state change, the newest verified backup, open incidents and anything a kept row points to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from store.database import get_engine, open_session
from store.models import (
    AlertKeyRow,
    AlertRow,
    BackupItemRow,
    BackupRunRow,
    ConversationMessageRow,
    DeliveryRow,
    HealthRunRow,
    IncidentRow,
    ProbeHourRow,
    ProbeResultRow,
    RestoreRow,
    SilenceRow,
    StateChangeRow,
    TargetStateRow,
    VoiceNoteRow,
)
from store.probe_hours import floor_hour, forget_hours_before, roll_up_pending_hours, rolled_range
from store.voice_note_retention import clear_transcripts, prune_spool

# VACUUM rewrites the whole file: worth it only once this share of its pages is free.
VACUUM_FREE_SHARE = 0.2


@dataclass(frozen=True)
class Limits:
    """How long rows are kept: raw probes (once rolled up) and health-check runs, and everything else."""

    probe_days: int = 35
    history_days: int = 400
    transcript_days: int = 30  # kept transcripts and spooled audio, whatever VIGIA_KEEP_TRANSCRIPTS says
    keep_transcripts: bool = False  # VIGIA_KEEP_TRANSCRIPTS: an answered note's text and audio stay until transcript_days


@dataclass(frozen=True)
class PruneCounts:
    """Rows deleted per table (or, in a dry run, that would be), in the order they go."""

    tables: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Rows deleted in all tables."""
        return sum(self.tables.values())


def prune_store(session: Session, now: datetime, limits: Limits = Limits(), *, dry_run: bool = False) -> PruneCounts:
    """Delete (or only count, with `dry_run`) the rows past their limits; return the count per table."""
    runs_cutoff = probe_cutoff = now - timedelta(days=limits.probe_days)
    done = rolled_range(session)
    # Only whole hours the roll-ups hold: a probe not rolled up yet stays whatever its age.
    probe_cutoff = min(probe_cutoff, done.end) if done is not None else None
    cutoff = floor_hour(now - timedelta(days=limits.history_days))
    doomed_alerts = select(AlertRow.id).where(AlertRow.created_at < cutoff)
    # Each target's newest change before the cutoff opens every later window: it stays.
    newest_changes = select(func.max(StateChangeRow.id)).where(StateChangeRow.at < cutoff).group_by(StateChangeRow.target)
    newest_verified = select(BackupRunRow.id).where(BackupRunRow.verified.is_(True)).order_by(BackupRunRow.started_at.desc()).limit(1)
    doomed_runs = select(BackupRunRow.id).where(BackupRunRow.started_at < cutoff, BackupRunRow.id.not_in(newest_verified))
    steps = [
        ("probe_results", ProbeResultRow, ProbeResultRow.at < probe_cutoff if probe_cutoff else None),
        ("probe_hours", ProbeHourRow, ProbeHourRow.hour < cutoff),
        ("state_changes", StateChangeRow, (StateChangeRow.at < cutoff) & StateChangeRow.id.not_in(newest_changes)),
        ("deliveries", DeliveryRow, DeliveryRow.alert_id.in_(doomed_alerts)),
        ("alerts", AlertRow, AlertRow.created_at < cutoff),
        ("alert_keys", AlertKeyRow, AlertKeyRow.last_at < cutoff),
        ("incidents", IncidentRow, (IncidentRow.resolved_at < cutoff) & _unreferenced(IncidentRow.id)),
        ("health_runs", HealthRunRow, HealthRunRow.finished_at < runs_cutoff),
        ("silences", SilenceRow, SilenceRow.ends_at < cutoff),
        ("backup_items", BackupItemRow, BackupItemRow.run_id.in_(doomed_runs)),
        ("backup_runs", BackupRunRow, BackupRunRow.id.in_(doomed_runs)),
        ("restores", RestoreRow, RestoreRow.started_at < cutoff),
        # A note still holding spooled audio is left to the spool's own clean-up.
        ("voice_notes", VoiceNoteRow, (VoiceNoteRow.received_at < cutoff) & VoiceNoteRow.audio_path.is_(None)),
        ("conversation_messages", ConversationMessageRow, ConversationMessageRow.at < cutoff),
    ]
    # A dry run deletes too, inside a savepoint it rolls back: its counts are exactly what a real run deletes.
    savepoint = session.begin_nested()
    counts = {}
    for name, model, condition in steps:
        if condition is None:
            counts[name] = 0
            continue
        counts[name] = session.execute(delete(model).where(condition).execution_options(synchronize_session=False)).rowcount
    if done is not None:
        forget_hours_before(session, cutoff)
    if dry_run:
        savepoint.rollback()
    else:
        savepoint.commit()
    return PruneCounts(counts, dry_run)


@dataclass(frozen=True)
class RetentionReport:
    """One retention pass: hours rolled up first, rows pruned, and whether SQLite was compacted."""

    hours_rolled_up: int
    pruned: PruneCounts
    compacted: bool
    limits: Limits
    spool_files_deleted: int = 0
    transcripts_cleared: int = 0

    def describe(self) -> str:
        """One line: what was rolled up, deleted (or would be) per table, and whether SQLite was compacted."""
        verb = "would delete" if self.pruned.dry_run else "deleted"
        tables = ", ".join(f"{count} {name}" for name, count in self.pruned.tables.items() if count) or "nothing"
        compacted = "; VACUUM done" if self.compacted else ""
        voice = ""
        if self.spool_files_deleted or self.transcripts_cleared:
            voice = (
                f"; {verb} {self.spool_files_deleted} spooled audio files and {self.transcripts_cleared} transcripts "
                f"(answered, or over {self.limits.transcript_days} d)"
            )
        return (
            f"store retention: {self.hours_rolled_up} hours rolled up; {verb} {tables} (raw probes over "
            f"{self.limits.probe_days} d once rolled up, health runs over {self.limits.probe_days} d, the rest over "
            f"{self.limits.history_days} d){voice}{compacted}"
        )


def apply_retention(
    url: str, now: datetime, limits: Limits = Limits(), *, dry_run: bool = False, spool_dir: Path | None = None
) -> RetentionReport:
    """Roll up every complete hour (a day per transaction), drop spooled audio no note needs, prune, then VACUUM
    a SQLite store when worthwhile.

    A dry run rolls nothing up and deletes nothing: it counts what a prune would delete now.
    """
    hours = 0 if dry_run else roll_up_pending_hours(url, now)
    with open_session(url) as session:
        savepoint = session.begin_nested()  # a dry run counts inside a savepoint it rolls back; files it only counts
        files = prune_spool(session, spool_dir, now, keep_days=limits.transcript_days, keep_audio=limits.keep_transcripts, dry_run=dry_run)
        transcripts = clear_transcripts(session, now, keep_days=limits.transcript_days)
        if dry_run:
            savepoint.rollback()
        else:
            savepoint.commit()
    with open_session(url) as session:
        pruned = prune_store(session, now, limits, dry_run=dry_run)
    compacted = not dry_run and pruned.total > 0 and compact_sqlite(url)
    return RetentionReport(hours, pruned, compacted, limits, files, transcripts)


def compact_sqlite(url: str, free_share: float = VACUUM_FREE_SHARE) -> bool:
    """VACUUM a SQLite store when at least `free_share` of its pages are free; return whether it did (PostgreSQL: never)."""
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        return False
    connection = engine.raw_connection()  # autocommit (isolation_level None): VACUUM cannot run inside a transaction
    try:
        cursor = connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        free = cursor.execute("PRAGMA freelist_count").fetchone()[0]
        if not pages or free / pages < free_share:
            return False
        cursor.execute("VACUUM")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # in WAL mode the file shrinks only at a checkpoint
        return True
    finally:
        connection.close()


def _unreferenced(incident_id):
    """Whether no remaining state change, alert or target state points to the incident."""
    referenced = [
        select(StateChangeRow.incident_id).where(StateChangeRow.incident_id.is_not(None)),
        select(AlertRow.incident_id).where(AlertRow.incident_id.is_not(None)),
        select(TargetStateRow.incident_id).where(TargetStateRow.incident_id.is_not(None)),
    ]
    return and_(*(incident_id.not_in(query) for query in referenced))
