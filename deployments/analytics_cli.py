"""`vigia report` and `vigia demo-data`: the weekly report on demand, and a synthetic history to try it on."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated

import typer

from deployments.cli_support import fail, read_settings, run_deployment

if TYPE_CHECKING:
    from deployments.settings import Settings

DEPLOYMENT = "weekly-analytics/weekly"


def report(
    week: Annotated[str | None, typer.Option(help="ISO week such as 2026-W46; default: the previous full week.")] = None,
    email: Annotated[bool, typer.Option("--email/--no-email", help="Also send it through the `report` alert tag.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show the run's Prefect log lines.")] = False,
) -> None:
    """Build the weekly report now, as a run of weekly-analytics/weekly on the platform, and print where it went."""
    settings = read_settings()
    from tasks.weekly_data import parse_week

    try:
        chosen = parse_week(week, settings.timezone)
    except ValueError as error:
        raise fail(str(error), 2) from None
    finished = run_deployment(settings, DEPLOYMENT, {"week": chosen.label, "send_email": email}, verbose)
    if not finished.ok:
        _, text = finished.error()
        raise fail(text or f"{DEPLOYMENT}: run {finished.name} ended {finished.state_name}")
    typer.echo(f"weekly report: {settings.home / 'reports' / f'{chosen.label}.html'}")


def demo_data(
    days: Annotated[int, typer.Option(min=1, max=800, help="Days of history to generate, ending now.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same history.")] = 7,
    notes_per_day: Annotated[int, typer.Option(min=0, help="Voice notes per day.")] = 280,
    chats_per_day: Annotated[int, typer.Option(min=0, help="Conversations per day with the bot (0: none).")] = 150,
) -> None:
    """Fill an empty store with a synthetic history: targets, incidents, voice notes, backups, alerts, conversations."""
    typer.echo(seed_demo_history(read_settings(), days, seed, notes_per_day, chats_per_day))


def seed_demo_history(settings: Settings, days: int, seed: int, notes_per_day: int, chats_per_day: int = 150) -> str:
    """Migrate the store and write the demo history; return the line to print."""
    from store.database import migrate, open_session
    from store.demo import seed_history
    from store.probe_hours import roll_up_pending_hours

    migrate(settings.database_url)
    try:
        with open_session(settings.database_url) as session:
            summary = seed_history(
                session, days=days, seed=seed, notes_per_day=notes_per_day, chats_per_day=chats_per_day, now=datetime.now(timezone.utc)
            )
    except ValueError as error:
        raise fail(str(error)) from None
    hours = roll_up_pending_hours(settings.database_url, datetime.now(timezone.utc))  # as the health checks would have
    counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in summary.rows.items())
    return f"demo history {summary.start:%Y-%m-%d %H:%M} → {summary.end:%Y-%m-%d %H:%M} UTC: {counts}; {hours} hours rolled up"
