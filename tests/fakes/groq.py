"""A loopback stand-in for the Groq API (`/openai/v1/...`) with its real status codes, headers and errors."""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .groq_transcription import HALLUCINATION, MAX_FILE_BYTES, ScriptedAudio, TranscriptionRequest, add_transcription_routes
from .server import RecordedRequest

CallNext = Callable[[Request], Awaitable[Response]]

API_PREFIX = "/openai/v1"  # also in groq_transcription
DEFAULT_MODELS = ("whisper-large-v3", "whisper-large-v3-turbo", "llama-3.3-70b-versatile")
RECORDED_HEADERS = ("authorization", "content-type", "user-agent", "x-stainless-retry-count")
DEFAULT_RETRY_AFTER_SECONDS = "2"
# Catalogue entries as the live `GET /openai/v1/models` reports them.
MODEL_CATALOGUE: dict[str, dict[str, Any]] = {
    "whisper-large-v3": {"created": 1693721698, "owned_by": "OpenAI", "context_window": 448, "max_completion_tokens": 448},
    "whisper-large-v3-turbo": {"created": 1728413088, "owned_by": "OpenAI", "context_window": 448, "max_completion_tokens": 448},
    "llama-3.3-70b-versatile": {"created": 1733447754, "owned_by": "Meta", "context_window": 131072, "max_completion_tokens": 32768},
}
UNCATALOGUED_MODEL = {"created": 1693721698, "owned_by": "Groq", "context_window": 8192, "max_completion_tokens": 8192}


def model_object(model_id: str) -> dict[str, Any]:
    """One entry of Groq's model list, in the field order Groq sends."""
    meta = MODEL_CATALOGUE.get(model_id, UNCATALOGUED_MODEL)
    return {
        "id": model_id,
        "object": "model",
        "created": meta["created"],
        "owned_by": meta["owned_by"],
        "active": True,
        "context_window": meta["context_window"],
        "public_apps": None,
        "max_completion_tokens": meta["max_completion_tokens"],
    }


def error_body(message: str, error_type: str, code: str | None = None) -> dict[str, Any]:
    """Groq's error envelope: `{"error": {"message", "type", "code"?}}`."""
    error: dict[str, Any] = {"message": message, "type": error_type}
    if code is not None:
        error["code"] = code
    return {"error": error}


def default_error_body(status: int, retry_after: str | None) -> dict[str, Any]:
    """The body Groq sends with `status` when a test does not script one."""
    if status == 401:
        return error_body("Invalid API Key", "invalid_request_error", "invalid_api_key")
    if status == 413:
        return error_body("Request Entity Too Large", "invalid_request_error", "request_too_large")
    if status == 429:
        message = (
            "Rate limit reached for model `whisper-large-v3-turbo` in organization `org_fake` service tier "
            "`on_demand` on requests per minute (RPM): Limit 20, Used 20, Requested 1. Please try again in "
            f"{retry_after or DEFAULT_RETRY_AFTER_SECONDS}s. Visit https://console.groq.com/docs/rate-limits "
            "for more information."
        )
        return error_body(message, "requests", "rate_limit_exceeded")
    error_type = "internal_server_error" if status >= 500 else "invalid_request_error"
    return error_body(HTTPStatus(status).phrase, error_type)


@dataclass(frozen=True)
class ForcedReply:
    """A scripted reply that pre-empts the next API request: status, headers and a JSON or raw-text body."""

    status: int
    headers: Mapping[str, str]
    body: dict[str, Any] | str

    def to_response(self) -> Response:
        """The HTTP reply, JSON unless the body is raw text (e.g. a proxy's 413 page)."""
        if isinstance(self.body, str):
            return PlainTextResponse(self.body, status_code=self.status, headers=dict(self.headers))
        return JSONResponse(self.body, status_code=self.status, headers=dict(self.headers))


