"""The weekly report as Prefect artifacts, CSV files, an HTML page and an email through the `report` tag."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.charts import draw_charts
from tasks.weekly_data import WeeklyReport

SECTIONS = (
    ("sla", "SLA"),
    ("targets", "Targets"),
    ("transcriptions", "Transcriptions"),
    ("transcription-failures", "Transcriptions failed or skipped, by reason"),
    ("busiest-hours", "Busiest hours (local time)"),
    ("workflows", "Workflow runs (Prefect)"),
    ("backups", "Backups"),
    ("restores", "Restores"),
    ("alerts", "Alerts by severity"),
    ("deliveries", "Deliveries by channel"),
)


@dataclass(frozen=True)
class RenderedReport:
    """Where the week's report was written."""

    html_path: Path
    csv_paths: tuple[Path, ...]
    chart_paths: tuple[Path, ...]
    html: str


@task(name="write-weekly-report", cache_policy=NO_CACHE)
def write_report(report: WeeklyReport, reports_dir: Path) -> RenderedReport:
    """Write `<week>.html` (charts inline) and `<week>/` (CSVs and PNGs), replacing an earlier copy of that week."""
    folder = reports_dir / report.week.label
    folder.mkdir(parents=True, exist_ok=True)
    for stale in list(folder.glob("*.csv")) + list(folder.glob("*.png")):
        stale.unlink()
    csvs = []
    for key, _ in SECTIONS:
        path = folder / f"{key}.csv"
        report.tables[key].to_csv(path, index=False)
        csvs.append(path)
    charts = draw_charts(report.tables, folder)
    page = render_html(report, {path.name: path.read_bytes() for path in charts})
    html_path = reports_dir / f"{report.week.label}.html"
    partial = html_path.with_suffix(".html.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(html_path)
    return RenderedReport(html_path, tuple(csvs), tuple(charts), render_html(report, {}))


@task(name="publish-weekly-artifacts", cache_policy=NO_CACHE)
async def publish_artifacts(report: WeeklyReport) -> None:
    """Publish the markdown artifact `weekly-report` and one table artifact per section (`weekly-<section>`)."""
    await create_markdown_artifact(markdown=render_markdown(report), key="weekly-report", description=f"Weekly report {report.week.label}")
    for key, title in SECTIONS:
        if key == "sla":
            continue
        table = report.tables[key]
        await create_table_artifact(
            table=_records(table),
            key=artifact_key(f"weekly-{key}"),
            description=f"{title}, {report.week.label}",
        )


def artifact_key(text: str) -> str:
    """Return an artifact key Prefect accepts: lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def render_markdown(report: WeeklyReport) -> str:
    """Return the report as markdown: headline, the SLA table, then every section."""
    week = report.week
    lines = [f"# Vigia weekly report {week.label}", "", f"{_window(report)}", ""]
    lines += _headline(report) + [""]
    for key, title in SECTIONS:
        lines += [f"## {title}", "", _markdown_table(report.tables[key]), ""]
    return "\n".join(lines)


def render_html(report: WeeklyReport, charts: dict[str, bytes]) -> str:
    """Return the report as one HTML page; charts are inlined when given (the email attaches them instead)."""
    parts = [
        "<html><head><meta charset='utf-8'><title>Vigia weekly report</title><style>",
        "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse;margin:.5em 0 1.5em}",
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}",
        ".FAIL{color:#c62828;font-weight:bold}.pass{color:#2e7d32}</style></head><body>",
        f"<h1>Vigia weekly report {html.escape(report.week.label)}</h1><p>{html.escape(_window(report))}</p>",
        "<ul>" + "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in _headline(report)) + "</ul>",
    ]
    for key, title in SECTIONS:
        table = report.tables[key].to_html(index=False, na_rep="—", border=0)
        table = table.replace("<td>FAIL</td>", "<td class='FAIL'>FAIL</td>").replace("<td>pass</td>", "<td class='pass'>pass</td>")
        parts += [f"<h2>{html.escape(title)}</h2>", table if not report.tables[key].empty else "<p>none this week</p>"]
    for name, png in charts.items():
        parts.append(f"<p><img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _headline(report: WeeklyReport) -> list[str]:
    rows = report.sla_rows
    failing = [row.name for row in rows if row.meets is False]
    verdict = "every SLA met" if not failing else f"SLA missed: {', '.join(failing)}"
    return [f"- {verdict}"] + [f"- {row.name}: {row.display} (target {row.target})" for row in rows]


def _window(report: WeeklyReport) -> str:
    week = report.week
    return f"{week.start:%Y-%m-%d %H:%M} UTC to {week.end:%Y-%m-%d %H:%M} UTC (Monday to Monday, {week.zone})"


def _markdown_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "_none this week_"
    header = "| " + " | ".join(str(column) for column in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(_cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _records(table: pd.DataFrame) -> list[dict]:
    return [{str(key): _cell(value) for key, value in row.items()} for row in table.to_dict(orient="records")]


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return "—"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value).replace("|", "/")
