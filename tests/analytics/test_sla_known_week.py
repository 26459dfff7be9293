"""A known week, built by hand on SQLite and PostgreSQL: every SLA figure has one exact answer."""

from datetime import datetime, timedelta, timezone

import pytest

from store.database import open_session
from store.models import BackupRunRow, IncidentRow, ProbeResultRow, StateChangeRow, TargetStateRow, VoiceNoteRow
from store.silences import add_silence
from store.sla import WorkflowRuns, backup_freshness, error_rate, percentile, recovery_times, response_times, sla_summary, uptime

START = datetime(2026, 11, 9, 3, 0, tzinfo=timezone.utc)  # Monday 00:00 in São Paulo
END = START + timedelta(days=7)
OUTAGE = START + timedelta(days=2)
GAP = START + timedelta(days=4)
MAINTENANCE = START + timedelta(days=5)


def seed_uptime(session) -> None:
    """`api`: a 1 h outage after 2 min PENDING, a 2 h stretch with no probe, a 3 h silence."""
    session.add(TargetStateRow(target="api", kind="http", critical=True, state="UP", level="ok", since=START, last_probe_at=END, version=1))
    changes = [
        (START - timedelta(days=1), "UP"),
        (OUTAGE - timedelta(minutes=2), "PENDING"),
        (OUTAGE, "DOWN"),
        (OUTAGE + timedelta(hours=1), "UP"),
    ]
    for at, state in changes:
        session.add(StateChangeRow(target="api", new_state=state, new_level="ok", at=at))
    at = START - timedelta(minutes=10)
    while at < END:
        if not GAP <= at < GAP + timedelta(hours=2):
            session.add(ProbeResultRow(target="api", at=at, ok=True, level="ok"))
        at += timedelta(minutes=5)
    add_silence(session, "api", MAINTENANCE, MAINTENANCE + timedelta(hours=3), "upgrade")


def note(number: int, seconds: float | None, status: str = "replied") -> VoiceNoteRow:
    received = START + timedelta(minutes=10 * number)
    return VoiceNoteRow(
        instance="main",
        message_id=f"M{number}",
        chat_jid="5511@s.whatsapp.net",
        received_at=received,
        status=status,
        replied_at=None if seconds is None else received + timedelta(seconds=seconds),
        audio_seconds=10.0,
    )


def test_uptime_counts_the_outage_leaves_the_gap_unknown_and_excludes_maintenance(store_url):
    with open_session(store_url) as session:
        seed_uptime(session)
    with open_session(store_url) as session:
        [api] = uptime(session, START, END)
    assert api.down_seconds == pytest.approx(3600)  # the 2 min PENDING before it counted as up
    assert api.unknown_seconds == pytest.approx(2 * 3600 - 300)  # the probe before the gap covers 10 min
    assert api.maintenance_seconds == pytest.approx(3 * 3600)
    assert api.up_seconds == pytest.approx(7 * 86400 - 3600 - 6900 - 10800)
    assert api.percent == pytest.approx(100 * 583500 / 587100)
    assert api.meets_target is False


def test_response_time_percentiles_of_a_known_set(store_url):
    with open_session(store_url) as session:
        session.add_all([note(n, float(n)) for n in range(1, 21)])  # 1 s … 20 s
        session.add_all([note(30, None, "failed"), note(31, None, "running")])
    with open_session(store_url) as session:
        times = response_times(session, START, END)
    assert (times.count, times.replied) == (22, 20)
    assert times.p50_seconds == pytest.approx(10.5)
    assert times.p95_seconds == pytest.approx(19.05)
    assert times.max_seconds == pytest.approx(20)
    assert times.under_target_percent == pytest.approx(70.0)
    assert times.meets_target is False
    assert percentile([float(n) for n in range(1, 21)], 0.95) == pytest.approx(19.05)


def test_recovery_times_and_mttr_of_known_incidents(store_url):
    now = START + timedelta(days=6)
    with open_session(store_url) as session:
        for minutes, hours_in in ((10, 1), (20, 2), (45, 3)):
            opened = START + timedelta(hours=hours_in)
            session.add(
                IncidentRow(
                    target="api",
                    critical=True,
                    reason="down",
                    opened_at=opened,
                    confirmed_at=opened,
                    resolved_at=opened + timedelta(minutes=minutes),
                )
            )
        session.add(IncidentRow(target="db", critical=True, reason="down", opened_at=now - timedelta(minutes=5), confirmed_at=now))
        session.add(IncidentRow(target="db", critical=True, reason="before", opened_at=START - timedelta(hours=1), confirmed_at=START))
    with open_session(store_url) as session:
        recoveries = recovery_times(session, START, END, now)
    assert [round(r.seconds / 60) for r in recoveries.incidents] == [10, 20, 45, 5]
    assert recoveries.mttr_seconds == pytest.approx(25 * 60)
    assert [r.meets_target for r in recoveries.incidents] == [True, True, False, True]
    assert recoveries.meets_target is False


def test_error_rate_takes_the_worse_of_workflows_and_transcriptions(store_url):
    with open_session(store_url) as session:
        session.add_all(
            [note(n, 2.0) for n in range(198)] + [note(200, None, "failed"), note(201, None, "failed"), note(202, None, "running")]
        )
    with open_session(store_url) as session:
        errors = error_rate(session, START, END, WorkflowRuns(finished=400, failed=2))
        without_prefect = error_rate(session, START, END, None)
    assert (errors.transcriptions_finished, errors.transcriptions_failed) == (200, 2)
    assert errors.workflow_percent == pytest.approx(0.5)
    assert errors.transcription_percent == pytest.approx(1.0)
    assert errors.percent == pytest.approx(1.0) and errors.meets_target is False  # the target is < 1 %
    assert without_prefect.workflow_percent is None and without_prefect.percent == pytest.approx(1.0)


def test_backup_freshness_is_the_newest_verified_run(store_url):
    with open_session(store_url) as session:
        for day, verified in ((1, True), (2, True), (3, False)):
            started = START + timedelta(days=day)
            session.add(
                BackupRunRow(
                    id=f"run{day}",
                    started_at=started,
                    finished_at=started + timedelta(minutes=5),
                    status="verified" if verified else "failed",
                    verified=verified,
                    local_dir="x",
                )
            )
    now = START + timedelta(days=3, hours=1)
    with open_session(store_url) as session:
        fresh = backup_freshness(session, now)
        summary = {row.key: row for row in sla_summary(session, START, END, now=now)}
    assert fresh.run_id == "run2" and fresh.age_seconds == pytest.approx(86400 + 3300)
    assert fresh.meets_target is True
    assert summary["backup_freshness"].display == "24.9 h" and summary["backup_freshness"].meets is True
    assert summary["uptime"].meets is None and summary["uptime"].display == "no data"
    assert summary["recovery_time"].display == "no incidents" and summary["recovery_time"].meets is True


def test_a_store_with_a_week_of_history_and_no_verified_backup_fails_freshness(store_url):
    with open_session(store_url) as session:
        seed_uptime(session)
    with open_session(store_url) as session:
        fresh = backup_freshness(session, END)
    assert (fresh.run_id, fresh.first_due_at, fresh.meets_target) == (None, None, False)
