"""`vigia ack`, `vigia silence …` and `vigia alert test`: acting on alerts at 3 a.m., without the Prefect UI."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from deployments.cli_support import fail, read_settings

if TYPE_CHECKING:
    from deployments.settings import Settings

silence_app = typer.Typer(no_args_is_help=True, help="Hold a target's notifications for a maintenance window.")
alert_app = typer.Typer(no_args_is_help=True, help="Check the alert routing.")
_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
SEVERITIES = ("info", "warning", "critical", "emergency", "report")  # clients.notify's, without loading Apprise


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `30m`, `2h` or `1d`.

    Raises:
        typer.BadParameter: for anything else.
    """
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def acknowledge(settings: Settings, incident: int, reason: str) -> str:
    """Acknowledge an incident; return the line to print.

    Raises:
        LookupError, ValueError: for an unknown, resolved or acknowledged incident.
    """
    from store.database import open_session
    from store.incidents import acknowledge_incident

    with open_session(settings.database_url) as session:
        acknowledged = acknowledge_incident(session, incident, reason, datetime.now(timezone.utc))
    return f"incident {acknowledged.id} ({acknowledged.target}) acknowledged: no more reminders or escalation"


def silence_target(settings: Settings, target: str, length: timedelta, reason: str) -> str:
    """Silence a known target from now on; return the line to print.

    Raises:
        LookupError: for a target the health check has never probed.
    """
    from store.database import open_session
    from store.silences import add_silence
    from store.sla.freshness import format_local
    from store.states import read_states

    now = datetime.now(timezone.utc)
    with open_session(settings.database_url) as session:
        known = sorted(state.target for state in read_states(session))
        if target not in known:
            raise LookupError(f"unknown target {target!r}; known: {', '.join(known) or 'none yet'}")
        silence = add_silence(session, target, now, now + length, reason)
    return f"silence {silence.id}: {target} held until {format_local(silence.ends_at, settings.timezone)} ({reason})"


def send_test_alert(settings: Settings, severity: str) -> list[tuple[str, str, str]]:
    """Send a test alert through VIGIA_APPRISE_CONFIG; return (channel, status, reason) per channel.

    Raises:
        NotifyConfigError: when the config is unusable.
        StoreError: when the store cannot be used, e.g. it was never migrated.
    """
    # Prefect and Apprise load only here: `ack` and `silence` must answer fast at 3 a.m.
    from blocks.alert_routes import AlertRoutes
    from clients.notify import NotifyConfigError, Router, read_config
    from store.alerts import list_deliveries
    from store.database import open_session
    from store.sla.freshness import format_local
    from store.states import down_kinds
    from tasks.alerts import AlertContext, AlertSpec, deliver_alert
    from tasks.messages import Links

    if settings.apprise_config is None:
        raise NotifyConfigError("VIGIA_APPRISE_CONFIG is not set: there is no channel to test")
    path = settings.apprise_config
    text, config_format = read_config(path)
    router = Router(text, f"VIGIA_APPRISE_CONFIG {path}", config_format)
    with open_session(settings.database_url) as session:
        down = down_kinds(session)
    context = AlertContext(
        settings.database_url,
        router,
        AlertRoutes(source=str(path)),
        Links(None, None),
        None,
        down,
        settings.timezone,
    )
    now = datetime.now(timezone.utc)
    spec = AlertSpec(
        key=f"test:{now.isoformat()}",
        kind="test",
        severity=severity,
        title=f"[{severity.upper()}] Vigia test alert",
        body=f"A test of the {severity!r} route, sent by `vigia alert test` at {format_local(now, settings.timezone)}.",
    )
    alert = asyncio.run(deliver_alert(context, spec, now))
    with open_session(settings.database_url) as session:
        return [(d.channel, d.status, d.reason or "") for d in list_deliveries(session, alert.id)]


def ack(
    incident: Annotated[int, typer.Argument(help="The incident id, as the alerts print it.")],
    reason: Annotated[str, typer.Option(help="Why, for the record: who is on it.")],
) -> None:
    """Acknowledge an incident: its reminders and escalation stop."""
    try:
        typer.echo(acknowledge(read_settings(), incident, reason))
    except (LookupError, ValueError) as error:  # a StoreError goes on to main(), which words it for every command
        raise fail(str(error).strip("'\"")) from None


@silence_app.command("add")
def silence_add(
    target: Annotated[str, typer.Argument(help="The target to silence.")],
    length: Annotated[str, typer.Option("--for", help="How long: 30m, 2h, 1d.")],
    reason: Annotated[str, typer.Option(help="Why: the maintenance being done.")],
) -> None:
    """Hold a target's notifications for a while; the time counts as MAINTENANCE."""
    try:
        typer.echo(silence_target(read_settings(), target, parse_duration(length), reason))
    except typer.BadParameter as error:
        raise fail(f"--for: {error}", 2) from None
    except (LookupError, ValueError) as error:  # a StoreError goes on to main(), which words it for every command
        raise fail(str(error).strip("'\"")) from None


@silence_app.command("list")
def silence_list() -> None:
    """List the silences in force."""
    from store.database import open_session
    from store.silences import active_silences
    from store.sla.freshness import format_local

    settings = read_settings()
    with open_session(settings.database_url) as session:
        silences = active_silences(session, datetime.now(timezone.utc))
    for silence in silences:
        typer.echo(f"{silence.id:>4}  {silence.target:<24} until {format_local(silence.ends_at, settings.timezone)}  {silence.reason}")
    if not silences:
        typer.echo("no silence in force")


@silence_app.command("remove")
def silence_remove(silence: Annotated[int, typer.Argument(help="The silence id, from `vigia silence list`.")]) -> None:
    """End a silence now."""
    from store.database import open_session
    from store.silences import remove_silence

    settings = read_settings()
    with open_session(settings.database_url) as session:
        removed = remove_silence(session, silence, datetime.now(timezone.utc))
    if not removed:
        raise fail(f"no silence {silence} in force; see `vigia silence list`")
    typer.echo(f"silence {silence} removed")


@alert_app.command("test")
def alert_test(
    severity: Annotated[str, typer.Option(help=f"The route to test: {', '.join(SEVERITIES)}.")] = "critical",
) -> None:
    """Send a test alert through the routing; one line per channel; exit 1 when none succeeded."""
    from clients.notify import NotifyConfigError

    if severity not in SEVERITIES:
        raise fail(f"--severity: {severity!r} is not one of {', '.join(SEVERITIES)}", 2)
    try:
        results = send_test_alert(read_settings(), severity)
    except NotifyConfigError as error:
        raise fail(str(error)) from None
    # A StoreError goes on to main(), which words it for every command (an un-migrated store gets the setup hint).
    for channel, status, reason in results:
        typer.echo(f"{status:<8} {channel}{'  ' + reason if reason else ''}")
    if not results:
        raise fail(f"no channel has the tag {severity!r}")
    if not any(status == "success" for _, status, _ in results):
        raise fail("no channel succeeded")
