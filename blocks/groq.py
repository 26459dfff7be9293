"""The `groq` Block: the Groq API key, endpoint and transcription model."""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from blocks.documentation import LOGO_URL, readme_section


class GroqApi(Block):
    """Groq, for Whisper transcription: API key, base URL and model."""

    _block_type_name = "Groq"
    _block_type_slug = "groq"
    _documentation_url = readme_section("Transcription")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.groq import GroqApi

groq_api = GroqApi.load("BLOCK_NAME")
```"""

    api_key: SecretStr = Field(description="The Groq API key (gsk_...).")
    base_url: str = Field(default="https://api.groq.com", description="Groq's base URL; the SDK adds /openai/v1.")
    transcription_model: str = Field(default="whisper-large-v3-turbo", description="The Whisper model used for voice notes.")
    transcription_language: str = Field(default="pt", description="Language hint given to Whisper (ISO 639-1).")
    timeout_seconds: float = Field(default=10, description="Timeout for one request to Groq.", gt=0, le=120)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/")
