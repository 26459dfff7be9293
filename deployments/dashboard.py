"""`vigia dashboard`: serve the read-only Streamlit SLA dashboard (DESIGN §12) on VIGIA_BIND."""

from __future__ import annotations

import argparse
import gc
import inspect
import os
import socket
import sys
import threading
import time
from pathlib import Path

from deployments.settings import Settings, load_settings_or_exit

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
    # After the server answers, not before: the health check is not kept waiting for the page's modules.
    threading.Thread(target=_warm_imports, args=(settings.bind, port), name="warm-imports", daemon=True).start()
    from streamlit.web import bootstrap

    options = streamlit_options(settings.bind, port)
    bootstrap.load_config_options(flag_options=options)
    bootstrap.run(str(APP), False, [], options)


def _warm_imports(bind: str, port: int) -> None:
    # Streamlit imports a page's modules on its first visit; importing them beforehand keeps the first visitor
    # from waiting. Not Prefect's client (~40 MB): only the Workflows page needs it, and a dashboard nobody
    # opened should not carry it.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1" if bind in ("0.0.0.0", "::", "localhost") else bind, port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    import altair  # noqa: F401
    import httpx  # noqa: F401 — the Overview's Prefect counts: its CLI module pulls in rich (~0.1 s)
    import pandas  # noqa: F401

    import store.alerts  # noqa: F401
    import store.conversations  # noqa: F401
    import store.history  # noqa: F401
    import store.incidents  # noqa: F401
    import store.probes  # noqa: F401
    import store.sla  # noqa: F401

    # Streamlit's first element of a process calls inspect.stack(), which maps every loaded module to its file
    # once (~0.05 s with pandas and SQLAlchemy loaded; then ~3 ms); done here, not in the first visitor's run.
    inspect.stack()
    # What is loaded now lives as long as the process: frozen, it is not walked again by the collection
    # Streamlit forces after every run (runner.postScriptGC): 0.08 s a run with these modules, 2 ms frozen.
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    """`python -m deployments.dashboard --port N`: what `vigia up` runs (without the CLI's imports)."""
    parser = argparse.ArgumentParser(prog="python -m deployments.dashboard")
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    run_dashboard(load_settings_or_exit(), args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
