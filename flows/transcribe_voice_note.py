"""The `transcribe-voice-note` flow: the stored WhatsApp voice notes of one batch → Whisper → a quoted reply each, at most once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import acreate_table_artifact
from pydantic import Field

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from store import voice_note_queue, voice_notes
from store.database import in_session
from store.voice_notes import VoiceNote
from tasks.alerts import raise_alert
from tasks.block_cache import load_block
from tasks.events import emit_voice_note
from tasks.groq_gate import GroqBusy, GroqGate, GroqLimits, billed_seconds, gate_for
from tasks.leases import LEASE, holder_name, renewing
from tasks.transcripts import (
    ReplyFailed,
    Transcript,
    VoiceNoteFailed,
    budget_deadline,
    fetch_audio,
    masked_chat,
    masked_sender,
    match_keywords,
    probe_seconds,
    render_reply,
    send_reply,
    transcribe_audio,
)

FAILURE_ALERT_COOLDOWN = timedelta(minutes=30)
# Set by a transcriber around the run it executes: told of each note this run is done with, so the
# note's room goes to the next waiting note at once rather than when the whole run has ended.
note_finished: ContextVar[Callable[[int], None] | None] = ContextVar("note_finished", default=None)
GROQ_PATIENCE_SECONDS = 30.0  # a note waits this long for room under Groq's limits, then goes back to the queue


class MissingVoiceNote(Exception):
    """The flow was given voice note ids the store does not have."""


@dataclass(frozen=True)
class NoteOutcome:
    """What one run did with one note: its status afterwards, why, and how long it took."""

    voice_note_id: int
    status: str  # replied, skipped, failed, queued (back in the queue), held (another run has it), missing
    reason: str | None
    seconds: float


@flow(
    name="transcribe-voice-note",
    description="Transcribe stored WhatsApp voice notes (the batch waiting together) and reply to each, quoting it; never twice.",
)
async def transcribe_voice_note(
    voice_note_ids: Annotated[
        list[int] | None, Field(description="Ids of the stored voice notes to answer; re-running redoes only the unanswered.")
    ] = None,
    voice_note_id: Annotated[
        int | None, Field(ge=1, description="Id of the stored voice note to answer alone (as runs made before batches did).")
    ] = None,
) -> dict[str, str]:
    """Answer each given voice note with its transcript, quoting it; notes already answered or held by another run are left alone.

    Args:
        voice_note_ids: Ids of the stored voice notes to answer (the `voice_notes` rows the receiver wrote); re-running redoes only the unanswered.
        voice_note_id: Id of the stored voice note to answer alone (as runs made before batches did).

    Returns:
        Each note's status after this run, by id.

    Raises:
        MissingVoiceNote: when none of the ids is in the store.
        VoiceNoteFailed: when a note could not be answered; the run ends Failed and a re-run redoes only the unanswered.
    """
    ids = sorted({*(voice_note_ids or []), *([voice_note_id] if voice_note_id else [])})
    vigia = await load_block(VigiaSettings)
    database_url = vigia.database_url.get_secret_value()
    token = str(runtime.flow_run.id) if runtime.flow_run.id else f"local-{uuid.uuid4().hex}"
    held = await in_session(database_url, voice_note_queue.take_notes, ids, token, holder_name(), datetime.now(timezone.utc), LEASE)
    settings = await _load_optional(TranscriptionSettings) or TranscriptionSettings()
    evolution_api = await _load_optional(EvolutionApi)
    context = _Context(database_url, token, settings, evolution_api, Path(vigia.home))
    async with renewing(database_url, token):
        answered = await _answer_held(context, held)
    outcomes = sorted(
        [*answered, *[await _not_held(database_url, note_id) for note_id in ids if note_id not in held]],
        key=lambda outcome: outcome.voice_note_id,
    )
    await _publish(outcomes)
    if ids and all(outcome.status == "missing" for outcome in outcomes):
        raise MissingVoiceNote(f"no voice note {', '.join(map(str, ids))} in the store; pass the ids the receiver logged")
    failures = [outcome for outcome in outcomes if outcome.status == "failed"]
    if failures:
        listed = ", ".join(f"{outcome.voice_note_id} ({outcome.reason})" for outcome in failures)
        raise VoiceNoteFailed(failures[0].reason or "failed", f"voice notes not answered: {listed}; re-run to redo only these")
    return {str(outcome.voice_note_id): outcome.status for outcome in outcomes}


@dataclass(frozen=True)
class _Context:
    database_url: str
    token: str
    settings: TranscriptionSettings
    evolution_api: EvolutionApi | None
    home: Path


async def _answer_held(context: _Context, held: list[int]) -> list[NoteOutcome]:
    """Answer the held notes side by side; those that will call Groq inside one admission to its shared limits.

    Notes answered before, transcribed before (only the reply is left) or that cannot reach Groq
    (not configured) take no room: they must not spend the limits, nor wait on them to fail.
    """
    notes = [await in_session(context.database_url, voice_notes.get_voice_note, note_id) for note_id in held]
    groq_configured = await _load_optional(GroqApi) is not None
    calling = [note for note in notes if groq_configured and _calls_groq(note, context.evolution_api)]
    others = [note for note in notes if note not in calling]
    outcomes = list(await asyncio.gather(*(_answer_note(context, None, note) for note in others)))
    if not calling:  # nothing for Groq: no call to its limits either
        return outcomes
    settings = context.settings
    gate = gate_for(GroqLimits(settings.groq_max_concurrency, settings.groq_requests_per_minute, settings.groq_audio_seconds_per_hour))
    billed = sum(billed_seconds(note.audio_seconds) for note in calling)
    started = time.perf_counter()
    try:
        async with gate.admit_shared(len(calling), billed, GROQ_PATIENCE_SECONDS):
            get_run_logger().info("%d voice notes admitted by Groq's shared limits in %.2f s", len(calling), time.perf_counter() - started)
            return outcomes + list(await asyncio.gather(*(_answer_note(context, gate, note) for note in calling)))
    except GroqBusy as busy:
        return outcomes + [await _requeue(context, note.id, busy, time.perf_counter()) for note in calling]


def _calls_groq(note: VoiceNote, evolution_api: EvolutionApi | None) -> bool:
    return note.status not in voice_notes.FINISHED and note.transcript is None and evolution_api is not None


async def _answer_note(context: _Context, gate: GroqGate | None, note: VoiceNote) -> NoteOutcome:
    """Answer one held note (within this process's Groq bound when it calls Groq), record its outcome, and let go of it."""
    started = time.perf_counter()
    try:
        if note.status in voice_notes.FINISHED:
            return NoteOutcome(note.id, note.status, "answered before", 0.0)
        async with gate.admit(note.audio_seconds, GROQ_PATIENCE_SECONDS) if gate is not None else nullcontext():
            return await _run_note(context, note, started)
    except GroqBusy as busy:
        return await _requeue(context, note.id, busy, started)
    finally:
        await in_session(context.database_url, voice_note_queue.release_note, note.id, context.token)
        if (tell := note_finished.get()) is not None:
            tell(note.id)


async def _requeue(context: _Context, voice_note_id: int, busy: GroqBusy, started: float) -> NoteOutcome:
    await in_session(context.database_url, voice_note_queue.requeue_note, voice_note_id, context.token)
    get_run_logger().info("voice note %d back in the queue: %s", voice_note_id, busy)
    return NoteOutcome(voice_note_id, "queued", "groq-limits", time.perf_counter() - started)


async def _run_note(context: _Context, note: VoiceNote, started: float) -> NoteOutcome:
    logger = get_run_logger()
    run_id = context.token if not context.token.startswith("local-") else None
    note = await in_session(context.database_url, voice_notes.start_run, note.id, run_id, datetime.now(timezone.utc))
    if note.status in voice_notes.FINISHED:
        return NoteOutcome(note.id, note.status, "answered before", 0.0)
    # Here, not in the receiver: its request path stays free of Prefect; the event keeps the webhook's time.
    emit_voice_note("received", note, note.received_at)
    deadline = budget_deadline(note.received_at, context.settings.sla_seconds, datetime.now(timezone.utc))
    logger.info(
        "voice note %d from %s (instance %s), %.1f s left of the budget",
        note.id,
        masked_sender(note),
        note.instance,
        (deadline - datetime.now(timezone.utc)).total_seconds(),
    )
    try:
        status, transcript = await _answer(note, context.settings, context.evolution_api, context.home, context.database_url, deadline)
    except VoiceNoteFailed as failure:
        await _fail(note, failure, context.settings, context.evolution_api, context.database_url)
        return NoteOutcome(note.id, "failed", failure.reason, time.perf_counter() - started)
    if transcript is not None:  # this run sent the reply
        replied_at = datetime.now(timezone.utc)
        seconds = (replied_at - note.received_at).total_seconds()
        emit_voice_note("replied", note, replied_at, seconds_to_reply=seconds)
    if transcript is not None and context.settings.keywords:
        await _watch(note, transcript, context.settings)
    return NoteOutcome(note.id, status, None, time.perf_counter() - started)


async def _not_held(database_url: str, voice_note_id: int) -> NoteOutcome:
    note = await in_session(database_url, voice_notes.get_voice_note, voice_note_id)
    if note is None:
        return NoteOutcome(voice_note_id, "missing", "not in the store", 0.0)
    if note.status in voice_notes.FINISHED:
        return NoteOutcome(voice_note_id, note.status, "answered before", 0.0)
    return NoteOutcome(voice_note_id, "held", "another run holds it", 0.0)


async def _publish(outcomes: list[NoteOutcome]) -> None:
    """One table artifact per run: each note's outcome (ids only: no number, no text)."""
    if not outcomes or not runtime.flow_run.id:
        return
    table = [
        {"voice note": o.voice_note_id, "status": o.status, "reason": o.reason or "", "seconds": round(o.seconds, 2)} for o in outcomes
    ]
    counts = ", ".join(f"{sum(o.status == s for o in outcomes)} {s}" for s in sorted({o.status for o in outcomes}))
    await acreate_table_artifact(table, description=f"Voice notes of this run: {counts}")


async def _answer(
    note: VoiceNote,
    settings: TranscriptionSettings,
    evolution_api: EvolutionApi | None,
    home: Path,
    database_url: str,
    deadline: datetime,
) -> tuple[str, str | None]:
    """Transcribe (unless an earlier run did) and reply; return the status and the transcript when this run replied."""
    if evolution_api is None:
        raise VoiceNoteFailed("not-configured", "evolution-api/default is missing; set EVOLUTION_* and run `vigia setup`", notify=False)
    audio_path = Path(note.audio_path) if note.audio_path else None
    if note.transcript is not None:  # an earlier run transcribed it but could not send the reply
        transcript = Transcript(note.transcript, note.audio_seconds, 0, 0, 0, 0.0)
    else:
        groq_api = await _load_optional(GroqApi)
        if groq_api is None:
            raise VoiceNoteFailed("not-configured", "groq/default is missing; set GROQ_API_KEY and run `vigia setup`")
        spool = home / "spool" / "voice-notes"
        audio_file = await fetch_audio(evolution_api, note, spool, deadline)
        audio_path = audio_file.path
        await in_session(
            database_url,
            voice_notes.record_audio,
            note.id,
            datetime.now(timezone.utc),
            audio_path=str(audio_file.path),
            audio_bytes=audio_file.size_bytes,
            mimetype=audio_file.mimetype,
        )
        seconds = note.audio_seconds or await asyncio.to_thread(probe_seconds, audio_file.path)
        if seconds is not None and seconds < settings.min_seconds:
            return await _skip(
                note, settings, database_url, "too-short", f"{seconds:.1f} s is under {settings.min_seconds:g} s", audio_path
            )
        transcript = await transcribe_audio(groq_api, settings, audio_file, deadline, spool / f"{note.id}-pieces")
        if not transcript.text:
            detail = f"Whisper heard no speech ({transcript.segments_dropped} segments dropped as silence)"
            return await _skip(note, settings, database_url, "no-speech", detail, audio_path)
        await in_session(
            database_url,
            voice_notes.record_transcript,
            note.id,
            datetime.now(timezone.utc),
            transcript=transcript.text,
            audio_seconds=transcript.audio_seconds or seconds,
        )
    replied = await _reply(note, evolution_api, render_reply(settings, transcript), settings, database_url, audio_path)
    return "replied", transcript.text if replied else None


async def _reply(
    note: VoiceNote,
    evolution_api: EvolutionApi,
    text: str,
    settings: TranscriptionSettings,
    database_url: str,
    audio_path: Path | None,
) -> bool:
    """Claim the note's one reply, send it, drop the audio (unless kept), record it; False when another run has it."""
    logger = get_run_logger()
    if not await in_session(database_url, voice_notes.claim_reply, note.id, datetime.now(timezone.utc)):
        logger.info("voice note %d: the reply was sent or claimed by another run; not sending it again", note.id)
        return False
    try:
        message_id = await send_reply(evolution_api, note, text)
    except ReplyFailed as error:
        if not error.ambiguous:  # refused for sure: a re-run may send it; a timeout may have sent it, so keep the claim
            await in_session(database_url, voice_notes.release_reply, note.id)
        raise VoiceNoteFailed("reply-failed", str(error), notify=False) from error
    if not settings.keep_transcripts and audio_path is not None:
        audio_path.unlink(missing_ok=True)
    await in_session(
        database_url, voice_notes.record_reply, note.id, datetime.now(timezone.utc), message_id, keep_transcript=settings.keep_transcripts
    )
    return True


async def _skip(
    note: VoiceNote,
    settings: TranscriptionSettings,
    database_url: str,
    reason: str,
    detail: str,
    path: Path,
) -> tuple[str, None]:
    get_run_logger().info("voice note %d skipped: %s", note.id, detail)
    await in_session(database_url, voice_notes.record_skip, note.id, reason, detail, keep_audio=settings.keep_transcripts)
    if not settings.keep_transcripts:
        path.unlink(missing_ok=True)
    return "skipped", None


async def _fail(
    note: VoiceNote,
    failure: VoiceNoteFailed,
    settings: TranscriptionSettings,
    evolution_api: EvolutionApi | None,
    database_url: str,
) -> None:
    """Record the failure, send the friendly reply once (unless there is no point), raise one warning per reason per half hour."""
    logger = get_run_logger()
    logger.error("voice note %d failed (%s): %s", note.id, failure.reason, failure.detail)
    if failure.notify and settings.failure_reply and evolution_api is not None:
        if await in_session(database_url, voice_notes.claim_notice, note.id, datetime.now(timezone.utc)):
            try:
                notice_id = await send_reply(evolution_api, note, settings.failure_reply)
            except ReplyFailed as error:
                notice_id = None
                logger.warning("voice note %d: the failure reply could not be sent either: %s", note.id, error)
            await in_session(database_url, voice_notes.record_notice, note.id, notice_id)
    await in_session(database_url, voice_notes.record_failure, note.id, failure.reason, failure.detail)
    await raise_alert(
        "warning",
        f"voice note transcription failed: {failure.reason}",
        f"Voice note {note.id} (instance {note.instance}, chat {masked_chat(note)}) was not transcribed: {failure.detail}. "
        + failure.next_step,
        key=f"transcription:{failure.reason}",
        cooldown=FAILURE_ALERT_COOLDOWN,
    )


async def _watch(note: VoiceNote, transcript: str, settings: TranscriptionSettings) -> None:
    """Raise one alert at the most severe watched word found; the transcript itself stays out of it."""
    found = match_keywords(transcript, settings.keywords)
    if not found:
        return
    severity = found[0][1]
    words = ", ".join(f"'{word}' ({level})" for word, level in found)
    get_run_logger().warning("voice note %d matched the keyword watchlist: %s", note.id, words)
    await raise_alert(
        severity,
        f"watched words in a voice note from {masked_sender(note)}",
        f"Voice note {note.id} (instance {note.instance}, chat {masked_chat(note)}) contains {words}.",
        key=f"voice-note:{note.id}:keywords",
        cooldown=None,
    )


async def _load_optional(block_type):
    return await load_block(block_type, required=False)
