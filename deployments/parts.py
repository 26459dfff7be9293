"""The parts `vigia up` runs, what each needs first and how each is known to be ready; the environment they share."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dotenv import dotenv_values

from deployments.migration_stamps import is_migrated, prefect_stamp, store_stamp
from deployments.supervisor import Part

if TYPE_CHECKING:
    from deployments.settings import Settings

PYTHON = sys.executable
HEALTH_CHECK_DEPLOYMENT = "health-check/every-5-min"
# Prefect server services Vigia does not use (it defines no automations and never pauses a run). Each is a
# loop in the server process; the rest (scheduler, late runs, foreman, repossessor, event persister, task run
# recorder, cancellation cleanup, vacuum) stay on.
UNUSED_SERVER_SERVICES = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
}
PREFECT_DATABASE_SCHEMES = ("postgresql+asyncpg", "postgresql", "postgres")


class PartsError(Exception):
    """A setting the parts need is invalid; the message names the variable and what it accepts."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens."""

    prefect: int = 4200
    webhook: int = 8787
    dashboard: int = 8501


@dataclass(frozen=True)
class Urls:
    """Where each part answers, as printed and recorded in up.json."""

    prefect_api: str
    receiver: str
    dashboard: str

    @property
    def prefect_ui(self) -> str:
        """The Prefect UI, beside its API."""
        return self.prefect_api.removesuffix("/api")


def platform_urls(settings: Settings, ports: Ports) -> Urls:
    """The URL of every part: a Prefect server named by PREFECT_API_URL wins over our own."""
    host = local_host(settings.bind)
    return Urls(
        prefect_api=settings.prefect_api_url or f"http://127.0.0.1:{ports.prefect}/api",
        receiver=f"http://{host}:{ports.webhook}",
        dashboard=f"http://{host}:{ports.dashboard}",
    )


def local_host(bind: str) -> str:
    """The address to reach a part bound to `bind` from this machine."""
    return "127.0.0.1" if bind in ("0.0.0.0", "::", "localhost") else bind


