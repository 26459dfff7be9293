"""Groq: the models the API key can use, and Whisper transcription of one audio file."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import groq
from pydantic import BaseModel, ConfigDict, Field

from clients.errors import ClientError
from clients.http import tls_context

# What Groq says, with or without an error `code`, about audio it will not take.
UNSUPPORTED_FORMAT_MESSAGE = "file must be one of the following types"
UNDECODABLE_MESSAGE = "is it a valid media file"
DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?")


class GroqError(ClientError):
    """Groq refused or did not answer."""


class TranscriptionRejected(GroqError):
    """Groq refused the audio or the key for good (401, 403, 404 model, 413, unsupported format); retrying cannot help.

    `reason` is a short slug: groq-auth, groq-model, too-large, unsupported-format, audio-undecodable, groq-rejected.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class TranscriptionUnavailable(GroqError):
    """Groq could not transcribe now (429, 5xx, timeout, unreachable); a later try may work.

    `reason` is a short slug (groq-rate-limited, groq-unavailable, groq-timeout, groq-unreachable);
    `retry_after_seconds` is Groq's `retry-after` on a 429, when it sent one.
    """

    def __init__(self, message: str, reason: str, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


class Segment(BaseModel):
    """One `verbose_json` segment: its text and how likely it is that nobody spoke."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    start: float = 0.0
    end: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(frozen=True)
class RequestQuota:
    """Groq's `x-ratelimit-*-requests` headers: the organisation's requests left today, and when that count resets."""

    remaining: int | None
    reset_seconds: float | None


class TranscriptionReply(BaseModel):
    """Groq's `verbose_json` transcription, and the request quota its headers told."""

    model_config = ConfigDict(extra="allow")

    text: str = ""
    duration: float | None = None
    language: str | None = None
    segments: list[Segment] = Field(default_factory=list)
    quota: RequestQuota | None = Field(default=None, exclude=True)


def create_client(api_key: str, base_url: str, *, timeout: float, max_retries: int = 0) -> groq.AsyncGroq:
    """Return a Groq SDK client with a short timeout; retries are ours to budget, so none by default."""
    # A shared TLS context: the SDK's own client builds a CA bundle (~25 ms of CPU) every time.
    http_client = groq.DefaultAsyncHttpxClient(verify=tls_context())
    return groq.AsyncGroq(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries, http_client=http_client)


async def list_models(client: groq.AsyncGroq) -> tuple[list[str], float]:
    """Return the ids of the models the key may use, and the latency in ms.

    Raises:
        GroqError: on 401 (key), 429 (with retry-after), other statuses, timeouts and refused connections.
    """
    started = time.perf_counter()
    try:
        page = await client.models.list()
    except groq.AuthenticationError as error:
        raise GroqError("Groq rejected the API key (401)") from error
    except groq.RateLimitError as error:
        retry_after = error.response.headers.get("retry-after")
        raise GroqError(f"Groq rate limit (429), retry after {retry_after or '?'} s") from error
    except groq.APIStatusError as error:
        raise GroqError(f"Groq answered {error.status_code}: {_message(error)}") from error
    except groq.APITimeoutError as error:
        raise GroqError("Groq timed out") from error
    except groq.APIConnectionError as error:
        raise GroqError(f"cannot reach Groq: {error.__cause__ or error}") from error
    return [model.id for model in page.data], (time.perf_counter() - started) * 1000


async def transcribe(
    client: groq.AsyncGroq, audio: bytes, *, model: str, language: str | None, timeout: float, file_name: str = "voice.ogg"
) -> TranscriptionReply:
    """Transcribe one audio file with Whisper (`verbose_json`, temperature 0), in one attempt.

    The file is named `voice.ogg` by default: Groq checks the extension and rejects Evolution's `.oga`.

    Raises:
        TranscriptionRejected: 401/403, 404 (model), 413, 400 (format, undecodable audio, or request).
        TranscriptionUnavailable: 429 (with retry-after), 5xx, timeout, connection refused.
    """
    content_type = "audio/ogg" if file_name.endswith((".ogg", ".opus")) else "application/octet-stream"
    try:
        raw = await client.audio.transcriptions.with_raw_response.create(
            model=model,
            file=(file_name, audio, content_type),
            language=language or groq.omit,
            response_format="verbose_json",
            temperature=0.0,
            timeout=timeout,
        )
        reply = await raw.parse()
    except groq.RateLimitError as error:
        retry_after = retry_after_seconds(error.response.headers)
        hint = f", retry after {retry_after:g} s" if retry_after is not None else ""
        raise TranscriptionUnavailable(f"Groq rate limit (429){hint}: {_message(error)}", "groq-rate-limited", retry_after) from error
    except (groq.AuthenticationError, groq.PermissionDeniedError) as error:
        raise TranscriptionRejected(f"Groq rejected the API key ({error.status_code}): {_message(error)}", "groq-auth") from error
    except groq.NotFoundError as error:
        raise TranscriptionRejected(f"Groq has no model {model!r} (404): {_message(error)}", "groq-model") from error
    except groq.APIStatusError as error:
        raise _status_error(error) from error
    except groq.APITimeoutError as error:
        raise TranscriptionUnavailable(f"Groq did not answer within {timeout:.1f} s", "groq-timeout") from error
    except groq.APIConnectionError as error:
        raise TranscriptionUnavailable(f"cannot reach Groq: {error.__cause__ or error}", "groq-unreachable") from error
    parsed = TranscriptionReply.model_validate(reply.model_dump() if hasattr(reply, "model_dump") else {"text": str(reply)})
    return parsed.model_copy(update={"quota": read_request_quota(raw.headers)})


def read_request_quota(headers) -> RequestQuota:
    """Read `x-ratelimit-remaining-requests` and `x-ratelimit-reset-requests` ("43.2s", "2m59.56s", "1h2m3s", "250ms")."""
    remaining = headers.get("x-ratelimit-remaining-requests")
    return RequestQuota(
        int(remaining) if remaining and remaining.isdigit() else None, duration_seconds(headers.get("x-ratelimit-reset-requests"))
    )


def duration_seconds(text: str | None) -> float | None:
    """Seconds in a Go-style duration as Groq writes its resets; None when absent or unreadable."""
    if not text or not (found := DURATION.fullmatch(text.strip())) or not any(found.groups()):
        return None
    hours, minutes, seconds, milliseconds = (float(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds + milliseconds / 1000


def retry_after_seconds(headers) -> float | None:
    """Read `retry-after-ms`, else `retry-after` (seconds or an HTTP date), as Groq's SDK does."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _status_error(error: groq.APIStatusError) -> GroqError:
    status = error.status_code
    if status == 413:
        return TranscriptionRejected(f"Groq refused the audio as too large (413): {_message(error)}", "too-large")
    if status >= 500:
        return TranscriptionUnavailable(f"Groq answered {status}: {_message(error)}", "groq-unavailable")
    # Older error bodies carry no `code`, so the message decides as well.
    code, message = _code(error), _message(error)
    if code == "unsupported_audio_format" or message.startswith(UNSUPPORTED_FORMAT_MESSAGE):
        return TranscriptionRejected(f"Groq refused the audio format ({status}): {message}", "unsupported-format")
    if status == 400 and (code == "invalid_media_file" or UNDECODABLE_MESSAGE in message):
        return TranscriptionRejected(f"Groq could not decode the audio ({status}): {message}", "audio-undecodable")
    if status in (408, 409):
        return TranscriptionUnavailable(f"Groq answered {status}: {_message(error)}", "groq-unavailable")
    return TranscriptionRejected(f"Groq refused the request ({status}): {_message(error)}", "groq-rejected")


def _code(error: groq.APIStatusError) -> str | None:
    detail = error.body.get("error") if isinstance(error.body, dict) else None
    code = detail.get("code") if isinstance(detail, dict) else None
    return code if isinstance(code, str) else None


def _message(error: groq.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and "message" in detail:
            return str(detail["message"])
    return str(body)[:200]
