"""The `transcription` Block: how voice notes are answered — templates, watchlist, thresholds, what is kept."""

import string
from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from blocks.documentation import LOGO_URL, readme_section

KeywordSeverity = Literal["info", "warning", "critical", "emergency"]
TEMPLATE_FIELDS = ("transcript", "seconds")


class TranscriptionSettings(Block):
    """Voice-note transcription: reply texts, the keyword watchlist, silence and size limits, the SLA budget."""

    _block_type_name = "Transcription"
    _block_type_slug = "transcription"
    _documentation_url = readme_section("Transcription")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.transcription import TranscriptionSettings

transcription = TranscriptionSettings.load("BLOCK_NAME")
```"""

    reply_template: str = Field(
        default="🎙️ *Transcrição:*\n{transcript}",
        description="VIGIA_REPLY_TEMPLATE: the reply quoting the voice note; {transcript} is the text, {seconds} the audio length.",
    )
    failure_reply: str = Field(
        default="⚠️ Não consegui transcrever este áudio agora. Tente novamente mais tarde.",
        description="VIGIA_FAILURE_REPLY: sent once, quoting the note, when it cannot be transcribed (empty: send nothing).",
    )
    keywords: dict[str, KeywordSeverity] = Field(
        default_factory=dict,
        description="VIGIA_KEYWORDS: words or phrases to watch for in transcripts, each with the alert severity it raises.",
    )
    keep_transcripts: bool = Field(
        default=False, description="VIGIA_KEEP_TRANSCRIPTS: keep transcript text and audio after the reply (default: delete both)."
    )
    sla_seconds: float = Field(default=15, description="Webhook-to-reply budget; retries stop so the reply still fits.", gt=2, le=300)
    min_seconds: float = Field(default=1.0, description="Voice notes shorter than this are skipped, not sent to Whisper.", ge=0)
    no_speech_threshold: float = Field(
        default=0.6,
        description="Whisper segments with a no_speech_prob above this are dropped (Whisper invents text on silence).",
        gt=0,
        le=1,
    )
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024, description="Groq's upload limit; longer audio is split with ffmpeg and the texts joined.", gt=0
    )
    groq_max_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="VIGIA_GROQ_MAX_CONCURRENCY: Whisper requests at once per process (the shared bound is the groq-concurrency limit).",
    )
    groq_requests_per_minute: int = Field(
        default=20,
        ge=1,
        le=100000,
        description="VIGIA_GROQ_RPM: Whisper requests per minute per process when Prefect's groq-requests-per-minute limit is away.",
    )
    groq_audio_seconds_per_hour: int = Field(
        default=7200,
        ge=10,
        le=100_000_000,
        description="VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR: audio seconds per hour per process when Prefect's shared limit is away.",
    )

    @field_validator("reply_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        fields = template_fields(value)
        unknown = sorted(set(fields) - set(TEMPLATE_FIELDS))
        if unknown:
            raise ValueError(f"reply_template uses unknown fields {', '.join(unknown)}; it may use {{transcript}} and {{seconds}}")
        if "transcript" not in fields:
            raise ValueError("reply_template must contain {transcript}")
        return value

    @field_validator("keywords")
    @classmethod
    def _check_keywords(cls, value: dict[str, str]) -> dict[str, str]:
        blank = [word for word in value if not word.strip()]
        if blank:
            raise ValueError("keywords: a watched word is empty")
        return {word.strip(): severity for word, severity in value.items()}


def template_fields(template: str) -> list[str]:
    """Return the names a str.format template uses.

    Raises:
        ValueError: when the template is not a valid format string or uses positional fields.
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"reply_template is not a valid template ({error}); write literal braces as {{{{ and }}}}") from error
    if any(not name or name.isdigit() for name in names):
        raise ValueError("reply_template may use only named fields: {transcript}, {seconds}")
    return names
