"""The weekly report's numbers: store.sla and store.weekly in SQL, shaped into pandas tables with deltas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from store.alerts import count_alerts_by_severity, deliveries_by_channel
from store.conversations import ConversationFigures, conversation_figures
from store.database import open_read_session
from store.history import NoteVolume, backup_runs_between, note_volume, notes_per_hour, restores_between, transcription_failures
from store.sla import (
    RESPONSE_TARGET_SECONDS,
    ErrorRate,
    Freshness,
    Recoveries,
    Recovery,
    ResponseTimes,
    SlaRow,
    Uptime,
    WorkflowRuns,
    backup_freshness,
    error_rate,
    recovery_times,
    response_time_samples,
    response_times,
    sla_rows,
    uptime,
)
from store.sla.freshness import installed_at
from tasks.workflow_runs import WorkflowRunCount, total_runs


@dataclass(frozen=True)
class Week:
    """An ISO week in the report's time zone, as a UTC window."""

    label: str  # 2026-W46
    start: datetime
    end: datetime
    zone: str

    def before(self) -> Week:
        """The week before this one."""
        return week_of(self.start.astimezone(ZoneInfo(self.zone)).date() - timedelta(days=7), self.zone)


@dataclass
class WeeklyReport:
    """Every table of the weekly report (DESIGN §10), ready to render."""

    week: Week
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    sla_rows: list[SlaRow] = field(default_factory=list)  # this week's five SLA figures, for the headline
    sla_rows_before: list[SlaRow] = field(default_factory=list)
    monitored_since: datetime | None = None  # the store's first row, when before the week's end; None: not monitored yet
    worst_incident: Recovery | None = None  # the longest incident opened this week

    @property
    def monitored(self) -> bool:
        """Whether Vigia watched any of this week."""
        return self.monitored_since is not None

    @property
    def before_monitored(self) -> bool:
        """Whether Vigia watched any of the week before."""
        return self.monitored_since is not None and self.monitored_since < self.week.before().end

    @property
    def started_this_week(self) -> bool:
        """Whether Vigia's history begins inside this week (a young install)."""
        return self.monitored_since is not None and self.monitored_since > self.week.start


def week_of(day: date, zone: str) -> Week:
    """Return the ISO week containing `day`, from Monday 00:00 to the next Monday 00:00 in `zone`."""
    iso = day.isocalendar()
    monday = date.fromisocalendar(iso.year, iso.week, 1)
    tz = ZoneInfo(zone)
    start = datetime.combine(monday, time(), tz).astimezone(timezone.utc)
    end = datetime.combine(monday + timedelta(days=7), time(), tz).astimezone(timezone.utc)
    return Week(f"{iso.year}-W{iso.week:02d}", start, end, zone)


def parse_week(text: str | None, zone: str, now: datetime | None = None) -> Week:
    """Return the week named like `2026-W46`, or the previous full week in `zone` when None.

    Raises:
        ValueError: when the text is not an ISO week such as 2026-W46.
    """
    if not text:
        today = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(zone)).date()
        return week_of(today - timedelta(days=7), zone)
    try:
        year, number = text.strip().upper().split("-W")
        return week_of(date.fromisocalendar(int(year), int(number), 1), zone)
    except ValueError:
        raise ValueError(f"week {text!r} is not an ISO week such as 2026-W46") from None