@dataclass(eq=False)
class FakeGroq:
    """Groq API server state; mutate the fields or script failures between requests."""

    api_key: str = "gsk_fake_test_key"
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    delay_seconds: float = 0.0
    requests_per_day: int = 2000
    requests: list[RecordedRequest] = field(default_factory=list)
    forced_replies: deque[ForcedReply] = field(default_factory=deque)
    # Transcriptions: what each audio (by SHA-256) says; unknown audio is heard as `default_text`.
    scripted_audio: dict[str, ScriptedAudio] = field(default_factory=dict)
    default_text: str = "transcribed words"
    max_file_bytes: int = MAX_FILE_BYTES
    transcriptions: list[TranscriptionRequest] = field(default_factory=list)
    # Older Groq error bodies carry no `code`; False makes every error this fake sends omit it.
    error_codes: bool = True

    def error_response(self, status: int, message: str, error_type: str, code: str | None = None) -> JSONResponse:
        """Groq's error reply, with `code` unless `error_codes` is off."""
        return JSONResponse(error_body(message, error_type, code if self.error_codes else None), status_code=status)

    def script_audio(self, audio: bytes, text: str, *, duration: float = 3.0, no_speech_prob: float = 0.02) -> None:
        """Make the fake hear `text` in exactly these bytes (one segment)."""
        self.script_segments(audio, [(text, no_speech_prob)], duration=duration)

    def script_silence(self, audio: bytes, *, duration: float = 3.0) -> None:
        """Make the fake answer these bytes as Whisper answers silence: an invented phrase with a high no_speech_prob."""
        self.script_segments(audio, [(HALLUCINATION, 0.93)], duration=duration)

    def script_segments(self, audio: bytes, segments: list[tuple[str, float]], *, duration: float = 3.0) -> None:
        """Make the fake hear these segments, each with its no_speech_prob, in exactly these bytes."""
        self.scripted_audio[hashlib.sha256(audio).hexdigest()] = ScriptedAudio(tuple(segments), duration)

    def fail_next(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        body: dict[str, Any] | str | None = None,
    ) -> None:
        """Answer the next `times` requests with `status`, before auth; a 429 gets a default `retry-after`."""
        reply_headers = {k.lower(): v for k, v in (headers or {}).items()}
        if status == 429:
            reply_headers.setdefault("retry-after", DEFAULT_RETRY_AFTER_SECONDS)
        if body is None:
            body = default_error_body(status, reply_headers.get("retry-after"))
            if not self.error_codes:
                body["error"].pop("code", None)
        self.forced_replies.extend([ForcedReply(status, reply_headers, body)] * times)

    def is_authorized(self, authorization: str | None) -> bool:
        """Whether the Authorization header carries this fake's key as a bearer token."""
        return authorization == f"Bearer {self.api_key}"

    def rate_limit_headers(self) -> dict[str, str]:
        """The `x-ratelimit-*-requests` headers Groq sends on every authenticated reply (requests per day)."""
        remaining = max(self.requests_per_day - len(self.requests), 0)
        return {
            "x-ratelimit-limit-requests": str(self.requests_per_day),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": "43.2s",
        }

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app serving this fake's state."""
        return build_app(self)


def build_app(fake: FakeGroq) -> FastAPI:
    """Build the FastAPI app; each `add_*_routes` function adds one Groq resource."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def record_delay_fail_and_authenticate(request: Request, call_next: CallNext) -> Response:
        fake.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers={k: v for k, v in request.headers.items() if k in RECORDED_HEADERS},
            )
        )
        if fake.delay_seconds > 0:
            await asyncio.sleep(fake.delay_seconds)
        if fake.forced_replies:
            return fake.forced_replies.popleft().to_response()
        if not fake.is_authorized(request.headers.get("authorization")):
            return fake.error_response(401, "Invalid API Key", "invalid_request_error", "invalid_api_key")
        response = await call_next(request)
        response.headers.update(fake.rate_limit_headers())
        return response

    @app.exception_handler(StarletteHTTPException)
    async def unknown_url(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            f"Unknown request URL: {request.method} {request.url.path}. "
            "Please check the URL for typos, or see the docs at https://console.groq.com/docs/"
        )
        return fake.error_response(404, message, "invalid_request_error", "unknown_url")

    add_model_routes(app, fake)
    add_transcription_routes(app, fake)
    return app


def add_model_routes(app: FastAPI, fake: FakeGroq) -> None:
    """`GET /openai/v1/models` and `GET /openai/v1/models/{model}`."""

    @app.get(f"{API_PREFIX}/models")
    async def list_models() -> Response:
        return JSONResponse({"object": "list", "data": [model_object(model) for model in fake.models]})

    @app.get(f"{API_PREFIX}/models/{{model:path}}")
    async def retrieve_model(model: str) -> Response:
        if model not in fake.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return fake.error_response(404, message, "invalid_request_error", "model_not_found")
        return JSONResponse(model_object(model))
