"""The `maintenance` flow: the store's daily retention (DESIGN §13)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from blocks.vigia import VigiaSettings
from store.retention import Limits
from tasks.store_retention import apply_store_retention


@flow(name="maintenance", description="Roll up probe hours, delete store rows past their retention, compact a SQLite store.")
async def maintenance(settings_block: str = "default", dry_run: bool = False) -> dict[str, int]:
    """Apply the store's retention: raw probes once rolled up and older than VIGIA_KEEP_PROBES_DAYS, the rest past VIGIA_KEEP_HISTORY_DAYS.

    Args:
        settings_block: Name of the vigia-settings Block document (the store and the limits).
        dry_run: Only count what would be deleted; roll up and delete nothing.
    """
    settings = await VigiaSettings.aload(settings_block)
    limits = Limits(
        probe_days=settings.keep_probes_days,
        history_days=settings.keep_history_days,
        transcript_days=settings.keep_transcripts_days,
        keep_transcripts=settings.keep_transcripts,
    )
    spool_dir = Path(settings.home).expanduser() / "spool" / "voice-notes"
    report = apply_store_retention(settings.database_url.get_secret_value(), limits, spool_dir, dry_run)
    return dict(report.pruned.tables)
