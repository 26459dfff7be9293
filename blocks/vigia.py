"""The `vigia-settings` Block: where Vigia keeps its state and whom it tells it is alive."""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.documentation import LOGO_URL, readme_section


class VigiaSettings(Block):
    """Vigia's own settings that flows need on any worker: store, home, time zone, links."""

    _block_type_name = "Vigia Settings"
    _block_type_slug = "vigia-settings"
    _documentation_url = readme_section("Settings and Blocks")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.vigia import VigiaSettings

vigia_settings = VigiaSettings.load("BLOCK_NAME")
```"""

    home: str = Field(description="VIGIA_HOME: SQLite files, spool, local backups and reports.")
    database_url: SecretStr = Field(description="VIGIA_DATABASE_URL: the store, as a SQLAlchemy URL.")
    timezone: str = Field(default="America/Sao_Paulo", description="VIGIA_TIMEZONE: schedules and reports.")
    heartbeat_url: SecretStr | None = Field(default=None, description="VIGIA_HEARTBEAT_URL: pinged after every completed health check.")
    dashboard_url: str = Field(default="http://127.0.0.1:8501", description="Where the dashboard answers, for links.")
    prefect_ui_url: str = Field(default="http://127.0.0.1:4200", description="Where the Prefect UI answers, for links.")
    response_target_seconds: float = Field(
        default=60, gt=0, description="VIGIA_RESPONSE_TARGET_SECONDS: a customer message without an answer this long is unanswered."
    )
    bot_silent_minutes: float = Field(
        default=15, gt=0, description="VIGIA_BOT_SILENT_MINUTES: a warning when the bot answers nobody this long while customers write."
    )
    unanswered_alert_percent: float = Field(
        default=20,
        gt=0,
        le=100,
        description="VIGIA_UNANSWERED_ALERT_PERCENT: a warning when more of the last hour's messages go unanswered.",
    )
    keep_probes_days: int = Field(
        default=35, gt=0, description="VIGIA_KEEP_PROBES_DAYS: raw probes are deleted after this many days, once rolled up."
    )
    keep_history_days: int = Field(
        default=400,
        gt=0,
        description="VIGIA_KEEP_HISTORY_DAYS: hourly roll-ups and every other store row are deleted after this many days.",
    )
    keep_transcripts: bool = Field(
        default=False, description="VIGIA_KEEP_TRANSCRIPTS: an answered voice note's transcript and spooled audio are kept."
    )
    keep_transcripts_days: int = Field(
        default=30,
        gt=0,
        description="VIGIA_KEEP_TRANSCRIPTS_DAYS: kept transcripts and spooled audio are deleted after this many days.",
    )
