"""The `transcribe-voice-note` flow: one stored WhatsApp voice note → Whisper → a quoted reply, at most once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

from prefect import flow, get_run_logger, runtime
from pydantic import Field

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from store import voice_notes
from store.database import open_session
from store.voice_notes import VoiceNote
from tasks.alerts import raise_alert
from tasks.block_cache import load_block
from tasks.transcripts import (
    ReplyFailed, Transcript, VoiceNoteFailed, budget_deadline, fetch_audio, masked_chat, masked_sender, match_keywords, probe_seconds,
    render_reply, send_reply, transcribe_audio,
)

FAILURE_ALERT_COOLDOWN = timedelta(minutes=30)


class MissingVoiceNote(Exception):
    """The flow was given a voice note id the store does not have."""


@flow(name="transcribe-voice-note", description="Transcribe one stored WhatsApp voice note and reply in its chat, quoting it.")
async def transcribe_voice_note(voice_note_id: Annotated[int, Field(ge=1)]) -> str:
    """Transcribe one stored voice note with Whisper and reply with the text, quoting the note; never replies twice.

    Args:
        voice_note_id: Id of the stored voice note (the `voice_notes` row the webhook receiver wrote); re-running is safe.

    Returns:
        The note's final status: replied or skipped.

    Raises:
        VoiceNoteFailed: when it cannot be transcribed or replied to; the run ends Failed and can be re-run.
    """
    logger = get_run_logger()
    vigia = await load_block(VigiaSettings)
    database_url = vigia.database_url.get_secret_value()
    run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    note = await _store(database_url, voice_notes.start_run, voice_note_id, run_id, datetime.now(timezone.utc))
    if note is None:
        raise MissingVoiceNote(f"no voice note {voice_note_id} in the store; pass the id the receiver logged")
    if note.status in voice_notes.FINISHED:
        logger.info("voice note %d is already %s; nothing to do", note.id, note.status)
        return note.status
    settings = await _load_optional(TranscriptionSettings) or TranscriptionSettings()
    evolution_api = await _load_optional(EvolutionApi)
    deadline = budget_deadline(note.received_at, settings.sla_seconds, datetime.now(timezone.utc))
    logger.info("voice note %d from %s (instance %s), %.1f s left of the budget", note.id, masked_sender(note),
                note.instance, (deadline - datetime.now(timezone.utc)).total_seconds())
    try:
        status, transcript = await _answer(note, settings, evolution_api, Path(vigia.home), database_url, deadline)
    except VoiceNoteFailed as failure:
        await _fail(note, failure, settings, evolution_api, database_url)
        raise
    if transcript is not None and settings.keywords:
        await _watch(note, transcript, settings)
    return status


async def _answer(
    note: VoiceNote, settings: TranscriptionSettings, evolution_api: EvolutionApi | None, home: Path, database_url: str, deadline: datetime,
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
        await _store(database_url, voice_notes.record_audio, note.id, datetime.now(timezone.utc),
                     audio_path=str(audio_file.path), audio_bytes=audio_file.size_bytes, mimetype=audio_file.mimetype)
        seconds = note.audio_seconds or await asyncio.to_thread(probe_seconds, audio_file.path)
        if seconds is not None and seconds < settings.min_seconds:
            return await _skip(note, settings, database_url, "too-short", f"{seconds:.1f} s is under {settings.min_seconds:g} s", audio_path)
        transcript = await transcribe_audio(groq_api, settings, audio_file, deadline, spool / f"{note.id}-pieces")
        if not transcript.text:
            detail = f"Whisper heard no speech ({transcript.segments_dropped} segments dropped as silence)"
            return await _skip(note, settings, database_url, "no-speech", detail, audio_path)
        await _store(database_url, voice_notes.record_transcript, note.id, datetime.now(timezone.utc),
                     transcript=transcript.text, audio_seconds=transcript.audio_seconds or seconds)
    replied = await _reply(note, evolution_api, render_reply(settings, transcript), settings, database_url, audio_path)
    return "replied", transcript.text if replied else None


async def _reply(
    note: VoiceNote, evolution_api: EvolutionApi, text: str, settings: TranscriptionSettings, database_url: str, audio_path: Path | None,
) -> bool:
    """Claim the note's one reply, send it, drop the audio (unless kept), record it; False when another run has it."""
    logger = get_run_logger()
    if not await _store(database_url, voice_notes.claim_reply, note.id, datetime.now(timezone.utc)):
        logger.info("voice note %d: the reply was sent or claimed by another run; not sending it again", note.id)
        return False
    try:
        message_id = await send_reply(evolution_api, note, text)
    except ReplyFailed as error:
        if not error.ambiguous:  # refused for sure: a re-run may send it; a timeout may have sent it, so keep the claim
            await _store(database_url, voice_notes.release_reply, note.id)
        raise VoiceNoteFailed("reply-failed", str(error), notify=False) from error
    if not settings.keep_transcripts and audio_path is not None:
        audio_path.unlink(missing_ok=True)
    await _store(database_url, voice_notes.record_reply, note.id, datetime.now(timezone.utc), message_id,
                 keep_transcript=settings.keep_transcripts)
    return True


async def _skip(
    note: VoiceNote, settings: TranscriptionSettings, database_url: str, reason: str, detail: str, path: Path,
) -> tuple[str, None]:
    get_run_logger().info("voice note %d skipped: %s", note.id, detail)
    await _store(database_url, voice_notes.record_skip, note.id, reason, detail, keep_audio=settings.keep_transcripts)
    if not settings.keep_transcripts:
        path.unlink(missing_ok=True)
    return "skipped", None


async def _fail(
    note: VoiceNote, failure: VoiceNoteFailed, settings: TranscriptionSettings, evolution_api: EvolutionApi | None, database_url: str,
) -> None:
    """Record the failure, send the friendly reply once (unless there is no point), raise one warning per reason per half hour."""
    logger = get_run_logger()
    logger.error("voice note %d failed (%s): %s", note.id, failure.reason, failure.detail)
    if failure.notify and settings.failure_reply and evolution_api is not None:
        if await _store(database_url, voice_notes.claim_notice, note.id, datetime.now(timezone.utc)):
            try:
                notice_id = await send_reply(evolution_api, note, settings.failure_reply)
            except ReplyFailed as error:
                notice_id = None
                logger.warning("voice note %d: the failure reply could not be sent either: %s", note.id, error)
            await _store(database_url, voice_notes.record_notice, note.id, notice_id)
    await _store(database_url, voice_notes.record_failure, note.id, failure.reason, failure.detail)
    await raise_alert(
        "warning", f"voice note transcription failed: {failure.reason}",
        f"Voice note {note.id} (instance {note.instance}, chat {masked_chat(note)}) was not transcribed: {failure.detail}. "
        + failure.next_step,
        key=f"transcription:{failure.reason}", cooldown=FAILURE_ALERT_COOLDOWN,
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
        severity, f"watched words in a voice note from {masked_sender(note)}",
        f"Voice note {note.id} (instance {note.instance}, chat {masked_chat(note)}) contains {words}.",
        key=f"voice-note:{note.id}:keywords", cooldown=None,
    )


async def _store(database_url: str, function, *args, **kwargs):
    """Run one store function in its own transaction, off the event loop (the receiver runs flows in-process)."""

    def call():
        with open_session(database_url) as session:
            return function(session, *args, **kwargs)

    return await asyncio.to_thread(call)


async def _load_optional(block_type):
    return await load_block(block_type, required=False)
