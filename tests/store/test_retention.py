"""The store's retention on SQLite and PostgreSQL: old rows go, recent ones stay, probes not rolled up stay, a dry run only counts."""

import os
import subprocess
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from store.database import open_session
from store.models import (
    AlertKeyRow,
    AlertRow,
    BackupItemRow,
    BackupRunRow,
    ConversationMessageRow,
    DeliveryRow,
    HealthRunRow,
    IncidentRow,
    ProbeHourRow,
    ProbeResultRow,
    RestoreRow,
    SilenceRow,
    StateChangeRow,
    TargetStateRow,
    VoiceNoteRow,
)
from store.probe_hours import SETTLE, roll_up_hours, rolled_range
from store.retention import Limits, prune_store
from store.sla import uptime

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
LIMITS = Limits(probe_days=35, history_days=39)
OLD, RECENT = NOW - timedelta(days=45), NOW - timedelta(days=1)
MODELS = (
    ProbeResultRow,
    ProbeHourRow,
    StateChangeRow,
    DeliveryRow,
    AlertRow,
    AlertKeyRow,
    IncidentRow,
    HealthRunRow,
    SilenceRow,
    BackupItemRow,
    BackupRunRow,
    RestoreRow,
    VoiceNoteRow,
    ConversationMessageRow,
)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def seed(session) -> None:
    """Probes every 30 min from 40 to 30 days ago, rolled up to 36 days ago; two of everything else, one old and one recent."""
    at = days_ago(40)
    while at < days_ago(30):
        session.add(ProbeResultRow(target="api", at=at, ok=True, level="ok", latency_ms=20.0))
        at += timedelta(minutes=30)
    session.add(
        TargetStateRow(target="api", kind="http", critical=True, state="DOWN", level="ok", since=RECENT, last_probe_at=RECENT, version=1)
    )
    for days, state in ((60, "UP"), (50, "DOWN"), (45, "UP"), (10, "DOWN")):  # the newest before the cutoff (45 d) stays
        session.add(StateChangeRow(target="api", new_state=state, new_level="ok", at=days_ago(days)))
    session.add_all(
        [
            IncidentRow(target="api", critical=True, reason="old", opened_at=OLD, confirmed_at=OLD, resolved_at=OLD + timedelta(hours=1)),
            IncidentRow(target="api", critical=True, reason="open since long", opened_at=OLD, confirmed_at=OLD),
        ]
    )
    for when, number in ((OLD, 1), (RECENT, 2)):
        alert = AlertRow(key=f"k{number}", kind="down", severity="critical", title="t", body="b", status="sent", created_at=when)
        session.add(alert)
        session.flush()
        session.add(DeliveryRow(alert_id=alert.id, channel="c", service="s", status="success", attempts=1, elapsed_ms=1.0, at=when))
        session.add(AlertKeyRow(key=f"k{number}", last_at=when))
        session.add(HealthRunRow(started_at=when, finished_at=when, targets_total=1, targets_down=0))
        session.add(SilenceRow(target="api", starts_at=when, ends_at=when + timedelta(hours=1), reason="r"))
        session.add(RestoreRow(run_id="r", source="s", target="t", started_at=when, status="restored"))
        session.add(ConversationMessageRow(instance="i", message_id=f"m{number}", chat="c", direction="customer", kind="text", at=when))
        for audio, suffix in ((None, "a"), ("/spool/x.ogg", "b")):
            session.add(
                VoiceNoteRow(
                    instance="i", message_id=f"v{number}{suffix}", chat_jid="j", received_at=when, status="failed", audio_path=audio
                )
            )
    # A health run is a raw record of one check, like its probes: it goes with them, not with the history.
    session.add(HealthRunRow(started_at=days_ago(37), finished_at=days_ago(37), targets_total=1, targets_down=0))
    for days, verified in ((50, True), (42, False), (2, False)):  # no newer verified run: the one 50 days old stays
        run_id = f"run{days}"
        session.add(BackupRunRow(id=run_id, started_at=days_ago(days), status="x", verified=verified, local_dir="x"))
        session.flush()
        session.add(BackupItemRow(run_id=run_id, source="s", kind="files"))


def count_rows(url: str) -> dict[str, int]:
    with open_session(url) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) for model in MODELS}