def child_environment(settings: Settings, urls: Urls, marker: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment every part starts with: ours, plus where Prefect is, a private Prefect home, no telemetry."""
    env = dict(environ)
    env.update(
        {
            "VIGIA_UP_MARKER": marker,  # finds whatever a killed `vigia up` left running
            "VIGIA_HOME": str(settings.home),
            "VIGIA_TIMEZONE": settings.timezone,  # prefect.yaml's schedules use {{ $VIGIA_TIMEZONE }}
            "PREFECT_API_URL": urls.prefect_api,
            "PREFECT_UI_URL": urls.prefect_ui,
            "PREFECT_HOME": str(settings.home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "clients,store,deployments,flows,tasks",
            # Our loggers also speak outside runs (the transcriber, the receiver): those lines stay in the log files
            # instead of a UserWarning each that they could not go to a run's logs.
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        }
    )
    if settings.prefect_auth_string:
        env["PREFECT_API_AUTH_STRING"] = settings.prefect_auth_string
    return env


def prefect_headers(settings: Settings) -> dict[str, str]:
    """The headers a call to Prefect's API needs: basic auth when PREFECT_SERVER_API_AUTH_STRING is set."""
    if not settings.prefect_auth_string:
        return {}
    return {"Authorization": f"Basic {base64.b64encode(settings.prefect_auth_string.encode()).decode()}"}


def prefect_database_url(environ: Mapping[str, str] = os.environ, env_file: Path | None = Path(".env")) -> str | None:
    """VIGIA_PREFECT_DATABASE_URL (or the file VIGIA_PREFECT_DATABASE_URL_FILE names) as Prefect's asyncpg URL; None: SQLite.

    Raises:
        PartsError: when it is not a PostgreSQL URL.
    """
    values = {k: v for k, v in (dotenv_values(env_file) if env_file and env_file.exists() else {}).items() if v is not None}
    values.update(environ)
    url = values.get("VIGIA_PREFECT_DATABASE_URL")
    if not url and values.get("VIGIA_PREFECT_DATABASE_URL_FILE"):
        try:
            url = Path(values["VIGIA_PREFECT_DATABASE_URL_FILE"]).read_text().strip()
        except OSError as error:
            raise PartsError(f"VIGIA_PREFECT_DATABASE_URL_FILE: cannot read it ({error.strerror})") from None
    if not url:
        return None
    scheme = urlsplit(url).scheme
    if scheme not in PREFECT_DATABASE_SCHEMES or not urlsplit(url).hostname:
        raise PartsError(
            "VIGIA_PREFECT_DATABASE_URL: invalid value (not a PostgreSQL URL); accepts postgresql+asyncpg://user:password@host:5432/prefect"
        )
    return "postgresql+asyncpg" + url[len(scheme) :]


def build_parts(settings: Settings, ports: Ports, urls: Urls, prefect_database: str | None) -> list[Part]:
    """Every part of the platform, with what it needs first: the store's migration, Prefect and the dashboard start
    together; the receiver waits for the migration; setup for it too (and for Prefect's API, by itself); the runner
    (hosting the transcriber) for setup. The runner and setup run at a lower priority, behind the parts people open."""
    host = local_host(settings.bind)
    parts = []
    if not is_migrated(settings.home, "store", store_stamp(settings.database_url)):
        parts.append(Part("migrate", (PYTHON, "-m", "deployments.bootstrap", "migrate"), one_shot=True))
    if settings.prefect_api_url is None:
        parts.append(prefect_server_part(settings, ports, urls, prefect_database))
    parts += [
        Part(
            "receiver",
            (
                PYTHON,
                "-m",
                "uvicorn",
                "deployments.webhook:create_app_from_environment",
                "--factory",
                "--host",
                settings.bind,
                "--port",
                str(ports.webhook),
                "--log-level",
                "warning",
            ),
            needs=("migrate",),
            ready_url=f"http://{host}:{ports.webhook}/health",
            accept=(200, 503),
            start_seconds=90,
        ),
        Part(
            "dashboard",
            (PYTHON, "-m", "deployments.dashboard", "--port", str(ports.dashboard)),
            nice=5,
            ready_url=f"http://{host}:{ports.dashboard}/_stcore/health",
            start_seconds=90,
        ),
        Part(
            "setup",
            (PYTHON, "-m", "deployments.bootstrap", "setup", "--dashboard-url", urls.dashboard, "--prefect-ui-url", urls.prefect_ui),
            needs=("migrate",),
            one_shot=True,
            nice=10,  # it waits for Prefect itself, loading Prefect meanwhile
        ),
        Part(
            # The served runner and the transcriber share one process: both load Prefect's client, and apart
            # they take ~80 MB more. Not niced: the transcriber keeps an SLA.
            "serve",
            (PYTHON, "-m", "deployments.serve", "--with-transcriber"),
            needs=("setup",),
            ready_url=f"{urls.prefect_api}/deployments/name/{HEALTH_CHECK_DEPLOYMENT}",
            start_seconds=120,
            headers=prefect_headers(settings),
        ),
    ]
    return parts


def prefect_retention(settings: Settings) -> dict[str, str]:
    """Prefect's own retention: finished flow runs (with their logs and artifacts) and events past their settings go.

    Prefect 3.9.1 vacuums only events by default (after 7 days) and keeps flow runs for ever; the
    flow-run vacuum needs `flow_runs` among the enabled kinds. Runs are kept longer than any window the
    dashboard and the report read from Prefect (30 days).
    """
    return {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": str(settings.prefect_keep_runs_days * 86400),
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"P{settings.prefect_keep_events_days}D",
    }


def prefect_server_part(settings: Settings, ports: Ports, urls: Urls, prefect_database: str | None) -> Part:
    """Prefect's server on 127.0.0.1 (SQLite under VIGIA_HOME, or PostgreSQL), without the services Vigia does not use."""
    env = {**UNUSED_SERVER_SERVICES, **prefect_retention(settings)}
    if prefect_database:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = prefect_database
    if settings.prefect_auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = settings.prefect_auth_string
    skip_migrations = {"PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false"}
    if is_migrated(settings.home, "prefect", prefect_stamp(settings.home, prefect_database)):
        env.update(skip_migrations)  # this Prefect already migrated this database: no Alembic, a faster, smaller start
    return Part(
        "prefect-server",
        (PYTHON, "-m", "deployments.prefect_server", "--host", "127.0.0.1", "--port", str(ports.prefect), "--analytics-off"),
        ready_url=f"{urls.prefect_api}/health",
        start_seconds=180,
        env=env,
        headers=prefect_headers(settings),
        restart_env=skip_migrations,  # migrated by its first start
    )
