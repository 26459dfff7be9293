"""The parts `vigia up` runs, what each needs first and how each is known to be ready; the environment they share."""

from __future__ import annotations

import base64
import os
import socket
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
HEARTBEAT_SECONDS = "30"  # tasks.zombies.HEARTBEAT_SECONDS (not imported: the supervisor loads no Prefect)
UNUSED_SERVER_SERVICES = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_LOGGER_ENABLED": "false",
}
PREFECT_DATABASE_SCHEMES = ("postgresql+asyncpg", "postgresql", "postgres")
# `vigia up --only ROLE,…` (README: "From one machine to several"): each role is one service part; the one-shot steps
# a chosen part needs (migrate, setup) come along. The transcriber role is for a host without a runner, which hosts one.
ROLES = {"server": "prefect-server", "receiver": "receiver", "dashboard": "dashboard", "runner": "serve", "transcriber": "transcriber"}
DEFAULT_ROLES = ("server", "receiver", "dashboard", "runner")
RUNNER_POLL_SECONDS = 1  # how often the served runner asks Prefect for runs to start (its default is 10)
# Prefect's runner webserver answers /health 503 once the runner has missed this many polls; `vigia up` restarts it
# after RUNNER_UNHEALTHY_SECONDS of that (a hung or SIGSTOPped runner alive but starting nothing).
RUNNER_MISSED_POLLS = 10
RUNNER_UNHEALTHY_SECONDS = 30


class PartsError(Exception):
    """A setting the parts need is invalid; the message names the variable and what it accepts."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens."""

    prefect: int = 4200
    webhook: int = 8787
    dashboard: int = 8501
    runner: int = 0  # the served runner's health endpoint, on 127.0.0.1; 0: none (`vigia up` picks a free port)


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
        prefect_api=settings.prefect_api_url or f"http://{host}:{ports.prefect}/api",
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
            # Every run beats every 30 s (Prefect's default 180), so the zombie sweep finds a dead one within 2 min.
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT_SECONDS,
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


def parse_roles(text: str | None) -> tuple[str, ...]:
    """The roles `--only` names (a comma list); every default role when it is not given.

    Raises:
        PartsError: naming an unknown role and listing the valid ones.
    """
    if text is None:
        return DEFAULT_ROLES
    roles = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in roles if name not in ROLES]
    if unknown or not roles:
        named = f"unknown part {', '.join(repr(name) for name in unknown)}" if unknown else "no part named"
        raise PartsError(f"--only: {named}; valid: {', '.join(ROLES)}")
    return roles


def build_parts(
    settings: Settings, ports: Ports, urls: Urls, prefect_database: str | None, roles: tuple[str, ...] = DEFAULT_ROLES
) -> list[Part]:
    """The parts of the platform `roles` name (every one by default), with the one-shot steps they need: the store's
    migration, Prefect and the dashboard start together; the receiver waits for the migration; setup for it too (and
    for Prefect's API, by itself); the runner (hosting a transcriber) for setup. The runner and setup run at a lower
    priority, behind the parts people open."""
    return _chosen(_every_part(settings, ports, urls, prefect_database), roles)


def _chosen(parts: list[Part], roles: tuple[str, ...]) -> list[Part]:
    """The parts `roles` name, plus the one-shot steps they need (transitively); a service they need runs elsewhere."""
    by_name = {part.name: part for part in parts}
    wanted = [ROLES[role] for role in roles if ROLES[role] in by_name]
    for name in wanted:
        wanted += [need for need in by_name[name].needs if need in by_name and by_name[need].one_shot and need not in wanted]
    return [part for part in parts if part.name in wanted]


def _every_part(settings: Settings, ports: Ports, urls: Urls, prefect_database: str | None) -> list[Part]:
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
            # "Run" or "Retry" in the UI starts within ~1 s instead of up to Prefect's default 10 s poll.
            env={"PREFECT_RUNNER_POLL_FREQUENCY": str(RUNNER_POLL_SECONDS), **runner_health_env(ports)},
            health_url=f"http://127.0.0.1:{ports.runner}/health" if ports.runner else None,
            health_gate_url=f"{urls.prefect_api}/health",
            unhealthy_seconds=RUNNER_UNHEALTHY_SECONDS,
        ),
        Part("transcriber", (PYTHON, "-m", "deployments.transcriber"), needs=("setup",)),  # only on its own (`--only transcriber`)
    ]
    return parts


def free_loopback_port() -> int:
    """A port nothing listens on at 127.0.0.1 now (the served runner's health endpoint takes it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def runner_health_env(ports: Ports) -> dict[str, str]:
    """Prefect's runner webserver on 127.0.0.1 (its /shutdown has no auth), answering /health while the runner polls."""
    if not ports.runner:
        return {}
    return {
        "PREFECT_RUNNER_SERVER_ENABLE": "true",
        "PREFECT_RUNNER_SERVER_HOST": "127.0.0.1",
        "PREFECT_RUNNER_SERVER_PORT": str(ports.runner),
        "PREFECT_RUNNER_SERVER_MISSED_POLLS_TOLERANCE": str(RUNNER_MISSED_POLLS),
    }


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
    """Prefect's server on VIGIA_BIND (127.0.0.1 unless set; `vigia up` refuses another address without Prefect's auth
    string), on SQLite under VIGIA_HOME or PostgreSQL, without the services Vigia does not use, with its retention."""
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
        (PYTHON, "-m", "deployments.prefect_server", "--host", settings.bind, "--port", str(ports.prefect), "--analytics-off"),
        ready_url=f"{urls.prefect_api}/health",
        start_seconds=180,
        env=env,
        headers=prefect_headers(settings),
        restart_env=skip_migrations,  # migrated by its first start
    )
