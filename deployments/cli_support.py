"""What every `vigia` command shares: one-line failures, the settings, and finding the platform's Prefect API.

Nothing heavy is imported here at module level: `vigia --help`, `status`, `ack` and `silence` must
answer within a second.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

if TYPE_CHECKING:
    from deployments.settings import Settings

# Prefect's telemetry off, and no temporary ("ephemeral") Prefect server when no API is set:
# a command that needs Prefect finds the running platform or says that none is running.
QUIET_PREFECT = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
}


class _HelpUnsetIsFalse:
    """Typer (0.29) coerces an unset --help (None) through a pydantic TypeAdapter, and importing pydantic for it costs
    `vigia status` about 0.2 s. Left False, the flag is a bool already and nothing is coerced; --help is unchanged."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.default = False
        return option


class VigiaGroup(_HelpUnsetIsFalse, TyperGroup):
    """The `cls` of a `vigia` command group (typer.Typer(cls=…)): a command with only flags loads no pydantic."""


class VigiaCommand(_HelpUnsetIsFalse, TyperCommand):
    """The `cls` of a `vigia` command (app.command(cls=…)): a command with only flags loads no pydantic."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line instruction to stderr and return the exit to raise."""
    typer.echo(f"vigia: {message}", err=True)
    return typer.Exit(code)


def say(message: str) -> None:
    """Print a progress line to stderr."""
    typer.echo(f"vigia: {message}", err=True)


def quiet_prefect(environ: dict[str, str] | None = None) -> None:
    """Set this process up so that Prefect sends no telemetry and writes nothing to ~/.prefect.

    PREFECT_HOME goes under VIGIA_HOME (where `vigia up` puts its children's) unless it is set already.
    """
    environ = os.environ if environ is None else environ
    environ.update(QUIET_PREFECT)
    if "PREFECT_HOME" not in environ:
        environ["PREFECT_HOME"] = str(_vigia_home(environ) / "prefect")


def read_settings() -> Settings:
    """Load the settings, or exit 2 with one line per invalid variable (deployments.settings.load_settings_or_exit)."""
    from deployments.settings import load_settings_or_exit

    return load_settings_or_exit()


def platform_api_url(settings: Settings) -> str:
    """The Prefect API to use: PREFECT_API_URL when set, else the one the platform running on VIGIA_HOME recorded.

    Raises:
        typer.Exit: (1) with a one-line instruction when no platform runs on VIGIA_HOME.
    """
    from deployments.platform_state import running_platform

    if settings.prefect_api_url:
        return settings.prefect_api_url
    state = running_platform(settings.home)
    if state is None or not state.prefect_api_url:
        raise fail(f"no platform is running on VIGIA_HOME={settings.home}; start it with `vigia up` (or set PREFECT_API_URL)")
    return state.prefect_api_url


def prefect_auth(settings: Settings) -> tuple[str, str] | None:
    """Basic-auth credentials for Prefect's API, from PREFECT_SERVER_API_AUTH_STRING (`user:password`)."""
    if not settings.prefect_auth_string:
        return None
    user, _, password = settings.prefect_auth_string.partition(":")
    return user, password


def answering_api_url(settings: Settings) -> str:
    """The platform's Prefect API URL once it answers /health.

    Raises:
        typer.Exit: (1) naming the URL and the next step when nothing answers.
    """
    import httpx

    url = platform_api_url(settings)
    try:
        httpx.get(f"{url}/health", timeout=5, auth=prefect_auth(settings)).raise_for_status()
    except httpx.HTTPError:
        raise fail(f"the Prefect server at {url} does not answer; start the platform with `vigia up`") from None
    return url


@contextmanager
def prefect_api(settings: Settings):
    """Point Prefect's client in this process at the platform's API; fail with an instruction when it does not answer."""
    url = answering_api_url(settings)
    with _pointed_at(url, settings):
        yield url


@contextmanager
def prefect_api_if_running(settings: Settings):
    """Point Prefect's client at the platform's API when one is known (for Secret blocks), else go on without one."""
    from deployments.platform_state import running_platform

    state = None if settings.prefect_api_url else running_platform(settings.home)
    url = settings.prefect_api_url or (state.prefect_api_url if state else None)
    if url is None:
        yield None
        return
    with _pointed_at(url, settings):
        yield url


def run_deployment(settings: Settings, deployment: str, parameters: dict, verbose: bool, artifact_key: str | None = None):
    """Create a run of `deployment` on the platform and follow it to its end; return its `FinishedRun`.

    With `artifact_key`, a completed run's table artifact of that key comes back in `FinishedRun.artifact`.

    Progress lines (and, when `verbose`, the run's log lines) go to stderr; Ctrl-C cancels the run.

    Raises:
        typer.Exit: (1) when no platform answers or Prefect refuses the run.
    """
    from deployments.deployment_runs import DeploymentRun, DeploymentRunError

    runs = DeploymentRun(answering_api_url(settings), prefect_auth(settings), say=lambda line: say(f"{deployment}: {line}"))
    try:
        run = runs.start(deployment, parameters)
        try:
            finished = runs.follow(run, verbose, on_log=lambda line: typer.echo(line, err=True))
        except KeyboardInterrupt:
            runs.cancel(run["id"])
            raise fail(f"{deployment}: run {run['name']} cancelled", 130) from None
        if finished.ok and artifact_key:
            finished = replace(finished, artifact=runs.table_artifact(finished.id, artifact_key))
        return finished
    except DeploymentRunError as error:
        raise fail(str(error)) from None
    finally:
        runs.close()


@contextmanager
def _pointed_at(url: str, settings: Settings):
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: url}
    if settings.prefect_auth_string:
        updates[PREFECT_API_AUTH_STRING] = settings.prefect_auth_string
    with temporary_settings(updates=updates):
        yield


def _vigia_home(environ) -> Path:
    home = environ.get("VIGIA_HOME")
    if not home and Path(".env").is_file():
        from dotenv import dotenv_values

        home = dotenv_values(".env").get("VIGIA_HOME")
    return Path(home or "~/.vigia").expanduser()
