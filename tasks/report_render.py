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
from tasks.report_view import sections, summary_lines, window_text
from tasks.weekly_data import WeeklyReport

SECTIONS = (
    ("sla", "SLA"),
    ("targets", "Targets"),
    ("conversations", "Conversations (the bot's own service)"),
    ("transcriptions", "Transcriptions"),
    ("transcription-failures", "Transcriptions failed or skipped, by reason"),
    ("busiest-hours", "Busiest hours (local time)"),
    ("workflows", "Workflow runs (Prefect)"),
    ("backups", "Backups"),
    ("restores", "Restores"),
    ("alerts", "Alerts by severity"),
    ("deliveries", "Deliveries by channel"),
)  # the CSV files and table artifacts, one per section
STYLE = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2937;max-width:60em;margin:0 auto;padding:0 12px;line-height:1.45}
h1{font-size:1.45em;margin-bottom:.2em}h2{font-size:1.1em;margin:1.6em 0 .4em;border-bottom:1px solid #e5e7eb;padding-bottom:.2em}
.window{color:#6b7280;margin-top:0}.summary{background:#f8fafc;border-left:4px solid #2563eb;padding:.4em 1em .4em 1.6em}
.summary li{margin:.3em 0}.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.92em;margin:.2em 0 .8em}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f4f6;font-weight:600}
.missed{color:#b91c1c;font-weight:600}.met{color:#15803d}.quiet{color:#6b7280}img{max-width:100%;height:auto}
"""


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
    page = render_html(report, {path.name: _data_uri(path.read_bytes()) for path in charts})
    html_path = reports_dir / f"{report.week.label}.html"
    partial = html_path.with_suffix(".html.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(html_path)
    # The email carries the charts as inline parts (RFC 2387, cid:), which Gmail and Outlook show; data: URIs they do not.
    email = render_html(report, {path.name: f"cid:{path.name}" for path in charts})
    return RenderedReport(html_path, tuple(csvs), tuple(charts), email)


@task(name="publish-weekly-artifacts", cache_policy=NO_CACHE)
async def publish_artifacts(report: WeeklyReport) -> None:
    """Publish the markdown artifact `weekly-report` and one table artifact per section (`weekly-<section>`)."""
    await create_markdown_artifact(markdown=render_markdown(report), key="weekly-report", description=f"Weekly report {report.week.label}")
    for section in sections(report):
        if section.key == "sla":
            continue
        await create_table_artifact(
            table=section.table.to_dict(orient="records") if section.table is not None else [{"": section.sentence}],
            key=artifact_key(f"weekly-{section.key}"),
            description=f"{section.title}, {report.week.label}",
        )


def artifact_key(text: str) -> str:
    """Return an artifact key Prefect accepts: lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def render_markdown(report: WeeklyReport) -> str:
    """Return the report as markdown: the summary, then every section."""
    lines = [f"# Vigia weekly report {report.week.label}", "", window_text(report), ""]
    lines += [f"- {line}" for line in summary_lines(report)] + [""]
    for section in sections(report):
        lines += [f"## {section.title}", "", _markdown_table(section.table) if section.table is not None else f"_{section.sentence}_", ""]
    return "\n".join(lines)


def render_html(report: WeeklyReport, charts: dict[str, str]) -> str:
    """Return the report as one HTML page that reads on a phone; `charts` maps each chart's name to its image source."""
    title = f"Vigia weekly report {report.week.label}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='window'>{html.escape(window_text(report))}</p>",
        "<h2>Summary</h2><ul class='summary'>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(report)) + "</ul>",
    ]
    for section in sections(report):
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.table is None:
            parts.append(f"<p class='quiet'>{html.escape(section.sentence)}</p>")
        else:
            parts.append(f"<div class='scroll'>{_html_table(section.table)}</div>")
        for name in CHARTS_AFTER.get(section.key, ()):
            if name in charts:
                parts.append(f"<p><img alt='{html.escape(name.removesuffix('.png'))}' src='{charts[name]}' width='560'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


CHARTS_AFTER = {
    "targets": ("uptime.png",),
    "transcriptions": ("response-times.png",),
    "busiest-hours": ("busiest-hours.png",),
    "backups": ("backup-sizes.png",),
}
VERDICT_CLASSES = {"met": "met", "missed": "missed", "no data": "quiet", "not monitored yet": "quiet"}


def _html_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in table.columns)
    rows = []
    for row in table.itertuples(index=False):
        cells = []
        for value in row:
            shown = str(value)
            css = VERDICT_CLASSES.get(shown)
            cells.append(f"<td class='{css}'>{html.escape(shown)}</td>" if css else f"<td>{html.escape(shown)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _markdown_table(table: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(column) for column in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(str(value).replace("|", "/") for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _data_uri(png: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"
