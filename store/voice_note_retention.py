"""Voice notes' audio and transcripts past their settings (DESIGN §9, §13): spooled files no reply needs, old transcripts.

A note's audio goes once the note is answered or skipped (unless VIGIA_KEEP_TRANSCRIPTS), and whatever the
setting once the note is older than VIGIA_KEEP_TRANSCRIPTS_DAYS; a waiting or failed note keeps it for a re-run
until then. The flow deletes a reply's audio itself: this catches what a crash between the reply and the unlink
left, and files no note names (the receiver writes the file before its commit: a crash in between leaves one).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.models import VoiceNoteRow

DONE_WITH_AUDIO = ("replied", "skipped")
# A file younger than this may be one the receiver is committing: never taken for an orphan.
ORPHAN_AFTER = timedelta(hours=1)


def clear_transcripts(session: Session, now: datetime, *, keep_days: int) -> int:
    """Clear the transcripts of notes received over `keep_days` ago (kept with VIGIA_KEEP_TRANSCRIPTS); return how many."""
    old = update(VoiceNoteRow).where(VoiceNoteRow.transcript.is_not(None), VoiceNoteRow.received_at < now - timedelta(days=keep_days))
    return session.execute(old.values(transcript=None).execution_options(synchronize_session=False)).rowcount


def prune_spool(session: Session, spool_dir: Path | None, now: datetime, *, keep_days: int, keep_audio: bool, dry_run: bool) -> int:
    """Delete (or, in a dry run, count) the spooled files no note needs any more; return how many."""
    cutoff = now - timedelta(days=keep_days)
    expired = VoiceNoteRow.received_at < cutoff
    doomed_condition = expired if keep_audio else or_(expired, VoiceNoteRow.status.in_(DONE_WITH_AUDIO))
    doomed = session.execute(
        select(VoiceNoteRow.id, VoiceNoteRow.audio_path).where(VoiceNoteRow.audio_path.is_not(None), doomed_condition)
    ).all()
    orphans = _orphans(session, spool_dir, now) if spool_dir is not None else []
    if dry_run:
        return sum(1 for _, path in doomed if Path(path).exists()) + len(orphans)
    deleted = 0
    for path in [Path(path) for _, path in doomed] + orphans:
        if path.exists():
            path.unlink(missing_ok=True)
            deleted += 1
    if doomed:
        ids = [note_id for note_id, _ in doomed]
        session.execute(
            update(VoiceNoteRow).where(VoiceNoteRow.id.in_(ids)).values(audio_path=None).execution_options(synchronize_session=False)
        )
    return deleted


def _orphans(session: Session, spool_dir: Path, now: datetime) -> list[Path]:
    if not spool_dir.is_dir():
        return []
    named = set(session.scalars(select(VoiceNoteRow.audio_path).where(VoiceNoteRow.audio_path.is_not(None))))
    settled = (now - ORPHAN_AFTER).timestamp()
    return [path for path in spool_dir.iterdir() if path.is_file() and str(path) not in named and path.stat().st_mtime < settled]
