"""The fake Groq's `POST /openai/v1/audio/transcriptions`: Groq's checks in its order, then json, text or verbose_json.

Groq checks the file name's extension first (400 `unsupported_audio_format`), then decodes the
content: bytes no decoder reads get 400 "could not process file - is it a valid media file?",
`invalid_request_error`, and no `code` (as captured from the live API). The fake "decodes" by the
container's magic bytes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

if TYPE_CHECKING:
    from .groq import FakeGroq

API_PREFIX = "/openai/v1"
WHISPER_MODELS = ("whisper-large-v3", "whisper-large-v3-turbo")
AUDIO_EXTENSIONS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "opus", "wav", "webm")
MAX_FILE_BYTES = 25 * 1024 * 1024
HALLUCINATION = "Legendas pela comunidade Amara.org"
UNDECODABLE = "could not process file - is it a valid media file?"


@dataclass(frozen=True)
class ScriptedAudio:
    """What the fake "hears" in one audio file: segments of (text, no_speech_prob), and its duration."""

    segments: tuple[tuple[str, float], ...]
    duration: float


@dataclass(frozen=True)
class TranscriptionRequest:
    """One multipart transcription request as the fake received it, for assertions."""

    model: str | None
    language: str | None
    response_format: str | None
    temperature: str | None
    filename: str | None
    content_type: str | None
    size_bytes: int
    sha256: str


def is_decodable(content: bytes) -> bool:
    """Whether an audio decoder would read these bytes: OGG, WAV, FLAC, MP3, MP4/M4A or WebM by their magic bytes."""
    return (
        content.startswith((b"OggS", b"fLaC", b"ID3", b"\x1a\x45\xdf\xa3"))
        or (content[:4] == b"RIFF" and content[8:12] == b"WAVE")
        or content[4:8] == b"ftyp"
        or (len(content) > 1 and content[0] == 0xFF and content[1] & 0xE0 == 0xE0)
    )


def add_transcription_routes(app: FastAPI, fake: FakeGroq) -> None:
    """`POST /openai/v1/audio/transcriptions` (multipart)."""

    @app.post(f"{API_PREFIX}/audio/transcriptions")
    async def transcribe(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        content = await upload.read() if upload is not None and hasattr(upload, "read") else None
        fields = {name: form.get(name) for name in ("model", "language", "response_format", "temperature")}
        if content is not None:
            fake.transcriptions.append(
                TranscriptionRequest(
                    model=fields["model"],
                    language=fields["language"],
                    response_format=fields["response_format"],
                    temperature=fields["temperature"],
                    filename=upload.filename,
                    content_type=upload.content_type,
                    size_bytes=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                )
            )
        if refusal := _refusal(fake, fields, content, upload.filename if content is not None else None, bool(form.get("url"))):
            return refusal
        response_format = fields["response_format"] or "json"
        heard = fake.scripted_audio.get(hashlib.sha256(content or b"").hexdigest()) or ScriptedAudio(((fake.default_text, 0.01),), 3.0)
        return _transcription(heard, response_format, fields["language"])


def _refusal(fake: FakeGroq, fields: dict, content: bytes | None, filename: str | None, has_url: bool) -> Response | None:
    """Groq's refusals in its order: size, model, missing file, extension, response_format, undecodable content."""
    if content is not None and len(content) > fake.max_file_bytes:
        return fake.error_response(413, "Request Entity Too Large", "invalid_request_error", "request_too_large")
    if fields["model"] not in WHISPER_MODELS or fields["model"] not in fake.models:
        message = f"The model `{fields['model']}` does not exist or you do not have access to it."
        return fake.error_response(404, message, "invalid_request_error", "model_not_found")
    if content is None and not has_url:
        return fake.error_response(400, "either file or url must be provided", "invalid_request_error")
    if content is not None and (filename or "").rpartition(".")[2].lower() not in AUDIO_EXTENSIONS:
        message = f"file must be one of the following types: [{' '.join(AUDIO_EXTENSIONS)}]"
        return fake.error_response(400, message, "invalid_request_error", "unsupported_audio_format")
    if (fields["response_format"] or "json") not in ("json", "text", "verbose_json"):
        return fake.error_response(400, "response_format must be one of json, text, verbose_json", "invalid_request_error")
    if content is not None and not is_decodable(content):
        return fake.error_response(400, UNDECODABLE, "invalid_request_error")
    return None


def _transcription(heard: ScriptedAudio, response_format: str, language: str | None) -> Response:
    text = " ".join(segment for segment, _ in heard.segments)
    if response_format == "text":
        return PlainTextResponse(text + "\n")
    x_groq = {"id": "req_" + secrets.token_hex(13)}
    if response_format == "json":
        return JSONResponse({"text": text, "x_groq": x_groq})
    step = heard.duration / len(heard.segments)
    segments = [
        {
            "id": index,
            "seek": 0,
            "start": round(index * step, 2),
            "end": round((index + 1) * step, 2),
            "text": f" {segment}",
            "tokens": [50365, 1234, 50515],
            "temperature": 0.0,
            "avg_logprob": -0.21,
            "compression_ratio": 1.1,
            "no_speech_prob": no_speech,
        }
        for index, (segment, no_speech) in enumerate(heard.segments)
    ]
    return JSONResponse(
        {
            "task": "transcribe",
            "language": language or "portuguese",
            "duration": heard.duration,
            "text": text,
            "segments": segments,
            "x_groq": x_groq,
        }
    )
