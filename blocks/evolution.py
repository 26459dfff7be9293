"""The `evolution-api` Block: how to reach the WhatsApp gateway."""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from blocks.documentation import LOGO_URL, readme_section


class EvolutionApi(Block):
    """Evolution API, the WhatsApp gateway: base URL, API key and instance."""

    _block_type_name = "Evolution API"
    _block_type_slug = "evolution-api"
    _documentation_url = readme_section("Transcription")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.evolution import EvolutionApi

evolution_api = EvolutionApi.load("BLOCK_NAME")
```"""

    url: str = Field(description="Base URL of the Evolution API, e.g. https://evolution.example.com.")
    api_key: SecretStr = Field(description="The global or instance API key, sent as the `apikey` header.")
    instance: str = Field(description="The instance name the bot runs on.", min_length=1)
    timeout_seconds: float = Field(default=10, description="Timeout for one request to the API.", gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value.rstrip("/")
