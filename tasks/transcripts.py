"""Voice-note steps: fetch the audio, transcribe it within the SLA budget, send the reply; and the keyword watchlist.

Plain functions, not Prefect tasks: three task runs per note were a third of the Prefect server's
work per note, and the burst SLA is bound by that work on two cores (measured). The flow run logs
each step.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefect import get_run_logger

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from clients import audio, evolution, groq
from clients.errors import ClientError
from clients.redaction import mask_jid
from store.voice_notes import VoiceNote
from tasks.groq_gate import report_rate_limited, report_requests_left

REPLY_RESERVE_SECONDS = 1.0  # kept out of Groq's budget for sendText
MIN_ATTEMPT_SECONDS = 1.0  # no Groq request is started with less time left than this
MIN_BUDGET_SECONDS = 5.0  # a run starting later than SLA − this gets a fresh budget (a re-run)
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = (0.5, 1.0)
PARALLEL_PIECES = 4
SEVERITY_ORDER = ("info", "warning", "critical", "emergency")
RERUN_STEP = "Fix the cause, then re-run its flow run from the Prefect UI; it never replies twice."
RESEND_STEP = "A re-run cannot help: ask the sender to send it again as an ordinary (not view-once) voice note."


class VoiceNoteFailed(Exception):
    """A voice note cannot be answered with its transcript; `reason` is the stored slug.

    `notify` says whether the sender gets the friendly failure reply (pointless when Evolution itself failed,
    or when nothing could ever be fetched); `next_step` is what the alert tells the operator to do.
    """

    def __init__(self, reason: str, detail: str, *, notify: bool = True, next_step: str = RERUN_STEP):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.notify = notify
        self.next_step = next_step


class ReplyFailed(Exception):
    """Evolution did not take a reply; `ambiguous` when it may have sent it anyway (no answer came back)."""

    def __init__(self, message: str, *, ambiguous: bool):
        super().__init__(message)
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class AudioFile:
    """The voice note's audio on disk."""

    path: Path
    size_bytes: int
    mimetype: str | None
    source: str  # "webhook" (inline base64) or "evolution" (getBase64FromMediaMessage)


@dataclass(frozen=True)
class Transcript:
    """What Whisper heard, after dropping segments on silence; empty `text` means nothing was said."""

    text: str
    audio_seconds: float | None
    segments_kept: int
    segments_dropped: int
    requests: int
    seconds: float


def budget_deadline(received_at: datetime, sla_seconds: float, now: datetime) -> datetime:
    """The moment the reply must be out: received + SLA, or now + SLA when that has (nearly) passed — a re-run."""
    deadline = received_at + timedelta(seconds=sla_seconds)
    if (deadline - now).total_seconds() < MIN_BUDGET_SECONDS:
        return now + timedelta(seconds=sla_seconds)
    return deadline


async def fetch_audio(evolution_api: EvolutionApi, note: VoiceNote, spool_dir: Path, deadline: datetime) -> AudioFile:
    """Use the audio the receiver spooled, or fetch it with getBase64FromMediaMessage, within the budget, and spool it.

    The request carries the message with every wrapper removed: Evolution cannot unwrap a view-once
    voice note (`viewOnceMessageV2Extension`) itself.

    Raises:
        VoiceNoteFailed: media-not-found, media-unavailable, evolution-auth, or media-unfetchable (no
            failure reply: there is nothing to download), naming Evolution's reason.
    """
    if note.audio_path and Path(note.audio_path).is_file():
        path = Path(note.audio_path)
        return AudioFile(path, path.stat().st_size, note.mimetype, "webhook")
    quoted = json.loads(note.quoted or "{}")
    message = _downloadable_message(quoted.get("message"))
    started = time.perf_counter()
    timeout = _fetch_timeout(evolution_api.timeout_seconds, deadline)
    async with evolution.create_client(evolution_api.url, evolution_api.api_key.get_secret_value(), timeout=timeout) as client:
        try:
            media = await evolution.fetch_media(client, note.instance, quoted.get("key") or {"id": note.message_id}, message)
        except evolution.EvolutionError as error:
            raise _media_failure(error, cut_by_budget=timeout < evolution_api.timeout_seconds) from error
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"{note.id}{audio.extension_for(media.mimetype or note.mimetype)}"
    partial = path.with_suffix(".partial")
    partial.write_bytes(media.content)
    partial.replace(path)
    get_run_logger().info(
        "voice note %d audio fetched from Evolution in %.2f s: %d bytes", note.id, time.perf_counter() - started, len(media.content)
    )
    return AudioFile(path, len(media.content), media.mimetype or note.mimetype, "evolution")


