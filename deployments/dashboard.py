"""`vigia dashboard`: serve the read-only Streamlit SLA dashboard (DESIGN §12) on VIGIA_BIND."""

from __future__ import annotations

import os
from pathlib import Path

from deployments.settings import Settings

# A sibling package: the same path in a checkout and in an installed wheel. Not imported: the
# dashboard reads the store only, and Streamlit runs it as a script.
APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
DEFAULT_PREFECT_API_URL = "http://127.0.0.1:4200/api"


def dashboard_environment(settings: Settings) -> dict[str, str]:
    """Return the variables the dashboard reads: the parsed store URL, Prefect's API and UI, the password."""
    api_url = settings.prefect_api_url or DEFAULT_PREFECT_API_URL
    env = {
        "VIGIA_HOME": str(settings.home),
        "VIGIA_DATABASE_URL": settings.database_url,
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_URL": os.environ.get("PREFECT_UI_URL") or api_url.removesuffix("/api"),
    }
    if settings.dashboard_password:
        env["VIGIA_DASHBOARD_PASSWORD"] = settings.dashboard_password
    if settings.prefect_auth_string:
        env["PREFECT_API_AUTH_STRING"] = settings.prefect_auth_string
    return env


def streamlit_options(bind: str, port: int) -> dict[str, object]:
    """Return Streamlit's server options: headless on VIGIA_BIND, no telemetry, no file watching, no dev tools."""
    return {
        "server.address": bind,
        "server.port": port,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "browser.gatherUsageStats": False,
        "global.developmentMode": False,
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "none",
        "logger.level": "warning",
    }


def run_dashboard(settings: Settings, port: int) -> None:
    """Serve the dashboard until SIGINT or SIGTERM (Streamlit's own handlers stop it)."""
    os.environ.update(dashboard_environment(settings))
    os.environ.pop("VIGIA_DASHBOARD_PASSWORD_FILE", None)  # the password itself is set above
    _warm_imports()
    from streamlit.web import bootstrap

    options = streamlit_options(settings.bind, port)
    bootstrap.load_config_options(flag_options=options)
    bootstrap.run(str(APP), False, [], options)


def _warm_imports() -> None:
    # Streamlit imports a page's modules on its first visit; importing the heavy ones (Prefect's
    # client alone takes seconds) before serving keeps the first visitor from waiting for them.
    import altair  # noqa: F401
    import pandas  # noqa: F401
    import prefect.client.orchestration  # noqa: F401
    import prefect.client.schemas.filters  # noqa: F401

    import store.alerts  # noqa: F401
    import store.history  # noqa: F401
    import store.sla  # noqa: F401
