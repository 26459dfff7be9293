"""Where the dashboard reads from, taken from the environment `vigia dashboard` (or `vigia up`) sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"


@dataclass(frozen=True)
class DashboardConfig:
    """The store to read, the Prefect API and UI to ask and link to, and the optional password."""

    store_url: str
    prefect_api_url: str
    prefect_ui_url: str
    password: str | None = field(default=None, repr=False)
    response_target_seconds: float = 60.0  # VIGIA_RESPONSE_TARGET_SECONDS: the bot's reply-time target


def read_config(environ: Mapping[str, str] | None = None) -> DashboardConfig:
    """Return the dashboard's configuration from the environment (the CLI has already validated it)."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("VIGIA_HOME") or "~/.vigia").expanduser()
    api_url = (environ.get("PREFECT_API_URL") or DEFAULT_PREFECT_API_URL).rstrip("/")
    ui_url = (environ.get("PREFECT_UI_URL") or api_url.removesuffix("/api")).rstrip("/")
    return DashboardConfig(
        store_url=environ.get("VIGIA_DATABASE_URL") or f"sqlite:///{home / 'vigia.db'}",
        prefect_api_url=api_url,
        prefect_ui_url=ui_url,
        password=environ.get("VIGIA_DASHBOARD_PASSWORD") or None,
        response_target_seconds=float(environ.get("VIGIA_RESPONSE_TARGET_SECONDS") or 60),
    )