async def transcribe_audio(
    groq_api: GroqApi, settings: TranscriptionSettings, audio_file: AudioFile, deadline: datetime, work_dir: Path
) -> Transcript:
    """Transcribe the audio with Whisper, splitting it when over the upload limit, retrying only within the budget.

    Raises:
        VoiceNoteFailed: Groq refused (auth, model, size, format) or stayed unavailable until the budget ran out.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    groq_deadline = deadline - timedelta(seconds=REPLY_RESERVE_SECONDS)
    try:
        pieces = await asyncio.to_thread(audio.split_audio, audio_file.path, max_bytes=settings.max_upload_bytes, directory=work_dir)
    except audio.AudioError as error:
        raise VoiceNoteFailed("audio-unreadable", str(error)) from error
    client = groq.create_client(groq_api.api_key.get_secret_value(), groq_api.base_url, timeout=groq_api.timeout_seconds, max_retries=0)
    limit = asyncio.Semaphore(PARALLEL_PIECES)

    async def one(piece: Path) -> tuple[groq.TranscriptionReply, int]:
        async with limit:
            return await _transcribe_within_budget(client, piece.read_bytes(), f"voice{piece.suffix}", groq_api, groq_deadline)

    try:
        replies = await asyncio.gather(*(one(piece) for piece in pieces))
    except groq.TranscriptionRejected as error:
        raise VoiceNoteFailed(error.reason, str(error)) from error
    except groq.TranscriptionUnavailable as error:
        raise VoiceNoteFailed(error.reason, str(error)) from error
    finally:
        await client.close()
        for piece in pieces:
            if piece != audio_file.path:
                piece.unlink(missing_ok=True)
    transcript = _join(replies, settings.no_speech_threshold, time.perf_counter() - started)
    logger.info(
        "transcribed %s s of audio in %.2f s: %d segments kept, %d dropped as silence, %d request(s), %d characters",
        f"{transcript.audio_seconds:.1f}" if transcript.audio_seconds is not None else "?",
        transcript.seconds,
        transcript.segments_kept,
        transcript.segments_dropped,
        transcript.requests,
        len(transcript.text),
    )
    return transcript


async def send_reply(evolution_api: EvolutionApi, note: VoiceNote, text: str) -> str:
    """Send `text` to the note's chat, quoting the note, and return the reply's message id.

    Raises:
        ReplyFailed: when Evolution refuses or does not answer; `ambiguous` when it may have sent it anyway.
    """
    quoted = json.loads(note.quoted or "{}") or {"key": {"id": note.message_id}}
    started = time.perf_counter()
    async with evolution.create_client(
        evolution_api.url, evolution_api.api_key.get_secret_value(), timeout=evolution_api.timeout_seconds
    ) as client:
        try:
            message_id = await evolution.send_text(client, note.instance, number=note.chat_jid, text=text, quoted=quoted)
        except evolution.EvolutionError as error:
            raise ReplyFailed(str(error), ambiguous=error.ambiguous) from error
    get_run_logger().info("reply sent to %s in %.2f s", mask_jid(note.chat_jid), time.perf_counter() - started)
    return message_id


def masked_sender(note: VoiceNote) -> str:
    """Who sent the note (the author in a group), phone number masked, for logs and alerts."""
    return mask_jid(note.sender_jid or note.chat_jid)


def masked_chat(note: VoiceNote) -> str:
    """The note's chat, phone number masked, for logs and alerts."""
    return mask_jid(note.chat_jid)


def probe_seconds(path: Path) -> float | None:
    """The audio's duration by ffprobe, or None when it cannot be read (Whisper then decides)."""
    try:
        return audio.probe_duration(path)
    except ClientError:
        return None


def render_reply(settings: TranscriptionSettings, transcript: Transcript) -> str:
    """The reply text from the configured template."""
    seconds = f"{transcript.audio_seconds:.0f}" if transcript.audio_seconds is not None else "?"
    return settings.reply_template.format(transcript=transcript.text, seconds=seconds)


def match_keywords(text: str, keywords: dict[str, str]) -> list[tuple[str, str]]:
    """The watched words (whole words, case and accents ignored) found in `text`, most severe first."""
    folded = _fold(text)
    found = [(word, severity) for word, severity in keywords.items() if re.search(rf"(?<!\w){re.escape(_fold(word))}(?!\w)", folded)]
    return sorted(found, key=lambda item: -SEVERITY_ORDER.index(item[1]))


