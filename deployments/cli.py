"""The `vigia` command line: up, setup, check, status."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated

import httpx
import typer

from deployments import alerting_cli, analytics_cli, backup_cli
from deployments.settings import Settings, SettingsError, load_settings
from deployments.up import Platform, PlatformError, Ports

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Vigia: operations for WhatsApp AI bots, on Prefect.",
)
DEFAULT_API_URL = "http://127.0.0.1:4200/api"


def main() -> None:
    """Entry point of the `vigia` script: a store problem is one line and exit 1, never a traceback."""
    from store.database import StoreError

    try:
        app()
    except StoreError as error:
        hint = "; migrate it with `vigia up` or `vigia setup`" if "no such table" in str(error) or "does not exist" in str(error) else ""
        typer.echo(f"vigia: {error}{hint}", err=True)
        sys.exit(1)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line instruction to stderr and return the exit to raise."""
    typer.echo(f"vigia: {message}", err=True)
    return typer.Exit(code)


def read_settings() -> Settings:
    """Load the settings, or exit 2 with one line per invalid variable."""
    try:
        return load_settings()
    except SettingsError as error:
        for problem in error.problems:
            typer.echo(f"vigia: {problem}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def prefect_api(settings: Settings):
    """Point Prefect at the platform's API and fail with an instruction when it does not answer."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    url = settings.prefect_api_url or DEFAULT_API_URL
    try:
        httpx.get(f"{url}/health", timeout=5).raise_for_status()
    except httpx.HTTPError:
        raise fail(f"the Prefect server at {url} does not answer; start the platform with `vigia up`") from None
    updates = {PREFECT_API_URL: url}
    if settings.prefect_auth_string:
        updates[PREFECT_API_AUTH_STRING] = settings.prefect_auth_string
    with temporary_settings(updates=updates):
        yield url


@app.command()
def up(
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    webhook_port: Annotated[int, typer.Option(help="Port of the webhook receiver.")] = 8787,
    dashboard_port: Annotated[int, typer.Option(help="Port of the SLA dashboard.")] = 8501,
) -> None:
    """Run the whole platform until Ctrl-C: Prefect server, store, Blocks, every deployment, the receiver, the dashboard."""
    from clients.notify import NotifyConfigError
    from store.database import StoreError, migrate

    settings = read_settings()
    if not settings.bind_is_loopback and not (settings.prefect_auth_string and settings.dashboard_password):
        raise fail(
            f"VIGIA_BIND={settings.bind} is not loopback: set PREFECT_SERVER_API_AUTH_STRING and VIGIA_DASHBOARD_PASSWORD first",
            2,
        )
    ports = Ports(prefect=prefect_port, webhook=webhook_port, dashboard=dashboard_port)
    platform = Platform(settings, ports, say=lambda line: typer.echo(f"vigia: {line}", err=True))
    # A process started in the background by a shell (or by a parent that ignores SIGINT)
    # inherits SIGINT as ignored; Ctrl-C and `kill -INT` must still stop the platform.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        platform.claim_home()
        migrate(settings.database_url)
        platform.start_prefect()
        with prefect_api(replace(settings, prefect_api_url=platform.api_url)):
            _print_setup(settings, ports)
        platform.start_services()
        ui = platform.api_url.removesuffix("/api")
        host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::") else settings.bind
        typer.echo(f"Prefect UI:       {ui}")
        typer.echo(f"webhook receiver: http://{host}:{ports.webhook}  (GET /health)")
        typer.echo(f"SLA dashboard:    http://{host}:{ports.dashboard}")
        typer.echo("Vigia is up; Ctrl-C stops everything.")
        platform.watch()
    except KeyboardInterrupt:
        typer.echo("vigia: stopping…", err=True)
    except (PlatformError, StoreError, NotifyConfigError) as error:
        raise fail(str(error)) from None
    finally:
        platform.stop()


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port of the dashboard (on VIGIA_BIND).")] = 8501,
) -> None:
    """Serve the read-only SLA dashboard (Streamlit) on VIGIA_BIND until Ctrl-C."""
    from deployments.dashboard import run_dashboard

    settings = read_settings()
    if not settings.bind_is_loopback and not settings.dashboard_password:
        raise fail(f"VIGIA_BIND={settings.bind} is not loopback: set VIGIA_DASHBOARD_PASSWORD first", 2)
    typer.echo(f"dashboard: http://{_shown_host(settings.bind)}:{port}", err=True)
    run_dashboard(settings, port)


@app.command()
def setup() -> None:
    """Migrate the store and create or update the Block documents from the settings (idempotent)."""
    from clients.notify import NotifyConfigError
    from store.database import migrate

    settings = read_settings()
    migrate(settings.database_url)
    with prefect_api(settings):
        try:
            _print_setup(settings, Ports())
        except NotifyConfigError as error:
            raise fail(str(error)) from None


@app.command()
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    confirm_after: Annotated[int, typer.Option(min=0, help="Seconds a failing target must keep failing to be DOWN.")] = 120,
) -> None:
    """Run the health check now; exit 1 when a critical target is DOWN."""
    settings = read_settings()
    with prefect_api(settings):
        from flows.health_check import MissingBlock, health_check

        try:
            states = asyncio.run(health_check(confirm_after_seconds=confirm_after))
        except MissingBlock as error:
            raise fail(str(error)) from None
    rows = [
        {"target": s.target, "state": s.state, "level": s.level, "critical": s.critical, "since": s.since.isoformat(), "reason": s.reason}
        for s in sorted(states.values(), key=lambda s: s.target)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            flag = "*" if row["critical"] else " "
            typer.echo(f"{flag}{row['target']:<24} {row['state']:<8} {row['level']:<8} {row['reason'] or ''}")
    down = [row["target"] for row in rows if row["critical"] and row["state"] == "DOWN"]
    if down:
        raise fail(f"critical targets DOWN: {', '.join(down)}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Show each target's state and uptime over 24 h, 7 d and 30 d (DESIGN §11)."""
    from store.database import StoreError, open_session
    from store.silences import active_silences
    from store.sla import WINDOWS, sla_summary, uptime_windows
    from store.states import read_states

    settings = read_settings()
    now = datetime.now(timezone.utc)
    try:
        with open_session(settings.database_url) as session:
            states = {state.target: state for state in read_states(session)}
            silenced = {silence.target for silence in active_silences(session, now)}
            windows = uptime_windows(session, now)
            summary = sla_summary(session, now - WINDOWS["7d"], now, now=now)
    except StoreError as error:
        raise fail(f"{error}; is the platform set up (`vigia up`)?") from None
    if not states:
        raise fail("no health check has run yet; run `vigia check` or wait for the schedule")
    rows = []
    for name, state in sorted(states.items()):
        shown = "MAINTENANCE" if name in silenced else state.state
        row = {"target": name, "state": shown, "critical": state.critical, "since": state.since.isoformat()}
        for window, report in windows.items():
            entry = next((u for u in report if u.target == name), None)
            row[f"uptime_{window}"] = None if entry is None or entry.percent is None else round(entry.percent, 3)
            row[f"unknown_{window}_s"] = None if entry is None else round(entry.unknown_seconds)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f" {'target':<24} {'state':<11} {'24h':>9} {'7d':>9} {'30d':>9}  unknown 24h")
    for row in rows:
        cells = [_percent(row[f"uptime_{w}"]) for w in ("24h", "7d", "30d")]
        flag = "*" if row["critical"] else " "
        typer.echo(f"{flag}{row['target']:<24} {row['state']:<11} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9}  {_duration(row['unknown_24h_s'])}")
    typer.echo("* critical: counts for the 99.5 % uptime SLA; unknown = no probe covered that time")
    typer.echo("\nSLA, last 7 days (error rate: transcriptions only; the report adds Prefect's flow runs):")
    for row in summary:
        verdict = {True: "ok", False: "MISSED", None: "no data"}[row.meets]
        typer.echo(f" {row.name:<17} {row.display:<34} target {row.target:<28} {verdict}")


def _shown_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind


def _stop_on_sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # a service manager's stop goes the same way as Ctrl-C


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "0"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m"


def _print_setup(settings: Settings, ports: Ports) -> None:
    from deployments.setup import run_setup

    ui_url = (settings.prefect_api_url or DEFAULT_API_URL).removesuffix("/api")
    report = run_setup(settings, dashboard_url=f"http://127.0.0.1:{ports.dashboard}", prefect_ui_url=ui_url)
    for line in report.lines:
        typer.echo(line)


alerting_cli.register(app, read_settings, fail)
backup_cli.register(app, read_settings, fail, prefect_api)
analytics_cli.register(app, read_settings, fail, prefect_api)


if __name__ == "__main__":
    sys.exit(main())