@task(name="collect-weekly-data", cache_policy=NO_CACHE)
def collect_weekly_data(
    database_url: str, week: Week, workflows: list[WorkflowRunCount], workflows_before: list[WorkflowRunCount], now: datetime | None = None
) -> WeeklyReport:
    """Read the week and the week before from the store and shape every report table."""
    now = now or datetime.now(timezone.utc)
    before = week.before()
    report = WeeklyReport(week)
    with open_read_session(database_url) as session:
        installed = installed_at(session, min(now, week.end))
        report.monitored_since = installed if installed < min(now, week.end) else None
        this = _read_figures(session, week, total_runs(workflows), min(now, week.end))
        last = _read_figures(session, before, total_runs(workflows_before), before.end)
        this_sla, last_sla = sla_rows(*this), sla_rows(*last)
        report.tables["sla"] = _sla_table(this_sla, last_sla, report.monitored, report.before_monitored)
        report.tables["targets"] = _targets_table(this.uptimes, last.uptimes, this.recoveries.incidents)
        report.tables["transcriptions"] = pd.DataFrame(
            [
                _transcription_row("this week", this, note_volume(session, week.start, week.end)),
                _transcription_row("week before", last, note_volume(session, before.start, before.end)),
            ]
        )
        report.tables["transcription-failures"] = pd.DataFrame(
            [(item.status, item.reason, item.count) for item in transcription_failures(session, week.start, week.end)],
            columns=["outcome", "reason", "notes"],
        )
        report.tables["busiest-hours"] = _busiest_hours(notes_per_hour(session, week.start, week.end), week.zone)
        report.tables["backups"] = pd.DataFrame(
            [
                (
                    run.id,
                    run.started_at,
                    run.status,
                    run.verified,
                    f"{run.items_verified}/{run.items}",
                    run.size_bytes,
                    run.dump_seconds,
                    run.upload_seconds,
                    run.verify_seconds,
                    run.error,
                )
                for run in reversed(backup_runs_between(session, week.start, week.end))
            ],
            columns=[
                "run_id",
                "started_at",
                "status",
                "verified",
                "items verified",
                "size_bytes",
                "dump_seconds",
                "upload_seconds",
                "verify_seconds",
                "error",
            ],
        )
        report.tables["restores"] = pd.DataFrame(
            [(r.run_id, r.source, r.started_at, r.seconds, r.status) for r in reversed(restores_between(session, week.start, week.end))],
            columns=["run_id", "source", "started_at", "seconds", "status"],
        )
        severities = count_alerts_by_severity(session, week.start, week.end)
        severities_before = count_alerts_by_severity(session, before.start, before.end)
        report.tables["alerts"] = pd.DataFrame(
            [
                (name, severities.get(name, 0), severities.get(name, 0) - severities_before.get(name, 0))
                for name in ("emergency", "critical", "warning", "info", "report")
            ],
            columns=["severity", "alerts", "change"],
        )
        report.tables["deliveries"] = pd.DataFrame(
            [
                (d.service, d.channel, d.success, d.failure, d.timeout, d.skipped)
                for d in deliveries_by_channel(session, week.start, week.end)
            ],
            columns=["service", "channel", "delivered", "failed", "timed out", "skipped"],
        )
        report.tables["response-times"] = pd.DataFrame(_response_samples(session, week), columns=["seconds"])
        report.tables["conversations"] = pd.DataFrame(
            [
                _conversation_row("this week", conversation_figures(session, week.start, week.end, now=now)),
                _conversation_row("week before", conversation_figures(session, before.start, before.end, now=now)),
            ],
            columns=CONVERSATION_COLUMNS,
        )
    report.tables["workflows"] = _workflows_table(workflows, workflows_before)
    report.sla_rows, report.sla_rows_before = this_sla, last_sla
    report.worst_incident = max(this.recoveries.incidents, key=lambda item: item.seconds, default=None)
    return report


NOT_MONITORED = "not monitored yet"


def verdict(row: SlaRow, monitored: bool) -> str:
    """How an SLA row reads: met, missed, no data, or not monitored yet (a week before Vigia existed is no failure)."""
    if not monitored:
        return NOT_MONITORED
    return {True: "met", False: "missed", None: "no data"}[row.meets]


def _sla_table(this_week: list[SlaRow], last_week: list[SlaRow], monitored: bool, before_monitored: bool) -> pd.DataFrame:
    rows = []
    for now_row, last_row in zip(this_week, last_week):
        rows.append(
            {
                "sla": now_row.name,
                "this week": now_row.display if monitored else NOT_MONITORED,
                "target": now_row.target,
                "result": verdict(now_row, monitored),
                "week before": last_row.display if before_monitored else NOT_MONITORED,
                "week before result": verdict(last_row, before_monitored),
            }
        )
    return pd.DataFrame(rows, columns=["sla", "this week", "target", "result", "week before", "week before result"])