async def _transcribe_within_budget(
    client, content: bytes, file_name: str, groq_api: GroqApi, deadline: datetime
) -> tuple[groq.TranscriptionReply, int]:
    logger = get_run_logger()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise groq.TranscriptionUnavailable("the reply budget is spent: no time left for another Groq request", "timeout")
        attempt_started = time.perf_counter()
        try:
            reply = await groq.transcribe(
                client,
                content,
                model=groq_api.transcription_model,
                language=groq_api.transcription_language,
                timeout=min(groq_api.timeout_seconds, remaining),
                file_name=file_name,
            )
            if reply.quota is not None:
                report_requests_left(reply.quota.remaining, reply.quota.reset_seconds)
            return reply, attempt
        except groq.TranscriptionUnavailable as error:
            if error.reason == "groq-rate-limited":
                report_rate_limited(error.retry_after_seconds)
            took = time.perf_counter() - attempt_started
            wait = (
                error.retry_after_seconds
                if error.retry_after_seconds is not None
                else BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
            )
            left = (deadline - datetime.now(timezone.utc)).total_seconds()
            needed = wait + max(took, MIN_ATTEMPT_SECONDS)
            if attempt == MAX_ATTEMPTS or needed > left:
                logger.warning(
                    "Groq attempt %d failed in %.2f s (%s); no retry: %.1f s needed, %.1f s left", attempt, took, error.reason, needed, left
                )
                raise
            logger.info("Groq attempt %d failed in %.2f s (%s); retrying in %.1f s, %.1f s left", attempt, took, error.reason, wait, left)
            await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def _join(replies: list[tuple[groq.TranscriptionReply, int]], threshold: float, seconds: float) -> Transcript:
    texts, kept, dropped, durations = [], 0, 0, []
    for reply, _ in replies:
        if reply.duration is not None:
            durations.append(reply.duration)
        if not reply.segments:
            texts.append(reply.text.strip())
            continue
        for segment in reply.segments:
            if segment.no_speech_prob > threshold:
                dropped += 1
            else:
                kept += 1
                texts.append(segment.text.strip())
    text = " ".join(part for part in texts if part)
    audio_seconds = sum(durations) if durations else None
    return Transcript(text, audio_seconds, kept, dropped, sum(attempts for _, attempts in replies), seconds)


def _downloadable_message(message: dict | None) -> dict | None:
    """The media message without wrappers; VoiceNoteFailed when WhatsApp left out what a download needs."""
    if not message:
        return None  # Evolution looks the message up by key.id
    inner = evolution.media_message(message) or message
    missing = evolution.missing_download_fields(inner)
    if missing:
        wrapper = next((name for name in evolution.WRAPPERS if name in message), "")
        came = f"in a {wrapper} wrapper " if wrapper else ""
        why = (
            "WhatsApp keeps view-once media on the phone and gives linked devices such as Evolution"
            if "viewOnce" in wrapper
            else "WhatsApp gave Evolution"
        )
        raise VoiceNoteFailed(
            "media-unfetchable",
            f"the voice note came {came}without {' and '.join(missing)}: {why} nothing to download",
            notify=False,
            next_step=RESEND_STEP,
        )
    return inner


def _fetch_timeout(timeout_seconds: float, deadline: datetime) -> float:
    """The Block's timeout, cut so a failed fetch still leaves time for the failure reply inside the SLA."""
    left = (deadline - datetime.now(timezone.utc)).total_seconds() - REPLY_RESERVE_SECONDS
    return max(min(timeout_seconds, left), MIN_ATTEMPT_SECONDS)


def _media_failure(error: evolution.EvolutionError, *, cut_by_budget: bool) -> VoiceNoteFailed:
    if error.status_code == 401:
        return VoiceNoteFailed("evolution-auth", str(error))
    if error.status_code == 400 and evolution.NOT_MEDIA in str(error):
        detail = f"{error} (Evolution cannot unwrap this message to find its audio)"
        return VoiceNoteFailed("media-unfetchable", detail, notify=False, next_step=RESEND_STEP)
    if error.status_code == 400 and "not found" in str(error).lower():
        return VoiceNoteFailed("media-not-found", str(error))
    if error.ambiguous and cut_by_budget:
        return VoiceNoteFailed("media-unavailable", f"{error}: the reply budget left no more time for the download")
    return VoiceNoteFailed("media-unavailable", str(error))


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))
