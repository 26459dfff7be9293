"""A fresh install's backup freshness, at given times on SQLite and PostgreSQL: UP with "first backup
due by …" until the first scheduled daily backup plus 26 h, then judged as before."""

from datetime import datetime, timedelta, timezone

import pytest

from deployments.definitions import read_definitions
from store.database import open_session
from store.health_runs import record_health_run
from store.models import BackupRunRow
from store.sla import backup_freshness, sla_summary
from store.sla.freshness import DAILY_BACKUP_CRON, first_scheduled_backup

ZONE = "America/Sao_Paulo"  # UTC-3 all year
INSTALLED = datetime(2026, 12, 4, 14, 0, tzinfo=timezone.utc)  # Friday 11:00 in São Paulo
FIRST_RUN = datetime(2026, 12, 5, 6, 0, tzinfo=timezone.utc)  # Saturday 03:00 in São Paulo
DUE = FIRST_RUN + timedelta(hours=26)  # Sunday 05:00 in São Paulo


@pytest.fixture(autouse=True)
def zone(monkeypatch):
    """The zone the platform runs in; freshness reads it as `vigia up` hands it to its parts."""
    monkeypatch.setenv("VIGIA_TIMEZONE", ZONE)


def install(store_url: str, at: datetime = INSTALLED) -> None:
    with open_session(store_url) as session:
        record_health_run(session, run_id=None, started_at=at, finished_at=at + timedelta(seconds=5), targets_total=1, targets_down=0)


def add_backup(store_url: str, run_id: str, finished: datetime, verified: bool) -> None:
    with open_session(store_url) as session:
        session.add(
            BackupRunRow(
                id=run_id,
                started_at=finished - timedelta(minutes=5),
                finished_at=finished,
                status="verified" if verified else "failed",
                verified=verified,
                local_dir="x",
            )
        )


def freshness_row(store_url: str, now: datetime):
    with open_session(store_url) as session:
        fresh = backup_freshness(session, now, ZONE)
        row = next(row for row in sla_summary(session, now - timedelta(days=7), now, now=now, zone=ZONE) if row.key == "backup_freshness")
    return fresh, row


def test_a_fresh_install_meets_freshness_until_its_first_daily_backup_plus_26_hours(store_url):
    install(store_url)
    fresh, row = freshness_row(store_url, INSTALLED + timedelta(minutes=2))
    assert (fresh.run_id, fresh.age_seconds, fresh.first_due_at, fresh.meets_target) == (None, None, DUE, True)
    assert (row.display, row.meets, row.value) == ("first backup due by 2026-12-06 05:00 -03", True, None)
    add_backup(store_url, "first", FIRST_RUN + timedelta(minutes=5), verified=False)  # the first run failed: it alerts on its own
    fresh, row = freshness_row(store_url, DUE - timedelta(seconds=1))
    assert (row.display, row.meets) == ("first backup due by 2026-12-06 05:00 -03", True)


def test_past_the_first_due_time_without_a_verified_backup_freshness_fails_as_before(store_url):
    install(store_url)
    add_backup(store_url, "first", FIRST_RUN + timedelta(minutes=5), verified=False)
    fresh, row = freshness_row(store_url, DUE)
    assert (fresh.first_due_at, fresh.meets_target, fresh.first_due_text()) == (None, False, "")
    assert (row.display, row.meets) == ("no verified backup", False)


def test_a_verified_backup_is_judged_by_its_age_even_inside_the_first_window(store_url):
    install(store_url)
    add_backup(store_url, "first", FIRST_RUN + timedelta(minutes=5), verified=True)
    fresh, row = freshness_row(store_url, FIRST_RUN + timedelta(hours=2))
    assert (fresh.run_id, fresh.first_due_at, fresh.meets_target) == ("first", None, True)
    assert (row.display, row.meets) == ("1.9 h", True)
    fresh, row = freshness_row(store_url, FIRST_RUN + timedelta(hours=27))
    assert (row.display, row.meets) == ("26.9 h", False)


def test_the_install_time_is_the_earliest_row_so_an_install_with_history_is_judged_at_once(store_url):
    install(store_url, INSTALLED - timedelta(days=30))
    install(store_url, INSTALLED)
    fresh, row = freshness_row(store_url, INSTALLED + timedelta(minutes=2))
    assert (row.display, row.meets, fresh.first_due_at) == ("no verified backup", False, None)


def test_an_empty_store_is_a_fresh_install_whose_first_backup_is_due_after_the_next_run(store_url):
    fresh, _ = freshness_row(store_url, INSTALLED)
    assert (fresh.first_due_at, fresh.meets_target) == (DUE, True)


def test_without_a_zone_given_the_schedule_is_read_in_vigia_timezone(store_url, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "UTC")
    install(store_url)
    with open_session(store_url) as session:
        fresh = backup_freshness(session, INSTALLED + timedelta(minutes=2))
    assert fresh.first_due_text() == "first backup due by 2026-12-06 05:00 UTC"  # 03:00 UTC on the 5th, plus 26 h


@pytest.mark.parametrize(
    ("installed", "first_run"),
    [
        (datetime(2026, 12, 5, 5, 59, tzinfo=timezone.utc), datetime(2026, 12, 5, 6, 0, tzinfo=timezone.utc)),  # 02:59 local: that night
        (datetime(2026, 12, 5, 6, 0, tzinfo=timezone.utc), datetime(2026, 12, 6, 6, 0, tzinfo=timezone.utc)),  # 03:00 sharp: the next night
        (datetime(2026, 12, 5, 2, 0, tzinfo=timezone.utc), datetime(2026, 12, 5, 6, 0, tzinfo=timezone.utc)),  # 23:00 local the day before
    ],
)
def test_the_first_scheduled_backup_is_the_next_0300_in_the_zone(installed, first_run):
    assert first_scheduled_backup(installed, ZONE) == first_run


def test_the_first_scheduled_backup_follows_a_clock_change_in_the_zone():
    # Europe/Lisbon leaves summer time on 2026-10-25: 03:00 is UTC+1 before, UTC+0 after.
    after_change = first_scheduled_backup(datetime(2026, 10, 24, 12, 0, tzinfo=timezone.utc), "Europe/Lisbon")
    before_change = first_scheduled_backup(datetime(2026, 10, 23, 12, 0, tzinfo=timezone.utc), "Europe/Lisbon")
    assert after_change == datetime(2026, 10, 25, 3, 0, tzinfo=timezone.utc)
    assert before_change == datetime(2026, 10, 24, 2, 0, tzinfo=timezone.utc)


def test_the_daily_backup_time_is_the_one_prefect_yaml_schedules():
    daily = next(d for d in read_definitions() if d.entrypoint == "flows/backup.py:backup")  # VIGIA_TIMEZONE: the zone fixture
    assert [(s.schedule.cron, s.schedule.timezone) for s in daily.schedules] == [(DAILY_BACKUP_CRON, ZONE)]
