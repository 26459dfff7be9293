"""The `weekly-analytics` flow: the week's SLA table and breakdowns as artifacts, files and an email."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from prefect import flow, get_run_logger

from blocks.vigia import VigiaSettings
from tasks.alerts import raise_alert
from tasks.report_render import publish_artifacts, write_report
from tasks.run_failures import alert_on_failed_run
from tasks.run_names import weekly_run_name
from tasks.weekly_data import collect_weekly_data, parse_week
from tasks.workflow_runs import count_workflow_runs


@flow(
    name="weekly-analytics",
    description="The weekly SLA report: Prefect artifacts, PNG charts, CSVs, an HTML copy and an email.",
    flow_run_name=weekly_run_name,
    on_failure=[alert_on_failed_run("warning")],
    on_crashed=[alert_on_failed_run("warning")],
)
async def weekly_analytics(week: str | None = None, send_email: bool = True) -> str:
    """Report one ISO week (default: the previous one in VIGIA_TIMEZONE); re-running a week replaces its report.

    Args:
        week: ISO week to report, such as 2026-W46; leave empty for the previous full week in VIGIA_TIMEZONE.
        send_email: Send the report through the `report` alert tag (email), charts and CSVs attached.
    """
    logger = get_run_logger()
    try:
        settings = await VigiaSettings.aload("default")
    except ValueError as error:
        raise RuntimeError(f"vigia-settings/default could not be loaded ({error}); run `vigia setup`") from error
    chosen = parse_week(week, settings.timezone)
    before = chosen.before()
    workflows, workflows_before = await asyncio.gather(
        count_workflow_runs(chosen.start, chosen.end), count_workflow_runs(before.start, before.end)
    )
    report = collect_weekly_data(settings.database_url.get_secret_value(), chosen, workflows, workflows_before)
    rendered = write_report(report, Path(settings.home).expanduser() / "reports")
    await publish_artifacts(report)
    logger.info("weekly report %s written to %s", chosen.label, rendered.html_path)
    if send_email:
        await raise_alert(
            "report",
            f"Vigia weekly report {chosen.label}",
            rendered.html,
            key=f"weekly-report:{chosen.label}",
            cooldown=timedelta(0),
            html=True,
            attachments=[*rendered.chart_paths, *rendered.csv_paths],
        )
    return str(rendered.html_path)
