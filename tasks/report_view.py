"""The weekly report as people read it: a summary first, then each section as a formatted table or one sentence.

The report's tables (tasks/weekly_data.py) keep raw values for the CSVs; this module turns them into
words, units and times in the report's zone: durations as "2 h 10 min", sizes in MB, results as
met/missed, a week before the install as "not monitored yet", and an empty section as one sentence
saying what is empty.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from tasks.messages import format_duration
from tasks.weekly_data import WeeklyReport, verdict

DASH = "—"


@dataclass(frozen=True)
class Section:
    """One section of the report: a table of display strings, or the sentence that stands for it when empty."""

    key: str
    title: str
    table: pd.DataFrame | None
    sentence: str | None = None


def local_time(at: datetime, zone: str) -> str:
    """Return a time as the report shows it, in its zone (named once, at the top): Thu 19 Nov 09:00."""
    local = pd.Timestamp(at).to_pydatetime().astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %H:%M}"


def window_text(report: WeeklyReport) -> str:
    """Return the week's span in its zone, with the zone named: the one place the report says which zone it uses."""
    week = report.week
    return f"{local_time(week.start, week.zone)} to {local_time(week.end, week.zone)}, Monday to Monday; times in {week.zone}"


def summary_lines(report: WeeklyReport) -> list[str]:
    """Return the summary: what was missed, what changed since the week before, the worst incident."""
    zone = report.week.zone
    if not report.monitored:
        return [f"Not monitored yet: Vigia holds no history for {report.week.label}, so nothing is judged."]
    lines = []
    if report.started_this_week:
        lines.append(f"Monitored since {local_time(report.monitored_since, zone)}: the figures cover the week from then on.")
    lines.append(_verdict_line(report))
    lines.append(_changes_line(report))
    if (bot := _bot_line(report)) is not None:
        lines.append(bot)
    incident = report.worst_incident
    if incident is None:
        lines.append("No incidents this week.")
    else:
        state = "still open" if incident.is_open else "resolved"
        lines.append(
            f"Worst incident: {incident.target} down {duration(incident.seconds)} from {local_time(incident.opened_at, zone)} ({state})."
        )
    return lines


def sections(report: WeeklyReport) -> list[Section]:
    """Return every section of the report, formatted, in the order it is read."""
    tables, zone = report.tables, report.week.zone
    return [
        Section("sla", "Service levels", _sla(tables["sla"])),
        _section(tables["targets"], "targets", "Targets", "No target was checked this week.", _target_columns()),
        _conversations(tables["conversations"]),
        _transcriptions(tables["transcriptions"]),
        _section(
            tables["transcription-failures"],
            "transcription-failures",
            "Voice notes failed or skipped, by reason",
            "No voice note failed or was skipped this week.",
            {"outcome": ("outcome", str), "reason": ("reason", str), "notes": ("notes", _count)},
        ),
        _busiest_hours(tables["busiest-hours"]),
        _section(tables["workflows"], "workflows", "Workflow runs (Prefect)", "No workflow run finished this week.", _workflow_columns()),
        _section(tables["backups"], "backups", "Backups", "No backup ran this week.", _backup_columns(zone)),
        _section(tables["restores"], "restores", "Restores", "No restore ran this week.", _restore_columns(zone)),
        _alerts(tables["alerts"]),
        _section(
            tables["deliveries"],
            "deliveries",
            "Deliveries by channel",
            "No alert was sent to a channel this week.",
            {
                "service": ("service", str),
                "channel": ("channel", str),
                "delivered": ("delivered", _count),
                "failed": ("failed", _count),
                "timed out": ("timed out", _count),
                "skipped": ("skipped", _count),
            },
        ),
    ]


def duration(seconds: float | None) -> str:
    """Return a duration as people read it: 0.4 s, 45 s, 12 min, 2 h 10 min, 3 d 4 h; a dash for none."""
    if _missing(seconds):
        return DASH
    if seconds < 10:
        return f"{seconds:.1f} s"
    return format_duration(timedelta(seconds=seconds))


