"""The `vigia` command line: up, setup, check, status, and the command groups of the other *_cli modules."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from deployments import alerting_cli, analytics_cli, backup_cli
from deployments.cli_support import VigiaCommand, VigiaGroup, fail, prefect_api, quiet_prefect, read_settings, run_deployment

if TYPE_CHECKING:
    from deployments.settings import Settings

app = typer.Typer(
    cls=VigiaGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Vigia: operations for WhatsApp AI bots, on Prefect.",
)
HEALTH_CHECK = "health-check/every-5-min"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8501"


def main() -> None:
    """Entry point of the `vigia` script: a store problem is one line and exit 1, never a traceback."""
    try:
        app()
    except Exception as error:
        database = sys.modules.get("store.database")  # never imported here: `vigia --help` must not load SQLAlchemy
        if database is None or not isinstance(error, database.StoreError):
            raise
        hint = "; migrate it with `vigia up` or `vigia setup`" if "no such table" in str(error) or "does not exist" in str(error) else ""
        typer.echo(f"vigia: {error}{hint}", err=True)
        sys.exit(1)


@app.callback()
def _before_every_command() -> None:
    # Before any Prefect import: no telemetry, no temporary server, nothing under ~/.prefect.
    quiet_prefect()


@app.command(cls=VigiaCommand)
def up(
    prefect_port: Annotated[int, typer.Option(help="Port of the Prefect server and UI.")] = 4200,
    webhook_port: Annotated[int, typer.Option(help="Port of the webhook receiver.")] = 8787,
    dashboard_port: Annotated[int, typer.Option(help="Port of the SLA dashboard.")] = 8501,
    only: Annotated[
        str, typer.Option(help="Run only these parts on this host, a comma list of: server, receiver, dashboard, runner, transcriber.")
    ] = "",
) -> None:
    """Run the whole platform until Ctrl-C: Prefect server, store, Blocks, every deployment, the receiver, the dashboard."""
    # The supervisor stays up as long as the platform: this process becomes it (`python -m deployments.up`, same pid,
    # so `uv run`'s and a terminal's signals reach it as before), leaving Typer, pydantic and the CLI's imports behind.
    ports = ("--prefect-port", str(prefect_port), "--webhook-port", str(webhook_port), "--dashboard-port", str(dashboard_port))
    if only:
        ports += ("--only", only)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "deployments.up", *ports])


@app.command(cls=VigiaCommand)
def worker(
    name: Annotated[str, typer.Option(help="The worker's name in the Prefect UI (default: vigia-HOST-PID).")] = "",
    queue: Annotated[str, typer.Option(help="Take runs from this work queue of the pool only (default: all).")] = "",
) -> None:
    """Run a Prefect process worker on work pool vigia with Vigia's environment until Ctrl-C or SIGTERM (README: roles)."""
    # Like `up`: this process becomes the light parent (`python -m deployments.worker`) that turns SIGTERM into the
    # SIGINT an idle Prefect worker obeys.
    options = (("--name", name) if name else ()) + (("--queue", queue) if queue else ())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "deployments.worker", *options])


@app.command(cls=VigiaCommand)
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


@app.command(cls=VigiaCommand)
def setup() -> None:
    """Migrate the store and create or update the Block documents on the running platform (idempotent)."""
    from clients.notify import NotifyConfigError
    from store.database import migrate

    settings = read_settings()
    migrate(settings.database_url)
    with prefect_api(settings) as api_url:
        try:
            _print_setup(settings, api_url)
        except NotifyConfigError as error:
            raise fail(str(error)) from None


@app.command(cls=VigiaCommand)
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    confirm_after: Annotated[int, typer.Option(min=0, help="Seconds a failing target must keep failing to be DOWN.")] = 120,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show the run's Prefect log lines.")] = False,
) -> None:
    """Run the health check now, as a run of health-check/every-5-min on the platform; exit 1 when a critical target is DOWN."""
    settings = read_settings()
    finished = run_deployment(settings, HEALTH_CHECK, {"confirm_after_seconds": confirm_after}, verbose, artifact_key="health-check")
    if not finished.ok:
        _, text = finished.error()
        raise fail(text or f"{HEALTH_CHECK}: run {finished.name} ended {finished.state_name}")
    rows = _check_rows(settings, finished.artifact)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            flag = "*" if row["critical"] else " "
            typer.echo(f"{flag}{row['target']:<24} {row['state']:<8} {row['level']:<8} {row['reason'] or ''}")
    down = [row["target"] for row in rows if row["critical"] and row["state"] == "DOWN"]
    if down:
        raise fail(f"critical targets DOWN: {', '.join(down)}")


