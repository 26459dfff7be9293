"""Transcription response time and failure share (DESIGN §11): reply sent − webhook received."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session

from store.models import VoiceNoteRow
from store.sla.targets import RESPONSE_TARGET_SECONDS
from store.timearith import epoch_seconds

FINISHED_STATUSES = ("replied", "skipped", "failed")  # a note still received/running has no outcome yet
_SECONDS = epoch_seconds(VoiceNoteRow.replied_at) - epoch_seconds(VoiceNoteRow.received_at)


@dataclass(frozen=True)
class ResponseTimes:
    """Webhook-to-reply seconds of the voice notes received in a window."""

    count: int  # notes received in the window, whatever became of them
    replied: int
    p50_seconds: float | None
    p95_seconds: float | None
    max_seconds: float | None
    under_target_percent: float | None  # share of replied notes answered in under 15 s

    @property
    def meets_target(self) -> bool | None:
        """Whether p95 is under 15 s, or None when nothing was replied."""
        return None if self.p95_seconds is None else self.p95_seconds < RESPONSE_TARGET_SECONDS


@dataclass(frozen=True)
class TranscriptionOutcomes:
    """Finished transcriptions of a window and how many failed."""

    finished: int
    failed: int


def response_times(session: Session, start: datetime, end: datetime) -> ResponseTimes:
    """Return the response-time SLA figures for notes received in [start, end).

    Percentiles interpolate linearly between ranks (PostgreSQL's percentile_cont); on PostgreSQL
    they are computed by the database, on SQLite from the durations it sorts.
    """
    in_window = (VoiceNoteRow.received_at >= start) & (VoiceNoteRow.received_at < end)
    replied = in_window & VoiceNoteRow.replied_at.is_not(None)
    count = session.scalar(select(func.count()).where(in_window)) or 0
    if session.get_bind().dialect.name != "postgresql":
        return _response_times_from_rows(count, _replied_seconds_sqlite(session, replied))
    totals = session.execute(
        select(func.count(), func.max(_SECONDS), func.sum(case((_SECONDS < RESPONSE_TARGET_SECONDS, 1), else_=0))).where(replied)
    ).one()
    n_replied, longest, under = totals
    if not n_replied:
        return ResponseTimes(count, 0, None, None, None, None)
    p50, p95 = session.execute(
        select(
            func.percentile_cont(0.5).within_group(_SECONDS),
            func.percentile_cont(0.95).within_group(_SECONDS),
        ).where(replied)
    ).one()
    return ResponseTimes(count, n_replied, float(p50), float(p95), float(longest), 100.0 * (under or 0) / n_replied)


def _replied_seconds_sqlite(session: Session, replied) -> list[float]:
    """Seconds to reply of every replied note, ascending, computed and sorted by SQLite and read as bare integers.

    The durations are the SQL expression's (`epoch_seconds`, whole milliseconds) as integers: sorted by SQLite,
    they read back without float noise.
    """
    milliseconds = func.round(_SECONDS * 1000)  # each epoch is whole milliseconds (store.timearith): exact
    return [ms / 1000 for ms in session.scalars(select(cast(milliseconds, Integer)).where(replied).order_by(milliseconds))]


def _response_times_from_rows(count: int, durations: list[float]) -> ResponseTimes:
    if not durations:
        return ResponseTimes(count, 0, None, None, None, None)
    under = sum(1 for seconds in durations if seconds < RESPONSE_TARGET_SECONDS)
    p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
    return ResponseTimes(count, len(durations), p50, p95, durations[-1], 100.0 * under / len(durations))


def response_time_samples(session: Session, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """Return (received at, seconds to reply) of every replied note received in [start, end), oldest first."""
    rows = session.execute(
        select(VoiceNoteRow.received_at, _SECONDS)
        .where(VoiceNoteRow.received_at >= start, VoiceNoteRow.received_at < end, VoiceNoteRow.replied_at.is_not(None))
        .order_by(VoiceNoteRow.received_at)
    )
    return [(received_at, float(seconds)) for received_at, seconds in rows]


def transcription_outcomes(session: Session, start: datetime, end: datetime) -> TranscriptionOutcomes:
    """Return how many notes received in [start, end) finished, and how many of them failed."""
    # The statuses are counted, not filtered: a WHERE on status lets SQLite pick ix_voice_notes_status and walk
    # every finished note ever stored (0.3–0.7 s on a year of notes) instead of the window's range of received_at.
    finished, failed = session.execute(
        select(
            func.sum(case((VoiceNoteRow.status.in_(FINISHED_STATUSES), 1), else_=0)),
            func.sum(case((VoiceNoteRow.status == "failed", 1), else_=0)),
        ).where(VoiceNoteRow.received_at >= start, VoiceNoteRow.received_at < end)
    ).one()
    return TranscriptionOutcomes(finished or 0, failed or 0)


def percentile(ordered: list[float], q: float) -> float:
    """Return the q-quantile of ascending values, interpolating linearly between ranks (percentile_cont)."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