def _verdict_line(report: WeeklyReport) -> str:
    missed = [row for row in report.sla_rows if row.meets is False]
    if missed:
        return "Missed: " + "; ".join(f"{row.name} {row.display} (target {row.target})" for row in missed) + "."
    judged = [row for row in report.sla_rows if row.meets is not None]
    if not judged:
        return "No service level could be judged: no data yet."
    unjudged = [row.name for row in report.sla_rows if row.meets is None]
    return "Every service level met" + (f" ({', '.join(unjudged)}: no data)." if unjudged else ".")


def _changes_line(report: WeeklyReport) -> str:
    if not report.before_monitored:
        return "No comparison with the week before: it was not monitored yet."
    flips = [
        f"{now.name} {verdict(last, True)} the week before, {verdict(now, True)} now"
        for now, last in zip(report.sla_rows, report.sla_rows_before)
        if now.meets is not None and last.meets is not None and now.meets != last.meets
    ]
    notes = report.tables["transcriptions"]["notes"].tolist()
    alerts = report.tables["alerts"]
    alerts_now = int(alerts["alerts"].sum())
    alerts_before = alerts_now - int(alerts["change"].sum())
    changes = flips or ["every service level kept its result"]
    changes += [
        f"{_count(notes[0])} voice notes ({_change_percent(notes[0], notes[1])})",
        f"{alerts_now} alerts ({alerts_before} the week before)",
    ]
    return "Since the week before: " + "; ".join(changes) + "."


def _bot_line(report: WeeklyReport) -> str | None:
    this = report.tables["conversations"].iloc[0]
    if not this["customer messages"]:
        return None
    reply = "no answers to time" if pd.isna(this["reply p95 s"]) else f"answered customers in {duration(this['reply p95 s'])} (p95)"
    return f"The bot {reply}; {_count(this['unanswered'])} of {_count(this['customer messages'])} customer messages went unanswered."


def _change_percent(now: int, before: int) -> str:
    if not before:
        return "none the week before"
    change = round(100 * (now - before) / before)
    return f"{change:+d} % on the week before" if change else "as many as the week before"


def _sla(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"sla": "service level", "result": "result", "week before result": "result, week before"}).astype(str)


Columns = dict[str, tuple[str, Callable[[object], str]]]


def _section(frame: pd.DataFrame, key: str, title: str, empty: str, columns: Columns) -> Section:
    if frame.empty:
        return Section(key, title, None, empty)
    return Section(key, title, _formatted(frame, columns))