def _targets_table(current: list[Uptime], before: list[Uptime], recoveries: tuple[Recovery, ...]) -> pd.DataFrame:
    previous = {item.target: item for item in before}
    rows = []
    for item in current:
        name = item.target
        mine = [r for r in recoveries if r.target == name]
        resolved = [r.seconds for r in mine if not r.is_open]
        last = previous.get(name)
        rows.append(
            {
                "target": name,
                "critical": item.critical,
                "uptime %": None if item.percent is None else round(item.percent, 3),
                "change (points)": None
                if item.percent is None or last is None or last.percent is None
                else round(item.percent - last.percent, 3),
                "unknown h": round(item.unknown_seconds / 3600, 2),
                "maintenance h": round(item.maintenance_seconds / 3600, 2),
                "incidents": len(mine),
                "over 30 min": sum(1 for r in mine if not r.meets_target),
                "MTTR min": round(sum(resolved) / len(resolved) / 60, 1) if resolved else None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["target", "critical", "uptime %", "change (points)", "unknown h", "maintenance h", "incidents", "over 30 min", "MTTR min"],
    )


class _Figures(NamedTuple):
    """Each SLA figure of one week, read once: the SLA rows, the target and transcription tables share them."""

    uptimes: list[Uptime]
    times: ResponseTimes
    errors: ErrorRate
    recoveries: Recoveries
    fresh: Freshness


def _read_figures(session, week: Week, runs: WorkflowRuns, now: datetime) -> _Figures:
    return _Figures(
        uptime(session, week.start, week.end),
        response_times(session, week.start, week.end),
        error_rate(session, week.start, week.end, runs),
        recovery_times(session, week.start, week.end, now),
        backup_freshness(session, now),
    )


CONVERSATION_COLUMNS = [
    "week",
    "customer messages",
    "answers",
    "by agents",
    "active chats",
    "new conversations",
    "first response p50 s",
    "first response p95 s",
    "reply p50 s",
    "reply p95 s",
    "unanswered",
    "unanswered %",
    "voice notes %",
]


def _conversation_row(label: str, figures: ConversationFigures) -> dict:
    return dict(
        zip(
            CONVERSATION_COLUMNS,
            [
                label,
                figures.messages_in,
                figures.messages_out,
                figures.by_agent,
                figures.active_chats,
                figures.new_conversations,
                _round(figures.first_response_p50, 1),
                _round(figures.first_response_p95, 1),
                _round(figures.response_p50, 1),
                _round(figures.response_p95, 1),
                figures.unanswered,
                _round(figures.unanswered_percent),
                _round(figures.voice_note_percent),
            ],
        )
    )


def _transcription_row(label: str, figures: _Figures, volume: NoteVolume) -> dict:
    times, errors = figures.times, figures.errors
    return {
        "week": label,
        "notes": volume.received,
        "audio min": round(volume.audio_seconds / 60, 1),
        "p50 s": _round(times.p50_seconds),
        "p95 s": _round(times.p95_seconds),
        "max s": _round(times.max_seconds),
        f"under {RESPONSE_TARGET_SECONDS:.0f} s %": _round(times.under_target_percent),
        "failed": errors.transcriptions_failed,
        "failed %": _round(errors.transcription_percent),
    }


def _busiest_hours(per_hour: dict[datetime, int], zone: str) -> pd.DataFrame:
    frame = pd.DataFrame(list(per_hour.items()), columns=["hour", "notes"])
    if frame.empty:
        return pd.DataFrame({"local hour": range(24), "notes": [0] * 24})
    frame["local hour"] = pd.to_datetime(frame["hour"], utc=True).dt.tz_convert(zone).dt.hour
    by_hour = frame.groupby("local hour")["notes"].sum().reindex(range(24), fill_value=0)
    return by_hour.reset_index()


def _workflows_table(counts: list[WorkflowRunCount], before: list[WorkflowRunCount]) -> pd.DataFrame:
    previous = {(item.flow, item.deployment): item for item in before}
    rows = []
    for item in counts:
        last = previous.get((item.flow, item.deployment))
        failed = item.failed + item.crashed
        rows.append(
            {
                "flow": item.flow,
                "deployment": item.deployment,
                "finished": item.finished,
                "failed or crashed": failed,
                "error %": round(100 * failed / item.finished, 2) if item.finished else None,
                "cancelled": item.cancelled,
                "late": item.late,
                "finished, week before": last.finished if last else 0,
            }
        )
    return pd.DataFrame(
        rows, columns=["flow", "deployment", "finished", "failed or crashed", "error %", "cancelled", "late", "finished, week before"]
    )


def _response_samples(session, week: Week) -> list[float]:
    return [seconds for _, seconds in response_time_samples(session, week.start, week.end)]


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
