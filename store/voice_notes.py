"""WhatsApp voice notes from the webhook to the reply: the row, its timings, and the claims that keep replies single."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import String, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.models import VoiceNoteRow

STATUSES = ("received", "running", "replied", "skipped", "failed")
FINISHED = ("replied", "skipped")
# NUL is refused by PostgreSQL and lone surrogates by every UTF-8 driver: errors that no retry fixes.
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class InvalidVoiceNote(ValueError):
    """A voice note no store can hold as given (too long, NUL, lone surrogate): a permanent error, not an outage."""


@dataclass(frozen=True)
class NewVoiceNote:
    """What the receiver stores before it answers 202."""

    instance: str
    message_id: str
    chat_jid: str
    sender_jid: str | None
    sent_at: datetime | None
    received_at: datetime
    quoted: str  # JSON {key, message} for the reply's quote and the media fallback
    mimetype: str | None
    audio_path: str | None
    audio_bytes: int | None
    audio_seconds: float | None


@dataclass(frozen=True)
class VoiceNote:
    """One stored voice note."""

    id: int
    instance: str
    message_id: str
    chat_jid: str
    sender_jid: str | None
    sent_at: datetime | None
    received_at: datetime
    quoted: str | None
    mimetype: str | None
    audio_path: str | None
    audio_bytes: int | None
    audio_seconds: float | None
    status: str
    error_reason: str | None
    error: str | None
    flow_run_id: str | None
    run_started_at: datetime | None
    audio_fetched_at: datetime | None
    transcribed_at: datetime | None
    replied_at: datetime | None
    reply_message_id: str | None
    transcript: str | None
    attempts: int
    notice_message_id: str | None
    lease_token: str | None = None
    lease_expires_at: datetime | None = None


def insert_voice_note(session: Session, note: NewVoiceNote) -> int | None:
    """Store a new voice note, queued for a transcriber, and return its id; None when (instance, message id) exists.

    Raises:
        InvalidVoiceNote: naming the field that no store could hold.
    """
    [(voice_note_id, duplicate)] = insert_voice_notes(session, [note])
    return None if duplicate else voice_note_id


def insert_voice_notes(session: Session, notes: list[NewVoiceNote]) -> list[tuple[int, bool]]:
    """Store new voice notes, queued for transcribers; return each one's id and whether it was stored before.

    A note stored before (Evolution delivers again) or earlier in the same list keeps its first id.
    One multi-row INSERT and at most one SELECT: a burst waits on SQLite's single writer for as
    little as it can, and builds no statement per note.

    Raises:
        InvalidVoiceNote: naming the field that no store could hold (nothing is stored).
    """
    for note in notes:
        check_storable(note)
    if not notes:
        return []
    rows = [{field.name: getattr(note, field.name) for field in fields(note)} | {"status": "received", "attempts": 0} for note in notes]
    inserted = {
        (instance, message_id): voice_note_id
        for voice_note_id, instance, message_id in session.execute(_insert_statement(session.get_bind().dialect.name), rows)
    }
    missing = {(note.instance, note.message_id) for note in notes} - inserted.keys()
    existing = dict(_existing_ids(session, missing)) if missing else {}
    results, seen = [], set()
    for note in notes:
        key = (note.instance, note.message_id)
        results.append((inserted[key], key in seen) if key in inserted else (existing[key], True))
        seen.add(key)
    return results


@functools.cache
def _insert_statement(dialect: str):
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(VoiceNoteRow).on_conflict_do_nothing(index_elements=["instance", "message_id"])
    return statement.returning(VoiceNoteRow.id, VoiceNoteRow.instance, VoiceNoteRow.message_id)


def _existing_ids(session: Session, keys: set[tuple[str, str]]):
    condition = or_(*(and_(VoiceNoteRow.instance == instance, VoiceNoteRow.message_id == message_id) for instance, message_id in keys))
    for voice_note_id, instance, message_id in session.execute(
        select(VoiceNoteRow.id, VoiceNoteRow.instance, VoiceNoteRow.message_id).where(condition)
    ):
        yield (instance, message_id), voice_note_id


def check_storable(note: NewVoiceNote) -> None:
    """Refuse a note whose text does not fit its column on every backend (SQLite would take it, PostgreSQL not).

    Raises:
        InvalidVoiceNote: naming the field and the problem.
    """
    columns = VoiceNoteRow.__table__.columns
    for field in fields(note):
        value = getattr(note, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidVoiceNote(f"{field.name}: {value} is not a finite number")
        if not isinstance(value, str):
            continue
        if UNSTORABLE.search(value):
            raise InvalidVoiceNote(f"{field.name}: holds a NUL or a lone surrogate")
        column_type = columns[field.name].type
        if isinstance(column_type, String) and column_type.length and len(value) > column_type.length:
            raise InvalidVoiceNote(f"{field.name}: {len(value)} characters, at most {column_type.length} fit")


def find_voice_note_id(session: Session, instance: str, message_id: str) -> int | None:
    """Return the id of the voice note with this (instance, key.id), if stored."""
    return session.scalar(select(VoiceNoteRow.id).where(VoiceNoteRow.instance == instance, VoiceNoteRow.message_id == message_id))


def get_voice_note(session: Session, voice_note_id: int) -> VoiceNote | None:
    """Return one voice note, or None."""
    row = session.get(VoiceNoteRow, voice_note_id, populate_existing=True)
    return None if row is None else _to_record(row)


def start_run(session: Session, voice_note_id: int, flow_run_id: str | None, now: datetime) -> VoiceNote | None:
    """Mark a note `running` for this flow run (unless already finished) and return it; None when unknown."""
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.status.not_in(FINISHED))
        .values(
            status="running", flow_run_id=flow_run_id, run_started_at=now, attempts=VoiceNoteRow.attempts + 1, error_reason=None, error=None
        )
        .execution_options(synchronize_session=False)
    )
    return get_voice_note(session, voice_note_id)


def record_audio(session: Session, voice_note_id: int, at: datetime, *, audio_path: str, audio_bytes: int, mimetype: str | None) -> None:
    """Record that the audio is on disk."""
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id)
        .values(audio_fetched_at=at, audio_path=audio_path, audio_bytes=audio_bytes, mimetype=mimetype)
    )


def audio_in_use(session: Session, paths: list[str]) -> dict[str, str]:
    """Which of these spooled audio paths a note still names, with its status (a finished note names it only when kept)."""
    rows = session.execute(select(VoiceNoteRow.audio_path, VoiceNoteRow.status).where(VoiceNoteRow.audio_path.in_(paths)))
    return {path: status for path, status in rows}


def record_transcript(session: Session, voice_note_id: int, at: datetime, *, transcript: str, audio_seconds: float | None) -> None:
    """Keep the transcript until the reply is sent (so a re-run after a failed send need not transcribe again)."""
    values = {"transcribed_at": at, "transcript": transcript}
    if audio_seconds is not None:
        values["audio_seconds"] = audio_seconds
    session.execute(update(VoiceNoteRow).where(VoiceNoteRow.id == voice_note_id).values(**values))


def claim_reply(session: Session, voice_note_id: int, now: datetime) -> bool:
    """Claim the one transcript reply of a note; False when another run claimed or sent it."""
    outcome = session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.reply_claimed_at.is_(None), VoiceNoteRow.reply_message_id.is_(None))
        .values(reply_claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount == 1


def release_reply(session: Session, voice_note_id: int) -> None:
    """Release a reply claim whose send failed for sure (Evolution refused it), so a re-run may send it."""
    session.execute(
        update(VoiceNoteRow).where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.reply_message_id.is_(None)).values(reply_claimed_at=None)
    )


def record_reply(session: Session, voice_note_id: int, at: datetime, reply_message_id: str, *, keep_transcript: bool) -> None:
    """Record the sent reply; forget transcript and audio path unless they are kept."""
    values = {"status": "replied", "replied_at": at, "reply_message_id": reply_message_id, "error_reason": None, "error": None}
    if not keep_transcript:
        values.update(transcript=None, audio_path=None)
    session.execute(update(VoiceNoteRow).where(VoiceNoteRow.id == voice_note_id).values(**values))


def record_skip(session: Session, voice_note_id: int, reason: str, detail: str, *, keep_audio: bool) -> None:
    """Finish a note with nothing to reply (too short, no speech)."""
    values = {"status": "skipped", "error_reason": reason, "error": detail, "transcript": None}
    if not keep_audio:
        values["audio_path"] = None
    session.execute(update(VoiceNoteRow).where(VoiceNoteRow.id == voice_note_id).values(**values))


def record_failure(session: Session, voice_note_id: int, reason: str, detail: str) -> None:
    """Mark a note failed with a short reason slug and the error text (a re-run may still finish it)."""
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.status.not_in(FINISHED))
        .values(status="failed", error_reason=reason[:32], error=detail)
    )


def claim_notice(session: Session, voice_note_id: int, now: datetime) -> bool:
    """Claim the one failure notice of a note; False when one was claimed or sent already."""
    outcome = session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.notice_claimed_at.is_(None), VoiceNoteRow.reply_message_id.is_(None))
        .values(notice_claimed_at=now)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount == 1


def record_notice(session: Session, voice_note_id: int, notice_message_id: str | None) -> None:
    """Record the failure notice sent (or release the claim when it could not be sent)."""
    values = {"notice_message_id": notice_message_id} if notice_message_id else {"notice_claimed_at": None}
    session.execute(update(VoiceNoteRow).where(VoiceNoteRow.id == voice_note_id).values(**values))


def count_by_status(session: Session) -> dict[str, int]:
    """Return how many notes are in each status."""
    return dict(session.execute(select(VoiceNoteRow.status, func.count()).group_by(VoiceNoteRow.status)).all())


def _to_record(row: VoiceNoteRow) -> VoiceNote:
    return VoiceNote(
        id=row.id,
        instance=row.instance,
        message_id=row.message_id,
        chat_jid=row.chat_jid,
        sender_jid=row.sender_jid,
        sent_at=row.sent_at,
        received_at=row.received_at,
        quoted=row.quoted,
        mimetype=row.mimetype,
        audio_path=row.audio_path,
        audio_bytes=row.audio_bytes,
        audio_seconds=row.audio_seconds,
        status=row.status,
        error_reason=row.error_reason,
        error=row.error,
        flow_run_id=row.flow_run_id,
        run_started_at=row.run_started_at,
        audio_fetched_at=row.audio_fetched_at,
        transcribed_at=row.transcribed_at,
        replied_at=row.replied_at,
        reply_message_id=row.reply_message_id,
        transcript=row.transcript,
        attempts=row.attempts,
        notice_message_id=row.notice_message_id,
        lease_token=row.lease_token,
        lease_expires_at=row.lease_expires_at,
    )