def _formatted(frame: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    return pd.DataFrame({label: [shown(value) for value in frame[name]] for name, (label, shown) in columns.items()})


def _transcriptions(frame: pd.DataFrame) -> Section:
    title = "Transcriptions"
    if not frame["notes"].any():
        return Section("transcriptions", title, None, "No voice notes this week or the week before.")
    under = next(column for column in frame.columns if column.startswith("under "))
    columns: Columns = {
        "week": ("week", str),
        "notes": ("voice notes", _count),
        "audio min": ("audio", lambda minutes: duration(None if _missing(minutes) else minutes * 60)),
        "p50 s": ("p50", duration),
        "p95 s": ("p95", duration),
        "max s": ("max", duration),
        under: (under.removesuffix(" %"), _percent),
        "failed": ("failed", _count),
        "failed %": ("failed share", _percent),
    }
    return Section("transcriptions", title, _formatted(frame, columns))


def _conversations(frame: pd.DataFrame) -> Section:
    title = "Conversations (the bot's own service)"
    if not frame["customer messages"].any() and not frame["answers"].any():
        return Section(
            "conversations",
            title,
            None,
            "No chat messages recorded this week or the week before (the receiver records them when Evolution's webhook "
            "sends MESSAGES_UPSERT and SEND_MESSAGE).",
        )
    columns: Columns = {name: (name.removesuffix(" s").removesuffix(" %"), _count) for name in frame.columns}
    columns["week"] = ("week", str)
    for name in ("first response p50 s", "first response p95 s", "reply p50 s", "reply p95 s"):
        columns[name] = (name.removesuffix(" s"), duration)
    columns["unanswered %"] = ("unanswered share", _percent)
    columns["voice notes %"] = ("voice notes", _percent)
    return Section("conversations", title, _formatted(frame, columns))


def _busiest_hours(frame: pd.DataFrame) -> Section:
    title = "Busiest hours"
    busy = frame[frame["notes"] > 0].sort_values(["notes", "local hour"], ascending=[False, True]).head(5)
    if busy.empty:
        return Section("busiest-hours", title, None, "No voice notes this week.")
    table = pd.DataFrame(
        {
            "hour of day": [f"{hour:02d}:00–{(hour + 1) % 24:02d}:00" for hour in busy["local hour"]],
            "voice notes": [_count(notes) for notes in busy["notes"]],
        }
    )
    return Section("busiest-hours", title, table)


def _alerts(frame: pd.DataFrame) -> Section:
    title = "Alerts by severity"
    if not frame["alerts"].any() and not frame["change"].any():
        return Section("alerts", title, None, "No alerts this week or the week before.")
    return Section(
        "alerts",
        title,
        _formatted(frame, {"severity": ("severity", str), "alerts": ("alerts", _count), "change": ("change on the week before", _signed)}),
    )


def _target_columns() -> Columns:
    return {
        "target": ("target", str),
        "critical": ("critical", lambda value: "critical" if value is True or value == 1 else ""),
        "uptime %": ("uptime", lambda value: _percent(value, 3)),
        "change (points)": ("change", lambda value: DASH if _missing(value) else f"{value:+.3f} pts"),
        "unknown h": ("unknown", _hours),
        "maintenance h": ("maintenance", _hours),
        "incidents": ("incidents", _count),
        "over 30 min": ("over 30 min", _count),
        "MTTR min": ("MTTR", lambda minutes: duration(None if _missing(minutes) else minutes * 60)),
    }


def _workflow_columns() -> Columns:
    return {
        "flow": ("flow", str),
        "deployment": ("deployment", str),
        "finished": ("finished", _count),
        "failed or crashed": ("failed or crashed", _count),
        "error %": ("error rate", _percent),
        "cancelled": ("cancelled", _count),
        "late": ("late", _count),
        "finished, week before": ("finished, week before", _count),
    }


def _backup_columns(zone: str) -> Columns:
    return {
        "started_at": ("started", lambda at: local_time(at, zone)),
        "status": ("status", str),
        "verified": ("verified", lambda value: "verified" if value is True or value == 1 else "not verified"),
        "items verified": ("items verified", str),
        "size_bytes": ("size", _megabytes),
        "dump_seconds": ("dump", duration),
        "upload_seconds": ("upload", duration),
        "verify_seconds": ("verify", duration),
        "error": ("error", lambda text: "" if _missing(text) else str(text)),
    }


def _restore_columns(zone: str) -> Columns:
    return {
        "started_at": ("started", lambda at: local_time(at, zone)),
        "source": ("source", str),
        "run_id": ("from backup", str),
        "seconds": ("took", duration),
        "status": ("status", str),
    }


def _missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _count(value) -> str:
    return DASH if _missing(value) else f"{int(value):,}"


def _signed(value) -> str:
    return DASH if _missing(value) else f"{int(value):+d}" if value else "0"


def _percent(value, digits: int = 2) -> str:
    return DASH if _missing(value) else f"{value:.{digits}f} %"


def _hours(value) -> str:
    if _missing(value):
        return DASH
    return "none" if value == 0 else duration(value * 3600)


def _megabytes(size) -> str:
    return DASH if _missing(size) else f"{size / 2**20:,.1f} MB"
