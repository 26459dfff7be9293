"""The webhook receiver: `GET /health`, and the Evolution webhook that stores voice notes in the transcription queue (DESIGN §9, §14).

It only stores and answers: transcribers (deployments/transcriber.py) take the notes from the store,
woken by NOTIFY on PostgreSQL or by their short poll on SQLite. No Prefect is imported here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from clients.evolution_webhook import ChatMessage, Ignored, IncomingVoiceNote, WebhookPayloadError, parse_event
from clients.redaction import mask_jid
from deployments.log_files import limit_repeats
from deployments.settings import load_settings
from deployments.tokens import conversation_key, read_token_file, request_holds_token
from deployments.voice_note_writer import VoiceNoteWriter
from store.conversations import NewMessage, chat_key
from store.database import StoreError, open_session
from store.health_runs import CHECK_INTERVAL, last_health_run_finished_at
from store.states import read_states
from store.voice_notes import InvalidVoiceNote, NewVoiceNote, check_storable

logger = logging.getLogger(__name__)
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class WebhookConfig:
    """What the Evolution webhook needs: the token (None: not set up), where audio is spooled, the body limit.

    `token_home`: where `vigia setup` keeps the token it generates, read until one is there (no token set:
    `vigia up` starts the receiver beside the setup that generates it on a fresh VIGIA_HOME).
    """

    token: str | None
    spool_dir: Path
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    token_home: Path | None = None
    conversation_key: bytes | None = None  # None: chat messages are not recorded (VIGIA_CONVERSATIONS=false)


def create_app(database_url: str, webhook: WebhookConfig | None = None, dispatcher=None) -> Starlette:
    """Build the receiver for one store; with `webhook`, Evolution's voice notes are stored in the queue.

    `dispatcher` (optional: start(), stop(), submit(id)) is told of each stored note, e.g. a transcriber
    hosted in the same process for tests; the queue does not need it.
    """

    writer = VoiceNoteWriter(database_url, webhook.spool_dir) if webhook is not None else None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if dispatcher is not None:
            await run_in_threadpool(dispatcher.start)
        try:
            yield
        finally:
            if writer is not None:
                await run_in_threadpool(writer.stop)
            if dispatcher is not None:
                await run_in_threadpool(dispatcher.stop)

    generated: list[str] = []  # the token found under token_home, once there

    def current_token() -> str | None:
        if webhook is None:
            return None
        if webhook.token:
            return webhook.token
        if not generated and webhook.token_home is not None and (found := read_token_file(webhook.token_home)):
            generated.append(found)
        return generated[0] if generated else None

    def health(_: Request) -> JSONResponse:
        """200 with a summary, or 503 when the store is unreachable or the last check is stale."""
        now = datetime.now(timezone.utc)
        try:
            with open_session(database_url) as session:
                finished_at = last_health_run_finished_at(session)
                states = read_states(session)
        except StoreError as error:
            return JSONResponse({"status": "unhealthy", "reason": str(error)}, status_code=503)
        summary = {
            "last_check_at": finished_at.isoformat() if finished_at else None,
            "targets": {state.target: state.state for state in states},
            "down": sorted(state.target for state in states if state.state == "DOWN"),
        }
        if finished_at is None:
            return JSONResponse({"status": "unhealthy", "reason": "no health check has completed yet", **summary}, status_code=503)
        age = now - finished_at
        if age > 2 * CHECK_INTERVAL:
            reason = f"the last health check finished {age.total_seconds() / 60:.0f} min ago (limit {2 * CHECK_INTERVAL.total_seconds() / 60:.0f} min)"
            return JSONResponse({"status": "unhealthy", "reason": reason, **summary}, status_code=503)
        return JSONResponse({"status": "ok", **summary})

    async def evolution_webhook(request: Request) -> JSONResponse:
        """Store a voice note in the queue and answer 202; 200 for duplicates and ignored events."""
        started = time.perf_counter()
        event = request.path_params.get("event")
        token = current_token()
        if token is None:
            return _answer(503, "unavailable", "no webhook token is set up: set VIGIA_WEBHOOK_TOKEN or run `vigia setup`")
        if not request_holds_token(token, request.headers, request.query_params):
            return _answer(401, "unauthorized", "missing or wrong webhook token (X-Vigia-Token, Bearer JWT or ?token=)")
        body = await _read_body(request, webhook.max_body_bytes)
        if body is None:
            return _answer(413, "too-large", f"body over {webhook.max_body_bytes} bytes")
        try:
            parsed, message = parse_event(body, event)
        except WebhookPayloadError as error:
            return _answer(400, "rejected", str(error))
        except Exception as error:  # a parser bug on an odd body: Evolution would retry a 500 ten times to no avail
            # Only the type: the message may quote the body, phone numbers included.
            logger.error("webhook body could not be parsed: %s (a parser bug; answered 400)", type(error).__name__)
            return _answer(400, "rejected", f"body could not be read ({type(error).__name__})")
        received_at = datetime.now(timezone.utc)
        metadata = message_record(message, received_at, webhook.conversation_key) if message and webhook.conversation_key else None
        if isinstance(parsed, Ignored):
            if metadata is not None:
                try:
                    await writer.record_message(metadata)
                except (StoreError, OSError) as error:
                    logger.error("message %s of instance %s not recorded: %s", metadata.message_id, metadata.instance, error)
                    return _answer(503, "unavailable", "the message could not be recorded; retry later")
            return _answer(200, "ignored", parsed.reason)
        try:
            record = voice_note_record(parsed, received_at)
        except InvalidVoiceNote as error:  # permanent: a 503 would have Evolution retry it forever
            return _answer(400, "rejected", str(error))
        try:
            voice_note_id, duplicate = await writer.store(record, parsed.audio, metadata)
        except (StoreError, OSError) as error:  # Evolution retries anything but 4xx: nothing is lost
            logger.error("voice note %s from %s not stored: %s", parsed.message_id, mask_jid(parsed.chat_jid), error)
            return _answer(503, "unavailable", "the voice note could not be stored; retry later")
        elapsed_ms = (time.perf_counter() - started) * 1000
        if duplicate:
            logger.info(
                "voice note %s (instance %s) delivered again; already stored as %d", parsed.message_id, parsed.instance, voice_note_id
            )
            return _answer(200, "duplicate", f"already stored as voice note {voice_note_id}", voice_note_id=voice_note_id)
        inline = "inline audio" if parsed.audio else f"audio to fetch: {parsed.audio_problem}"
        logger.info(
            "voice note %d accepted from %s (instance %s, %s) in %.0f ms",
            voice_note_id,
            mask_jid(parsed.sender_jid or parsed.chat_jid),
            parsed.instance,
            inline,
            elapsed_ms,
        )
        if dispatcher is not None:
            dispatcher.submit(voice_note_id)
        return _answer(202, "accepted", None, voice_note_id=voice_note_id)

    # Plain Starlette: two routes need no FastAPI dependency solving, which cost a burst ~0.3 ms a note.
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/webhooks/evolution", evolution_webhook, methods=["POST"]),
        Route("/webhooks/evolution/{event}", evolution_webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def message_record(message: ChatMessage, received_at: datetime, key: bytes) -> NewMessage:
    """The row a chat message is recorded as: its chat hashed with `key`, its time the sender's (else when it arrived)."""
    return NewMessage(
        instance=message.instance,
        message_id=message.message_id,
        chat=chat_key(message.chat_jid, key),
        direction=message.direction,
        kind=message.kind,
        at=message.sent_at or received_at,
        reply_to=message.reply_to,
    )


