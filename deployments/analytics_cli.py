"""`vigia report` and `vigia demo-data`: the weekly report on demand, and a synthetic history to try it on."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated

import typer

from deployments.settings import Settings


def register(app: typer.Typer, read_settings, fail, prefect_api) -> None:
    """Add the analytics commands to the `vigia` app."""

    @app.command()
    def report(
        week: Annotated[str | None, typer.Option(help="ISO week such as 2026-W46; default: the previous full week.")] = None,
        email: Annotated[bool, typer.Option("--email/--no-email", help="Also send it through the `report` alert tag.")] = True,
    ) -> None:
        """Build the weekly report now (a `weekly-analytics` run in the Prefect UI) and print where it went."""
        settings = read_settings()
        from tasks.weekly_data import parse_week

        try:
            parse_week(week, settings.timezone)
        except ValueError as error:
            raise fail(str(error), 2) from None
        with prefect_api(settings):
            from flows.weekly_analytics import weekly_analytics

            try:
                path = asyncio.run(weekly_analytics(week=week, send_email=email))
            except RuntimeError as error:
                raise fail(str(error)) from None
        typer.echo(f"weekly report: {path}")

    @app.command("demo-data")
    def demo_data(
        days: Annotated[int, typer.Option(min=1, max=800, help="Days of history to generate, ending now.")] = 30,
        seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same history.")] = 7,
        notes_per_day: Annotated[int, typer.Option(min=0, help="Voice notes per day.")] = 280,
    ) -> None:
        """Fill an empty store with a synthetic history: targets, incidents, voice notes, backups, alerts."""
        typer.echo(seed_demo_history(read_settings(), days, seed, notes_per_day, fail))


def seed_demo_history(settings: Settings, days: int, seed: int, notes_per_day: int, fail) -> str:
    """Migrate the store and write the demo history; return the line to print."""
    from store.database import migrate, open_session
    from store.demo import seed_history

    migrate(settings.database_url)
    try:
        with open_session(settings.database_url) as session:
            summary = seed_history(session, days=days, seed=seed, notes_per_day=notes_per_day, now=datetime.now(timezone.utc))
    except ValueError as error:
        raise fail(str(error)) from None
    counts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in summary.rows.items())
    return f"demo history {summary.start:%Y-%m-%d %H:%M} → {summary.end:%Y-%m-%d %H:%M} UTC: {counts}"