@app.command(cls=VigiaCommand)
def prune(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted; change nothing.")] = False) -> None:
    """Apply the store's retention now: roll up complete hours, delete rows past VIGIA_KEEP_PROBES_DAYS and
    VIGIA_KEEP_HISTORY_DAYS, spooled audio and transcripts no longer kept (VIGIA_KEEP_TRANSCRIPTS, _DAYS), compact a
    SQLite store (maintenance/daily does it every night)."""
    from store.retention import Limits, apply_retention

    settings = read_settings()
    limits = Limits(
        probe_days=settings.keep_probes_days,
        history_days=settings.keep_history_days,
        transcript_days=settings.keep_transcripts_days,
        keep_transcripts=settings.keep_transcripts,
    )
    spool_dir = settings.home / "spool" / "voice-notes"
    report = apply_retention(settings.database_url, datetime.now(timezone.utc), limits, dry_run=dry_run, spool_dir=spool_dir)
    for name, count in report.pruned.tables.items():
        typer.echo(f" {name:<24} {count:>10}")
    typer.echo(report.describe())


def _check_rows(settings: Settings, artifact: list[dict]) -> list[dict]:
    """Each target the run probed, as the run's artifact shows it, with `critical` and `since` from the store."""
    from store.database import open_session
    from store.states import read_states

    with open_session(settings.database_url) as session:
        stored = {state.target: state for state in read_states(session)}
    rows = []
    for shown in sorted(artifact, key=lambda row: row["target"]):
        state = stored.get(shown["target"])
        rows.append(
            {
                "target": shown["target"],
                "state": shown["state"],
                "level": shown["level"],
                "critical": bool(state and state.critical),
                "since": state.since.isoformat() if state else shown["since"],
                "reason": shown.get("reason") or None,
            }
        )
    return rows


@app.command(cls=VigiaCommand)
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Show each target's state and uptime over 24 h, 7 d and 30 d (DESIGN §11)."""
    from store.conversations import chats_waiting, conversation_figures
    from store.database import StoreError, open_session
    from store.silences import active_silences
    from store.sla import WINDOWS, sla_summary, uptime_windows
    from store.states import read_states

    settings = read_settings()
    now = datetime.now(timezone.utc)
    target = timedelta(seconds=settings.response_target_seconds)
    try:
        with open_session(settings.database_url) as session:
            states = {state.target: state for state in read_states(session)}
            silenced = {silence.target for silence in active_silences(session, now)}
            windows = uptime_windows(session, now)
            summary = sla_summary(session, now - WINDOWS["7d"], now, now=now, zone=settings.timezone)
            bot = conversation_figures(session, now - WINDOWS["24h"], now, target=target)
            waiting = chats_waiting(session, now, target=target)
    except StoreError as error:
        raise fail(f"{error}; is the platform set up (`vigia up`)?") from None
    if not states:
        raise fail("no health check has run yet; run `vigia check` or wait for the schedule")
    rows = [_status_row(name, state, name in silenced, windows) for name, state in sorted(states.items())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f" {'target':<24} {'state':<11} {'24h':>9} {'7d':>9} {'30d':>9}  unknown 24h")
    for row in rows:
        cells = [_percent(row[f"uptime_{w}"]) for w in ("24h", "7d", "30d")]
        flag = "*" if row["critical"] else " "
        typer.echo(
            f"{flag}{row['target']:<24} {row['state']:<11} {cells[0]:>9} {cells[1]:>9} {cells[2]:>9}  {_duration(row['unknown_24h_s'])}"
        )
    typer.echo("* critical: counts for the 99.5 % uptime SLA; unknown = no probe covered that time")
    typer.echo("\nSLA, last 7 days (error rate: transcriptions only; the report adds Prefect's flow runs):")
    for row in summary:
        verdict = {True: "ok", False: "MISSED", None: "no data"}[row.meets]
        typer.echo(f" {row.name:<17} {row.display:<34} target {row.target:<28} {verdict}")
    typer.echo(f"\n{_bot_line(bot, waiting)}")


def _bot_line(bot, waiting: int) -> str:
    if not bot.messages_in and not bot.messages_out:
        return "The bot, last 24 h: no chat messages recorded (Evolution's webhook needs MESSAGES_UPSERT and SEND_MESSAGE)"
    reply = "no answer to time" if bot.response_p95 is None else f"reply p95 {bot.response_p95:.1f} s"
    return (
        f"The bot, last 24 h: {reply} (target {bot.target_seconds:.0f} s), {bot.unanswered} of {bot.messages_in} "
        f"customer messages unanswered, {waiting} chats waiting now"
    )


def _status_row(name: str, state, silenced: bool, windows: dict) -> dict:
    row = {
        "target": name,
        "state": "MAINTENANCE" if silenced else state.state,
        "critical": state.critical,
        "since": state.since.isoformat(),
    }
    for window, report in windows.items():
        entry = next((u for u in report if u.target == name), None)
        row[f"uptime_{window}"] = None if entry is None or entry.percent is None else round(entry.percent, 3)
        row[f"unknown_{window}_s"] = None if entry is None else round(entry.unknown_seconds)
    return row


def _shown_host(bind: str) -> str:
    return "127.0.0.1" if bind in ("0.0.0.0", "::") else bind


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}%"


def _duration(seconds: int | None) -> str:
    if not seconds:
        return "0"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m"


def _print_setup(settings: Settings, api_url: str) -> None:
    from deployments.platform_state import running_platform
    from deployments.setup import run_setup

    state = running_platform(settings.home)
    dashboard_url = (state.dashboard_url if state else None) or DEFAULT_DASHBOARD_URL
    report = run_setup(settings, dashboard_url=dashboard_url, prefect_ui_url=api_url.removesuffix("/api"))
    for line in report.lines:
        typer.echo(line)


app.command(cls=VigiaCommand)(alerting_cli.ack)
app.command(cls=VigiaCommand)(backup_cli.restore)
app.command(cls=VigiaCommand)(analytics_cli.report)
app.command("demo-data", cls=VigiaCommand)(analytics_cli.demo_data)
app.add_typer(backup_cli.backup_app, name="backup")
app.add_typer(alerting_cli.silence_app, name="silence")
app.add_typer(alerting_cli.alert_app, name="alert")


if __name__ == "__main__":
    sys.exit(main())