def voice_note_record(note: IncomingVoiceNote, received_at: datetime) -> NewVoiceNote:
    """The row the receiver stores for a parsed voice note (its audio path is set when the audio is spooled).

    Raises:
        InvalidVoiceNote: when no store can hold a field as given.
    """
    record = NewVoiceNote(
        instance=note.instance,
        message_id=note.message_id,
        chat_jid=note.chat_jid,
        sender_jid=note.sender_jid,
        sent_at=note.sent_at,
        received_at=received_at,
        quoted=json.dumps(note.quoted, separators=(",", ":")),
        mimetype=note.mimetype,
        audio_path=None,
        audio_bytes=len(note.audio) if note.audio is not None else None,
        audio_seconds=note.seconds,
    )
    check_storable(record)
    return record


async def _read_body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status_code: int, status: str, reason: str | None, **extra) -> JSONResponse:
    body = {"status": status, **({"reason": reason} if reason else {}), **extra}
    return JSONResponse(body, status_code=status_code)


def create_app_from_environment() -> Starlette:
    """Build the receiver from the environment's settings (uvicorn's factory): webhook and spool included."""
    settings = load_settings()
    webhook = WebhookConfig(
        token=settings.webhook_token,
        spool_dir=settings.home / "spool" / "voice-notes",
        max_body_bytes=settings.webhook_max_bytes,
        token_home=settings.home,
        conversation_key=conversation_key(settings.home) if settings.conversations else None,
    )
    app = create_app(settings.database_url, webhook)
    limit_repeats()  # after uvicorn's logging set-up, whose handlers write to logs/receiver.log
    return app
