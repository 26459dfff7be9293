"""The transcription queue: voice notes waiting for a transcriber, claimed with leases their holders renew.

A note is queued while it is `received` (or `running` under a lease that expired: its holder died)
and nobody holds a live lease on it. Claims take the oldest first with one conditional UPDATE, so
two transcribers never hold the same note; a lease is taken again only once it has expired.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from store.models import VoiceNoteRow

WAKE_CHANNEL = "vigia_voice_notes"  # PostgreSQL NOTIFY channel: a note was stored
HEALTH_QUEUE_KEY = "voice-notes"  # a `queue` health target with this key and the store's URL measures this queue
QUEUED = ("received", "running")
FINISHED = ("replied", "skipped")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedNote:
    """A note a claim took: what it carried before, so a dead holder's run can be closed."""

    id: int
    received_at: datetime
    old_token: str | None  # the expired lease's token, when the note was taken from a dead holder
    old_flow_run_id: str | None


@dataclass(frozen=True)
class QueueState:
    """How many notes wait for a transcriber, the oldest one's wait, and how many are held."""

    waiting: int
    oldest_waiting_seconds: float
    held: int


def claim_notes(
    session: Session, holder: str, token: str, now: datetime, lease: timedelta, limit: int, least: int = 1
) -> list[ClaimedNote]:
    """Claim up to `limit` of the oldest queued notes under `token` until now + `lease`; return them oldest first.

    With room for fewer than `least` notes while more than that wait, claim none: the caller waits for
    more room, so a long queue goes out in batches of at least `least` rather than one note per run.
    """
    if limit <= 0:
        return []
    candidates = (
        select(VoiceNoteRow.id, VoiceNoteRow.received_at, VoiceNoteRow.lease_token, VoiceNoteRow.flow_run_id)
        .where(_claimable(now))
        .order_by(VoiceNoteRow.received_at, VoiceNoteRow.id)
        .limit(limit + 1)  # one more: does the queue go on beyond the room?
        .with_for_update(skip_locked=True)  # PostgreSQL: two transcribers pick disjoint rows; SQLite's BEGIN IMMEDIATE serialises
    )
    rows = session.execute(candidates).all()
    if not rows or (limit < least and len(rows) > limit):
        return []
    rows = rows[:limit]
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id.in_([row.id for row in rows]), _claimable(now))
        .values(lease_token=token, lease_holder=holder[:128], lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    taken = set(session.scalars(select(VoiceNoteRow.id).where(VoiceNoteRow.lease_token == token)))
    return [ClaimedNote(row.id, row.received_at, row.lease_token, row.flow_run_id) for row in rows if row.id in taken]


def take_notes(session: Session, ids: list[int], token: str, holder: str, now: datetime, lease: timedelta) -> list[int]:
    """Hold the given unfinished notes under `token` (already ours, free, or expired); return those held.

    A run started by hand from the Prefect UI comes through here, so it never works on a note a live
    transcriber holds.
    """
    session.execute(
        update(VoiceNoteRow)
        .where(
            VoiceNoteRow.id.in_(ids),
            VoiceNoteRow.status.not_in(FINISHED),
            or_(VoiceNoteRow.lease_token == token, VoiceNoteRow.lease_token.is_(None), VoiceNoteRow.lease_expires_at < now),
        )
        .values(lease_token=token, lease_holder=holder[:128], lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(select(VoiceNoteRow.id).where(VoiceNoteRow.id.in_(ids), VoiceNoteRow.lease_token == token)))


def rekey_claim(session: Session, old_token: str, new_token: str, flow_run_id: str) -> int:
    """Move a claim to the flow run created for it (its id becomes the token) and record the run on each note."""
    outcome = session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.lease_token == old_token)
        .values(lease_token=new_token, flow_run_id=flow_run_id)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount


def renew_lease(session: Session, token: str, now: datetime, lease: timedelta) -> int:
    """Extend every lease held under `token`; return how many are still held."""
    outcome = session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.lease_token == token)
        .values(lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount


def release_note(session: Session, voice_note_id: int, token: str) -> None:
    """Let go of one note this token holds (finished, or put back in the queue)."""
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.lease_token == token)
        .values(lease_token=None, lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def requeue_note(session: Session, voice_note_id: int, token: str) -> None:
    """Give a held note back to the queue untouched (its run could not start or Groq had no room)."""
    session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.id == voice_note_id, VoiceNoteRow.lease_token == token, VoiceNoteRow.status.in_(QUEUED))
        .values(status="received", lease_token=None, lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def release_claim(session: Session, token: str) -> int:
    """Give every note of a claim back to the queue (its run could not be created)."""
    outcome = session.execute(
        update(VoiceNoteRow)
        .where(VoiceNoteRow.lease_token == token)
        .values(lease_token=None, lease_holder=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return outcome.rowcount


def has_waiting(session: Session, now: datetime) -> bool:
    """Whether any note waits for a transcriber (a cheap indexed read for pollers)."""
    return session.scalar(select(VoiceNoteRow.id).where(_claimable(now)).limit(1)) is not None


def read_queue(session: Session, now: datetime) -> QueueState:
    """The queue's depth, its oldest note's wait, and how many notes are held."""
    waiting, oldest = session.execute(select(func.count(), func.min(VoiceNoteRow.received_at)).where(_claimable(now))).one()
    held = session.scalar(select(func.count()).where(VoiceNoteRow.lease_token.is_not(None), VoiceNoteRow.lease_expires_at >= now))
    age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    return QueueState(waiting=waiting, oldest_waiting_seconds=max(age, 0.0), held=held or 0)


def notify_stored(session: Session) -> None:
    """Wake the transcribers listening on PostgreSQL (sent when the transaction commits; SQLite transcribers poll)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})


def listen_for_notes(database_url: str, wake: Callable[[], None], stop: threading.Event) -> None:
    """Call `wake` on every NOTIFY of a stored note until `stop` is set, reconnecting after a lost connection (blocking)."""
    import psycopg

    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as connection:
                connection.execute(f"LISTEN {WAKE_CHANNEL}")
                wake()  # notes stored while not listening
                while not stop.is_set():
                    for _ in connection.notifies(timeout=1.0):
                        wake()
        except psycopg.Error as error:
            logger.warning("listening for stored voice notes failed (%s); polling until it reconnects", str(error).strip()[:200])
            stop.wait(5.0)


def _claimable(now: datetime):
    free = or_(VoiceNoteRow.lease_token.is_(None), VoiceNoteRow.lease_expires_at < now)
    # A note whose reply was claimed by a holder that died may have been sent: never started again on its own.
    return and_(VoiceNoteRow.status.in_(QUEUED), VoiceNoteRow.reply_claimed_at.is_(None), free)


def _aware(value: datetime) -> datetime:
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
