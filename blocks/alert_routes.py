"""The `alert-routes` Block: the Apprise configuration whose tags route alerts, and the alert timings."""

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.documentation import LOGO_URL, readme_section


class AlertRoutes(Block):
    """Where alerts go: an Apprise YAML or text config routed by severity tags, and when to remind and escalate."""

    _block_type_name = "Alert Routes"
    _block_type_slug = "alert-routes"
    _documentation_url = readme_section("Alerts")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.alert_routes import AlertRoutes

alert_routes = AlertRoutes.load("BLOCK_NAME")
```"""

    config: SecretStr | None = Field(
        default=None, description="The Apprise config (YAML or text); its tags are the severities. Empty: alerts go to the log."
    )
    config_format: Literal["yaml", "text"] | None = Field(
        default=None, description="The config's format; detected from its content when empty."
    )
    source: str = Field(default="alert-routes", description="Where the config came from (VIGIA_APPRISE_CONFIG), for messages.")
    reminder_minutes: int = Field(default=30, description="Remind every this many minutes while DOWN and unacknowledged.", gt=0)
    escalate_after_minutes: int = Field(
        default=30, description="An unacknowledged critical incident older than this raises an emergency.", gt=0
    )
    send_timeout_seconds: float = Field(default=30, description="The longest one alert may take to go out to every channel.", gt=0)
