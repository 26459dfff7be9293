"""Retention: grandfather-father-son from the manifests on the remote, days on the local disk, never the newest verified."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from blocks.backup_plan import BackupPlan
from store.backups import list_runs, set_run_status, start_run
from store.database import open_session
from tasks.backups import RUN_ID_FORMAT
from tasks.retention import RunMark, gfs_keep, local_deletions, prune_backups, remote_deletions

YEAR_END = datetime(2026, 12, 31, 6, 0, tzinfo=timezone.utc)


def daily_runs(days: int, end: datetime = YEAR_END) -> list[RunMark]:
    return [RunMark((end - timedelta(days=n)).strftime(RUN_ID_FORMAT), end - timedelta(days=n), True) for n in range(days)]


def test_a_synthetic_year_keeps_exactly_seven_daily_four_weekly_and_twelve_monthly():
    runs = daily_runs(365)
    kept = gfs_keep(runs, daily=7, weekly=4, monthly=12)
    expected_days = {f"2026-12-{day:02d}T060000Z" for day in range(25, 32)}
    # ISO weeks end on Sunday: 2026-12-27 and 2026-12-20, 12-13 (the week of 12-28..12-31 is the newest, from 12-31).
    expected_weeks = {"2026-12-31T060000Z", "2026-12-27T060000Z", "2026-12-20T060000Z", "2026-12-13T060000Z"}
    month_ends = [
        "2026-12-31",
        "2026-11-30",
        "2026-10-31",
        "2026-09-30",
        "2026-08-31",
        "2026-07-31",
        "2026-06-30",
        "2026-05-31",
        "2026-04-30",
        "2026-03-31",
        "2026-02-28",
        "2026-01-31",
    ]
    expected_months = {f"{day}T060000Z" for day in month_ends}
    assert kept == expected_days | expected_weeks | expected_months
    assert len(kept) == 7 + 2 + 11  # 12-31 counts as day, week and month; 12-27 as day and week


def test_gfs_counts_backups_not_calendar_time_so_a_long_pause_deletes_nothing_recent():
    runs = daily_runs(40, end=YEAR_END - timedelta(days=90))  # the backups stopped three months ago
    kept = gfs_keep(runs, daily=7, weekly=4, monthly=12)
    newest = runs[0].run_id
    assert newest in kept
    assert {run.run_id for run in runs[:7]} <= kept


def test_unverified_runs_never_count_and_go_once_a_newer_run_is_verified():
    good = daily_runs(3)
    failed_old = RunMark("2026-12-28T070000Z", datetime(2026, 12, 28, 7, tzinfo=timezone.utc), False)
    failed_new = RunMark("2027-01-01T060000Z", datetime(2027, 1, 1, 6, tzinfo=timezone.utc), False)
    runs = [*good, failed_old, failed_new]
    kept = gfs_keep(runs, daily=1, weekly=0, monthly=0)
    assert kept == {good[0].run_id}
    assert remote_deletions(runs, kept) == ["2026-12-28T070000Z", "2026-12-29T060000Z", "2026-12-30T060000Z"]


def test_local_retention_keeps_thirty_days_and_the_newest_verified_even_when_older():
    now = YEAR_END
    old_verified = RunMark("2026-10-01T060000Z", datetime(2026, 10, 1, 6, tzinfo=timezone.utc), True)
    old_failed = RunMark("2026-10-02T060000Z", datetime(2026, 10, 2, 6, tzinfo=timezone.utc), False)
    recent_failed = RunMark("2026-12-30T060000Z", datetime(2026, 12, 30, 6, tzinfo=timezone.utc), False)
    assert local_deletions([old_verified, old_failed, recent_failed], now, 30) == ["2026-10-02T060000Z"]


def write_manifest(folder: Path, run: RunMark) -> None:
    (folder / run.run_id).mkdir(parents=True)
    (folder / run.run_id / "manifest.json").write_text(json.dumps({"run_id": run.run_id, "verified": run.verified}))
    (folder / run.run_id / "store.sqlite.zst").write_bytes(b"x")


def test_prune_reads_the_remote_manifests_dry_run_deletes_nothing_then_deletes_exactly_the_rest(tmp_path, sqlite_store_url):
    remote, local = tmp_path / "remote", tmp_path / "backups"
    runs = daily_runs(60, end=datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=12))
    for run in runs:
        write_manifest(remote, run)
    for run in runs[:35]:
        write_manifest(local, run)
    with open_session(sqlite_store_url) as session:
        for run in runs:
            start_run(
                session,
                run.run_id,
                started_at=run.started_at,
                local_dir=str(local / run.run_id),
                remote=f"{remote}/{run.run_id}",
                flow_run_id=None,
            )
            set_run_status(session, run.run_id, "verified", verified=True)
    plan = BackupPlan(sources=[], local_dir=str(local), remote=str(remote))
    expected_remote = sorted(set(r.run_id for r in runs) - gfs_keep(runs, daily=7, weekly=4, monthly=12))

    dry = prune_backups.fn(plan, sqlite_store_url, dry_run=True)
    assert list(dry.remote_deleted) == expected_remote
    assert len(list(remote.iterdir())) == 60 and len(list(local.iterdir())) == 35

    report = prune_backups.fn(plan, sqlite_store_url)
    assert sorted(path.name for path in remote.iterdir()) == sorted(report.remote_kept)
    assert len(report.local_deleted) == 35 - 30
    assert sorted(path.name for path in local.iterdir()) == sorted(run.run_id for run in runs[:30])
    with open_session(sqlite_store_url) as session:
        stored = {run.id: run for run in list_runs(session)}
    assert sorted(run_id for run_id, run in stored.items() if run.remote_deleted_at) == expected_remote
    assert sum(1 for run in stored.values() if run.local_deleted_at) == 5