def test_prune_deletes_rows_past_their_limits_keeps_what_reads_need_and_a_dry_run_only_counts(store_url):
    with open_session(store_url) as session:
        seed(session)
    with open_session(store_url) as session:
        assert roll_up_hours(session, days_ago(36) + SETTLE, max_hours=24 * 10) == 4 * 24
        before_uptime = uptime(session, days_ago(38), days_ago(37))
    before = count_rows(store_url)
    with open_session(store_url) as session:
        dry = prune_store(session, NOW, LIMITS, dry_run=True)
    assert count_rows(store_url) == before
    with open_session(store_url) as session:
        done = prune_store(session, NOW, LIMITS)
    expected = {
        "probe_results": 4 * 48,  # rolled up and older than 35 days; the day before 35 d is not rolled up: it stays
        "probe_hours": 24,  # the hours older than 39 days
        "state_changes": 2,
        "deliveries": 1,
        "alerts": 1,
        "alert_keys": 1,
        "incidents": 1,  # the resolved one; the open one stays
        "health_runs": 2,  # the old one and the one over 35 days
        "silences": 1,
        "backup_items": 1,
        "backup_runs": 1,  # the failed one; the newest verified stays however old
        "restores": 1,
        "voice_notes": 1,  # the one still holding spooled audio stays
        "conversation_messages": 1,
    }
    assert (dry.tables, dry.dry_run, done.tables, done.dry_run) == (expected, True, expected, False)
    after = count_rows(store_url)
    assert {name: before[name] - after[name] for name in before} == expected
    with open_session(store_url) as session:
        assert session.scalar(select(func.min(ProbeResultRow.at))) == days_ago(36)
        assert set(session.scalars(select(BackupRunRow.id))) == {"run50", "run2"}
        assert session.scalar(select(StateChangeRow.at).order_by(StateChangeRow.at)) == days_ago(45)
        assert rolled_range(session).start == days_ago(39).replace(minute=0)
        assert uptime(session, days_ago(38), days_ago(37)) == before_uptime  # read from the roll-ups


def test_vigia_prune_dry_run_prints_counts_and_deletes_nothing_then_prune_deletes(sqlite_store_url, tmp_path):
    with open_session(sqlite_store_url) as session:
        for days in (400, 1):
            session.add(
                HealthRunRow(
                    started_at=datetime.now(timezone.utc) - timedelta(days=days),
                    finished_at=datetime.now(timezone.utc) - timedelta(days=days),
                    targets_total=1,
                    targets_down=0,
                )
            )
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_KEEP_HISTORY_DAYS": "100"}
    dry = subprocess.run(["vigia", "prune", "--dry-run"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert count_rows(sqlite_store_url)["health_runs"] == 2
    assert ["health_runs", "1"] in [line.split() for line in dry.stdout.splitlines()]
    assert dry.stdout.splitlines()[-1].startswith("store retention: 0 hours rolled up; would delete 1 health_runs (raw probes over 35 d")
    real = subprocess.run(["vigia", "prune"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert real.returncode == 0, real.stderr
    assert count_rows(sqlite_store_url)["health_runs"] == 1
    assert "; deleted 1 health_runs (" in real.stdout.splitlines()[-1]


def test_a_sqlite_store_is_vacuumed_after_a_prune_that_frees_a_fifth_of_it_and_not_otherwise(sqlite_store_url, tmp_path):
    from sqlalchemy import insert

    from store.retention import apply_retention

    old = NOW - timedelta(days=500)
    with open_session(sqlite_store_url) as session:
        rows = [{"run_id": "x" * 36, "started_at": old, "finished_at": old, "targets_total": 1, "targets_down": 0}] * 20000
        session.execute(insert(HealthRunRow), rows)
        session.add(HealthRunRow(started_at=RECENT, finished_at=RECENT, targets_total=1, targets_down=0))
    files = [tmp_path / "vigia.db", tmp_path / "vigia.db-wal"]
    size = sum(path.stat().st_size for path in files if path.exists())
    first = apply_retention(sqlite_store_url, NOW, Limits())
    second = apply_retention(sqlite_store_url, NOW, Limits())
    assert (first.pruned.tables["health_runs"], first.compacted) == (20000, True)
    assert (second.pruned.total, second.compacted) == (0, False)
    assert sum(path.stat().st_size for path in files if path.exists()) < size / 2
    assert count_rows(sqlite_store_url)["health_runs"] == 1
