"""Retention: local copies for a number of days, and grandfather-father-son on the remote from the manifests."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.backup_plan import BackupPlan
from clients import rclone
from store.backups import mark_deleted
from store.database import open_session
from tasks.alerts import run_logger
from tasks.backups import MANIFEST_FILE, parse_run_id


@dataclass(frozen=True)
class RunMark:
    """What retention needs of one run: its id, start and whether it was verified."""

    run_id: str
    started_at: datetime
    verified: bool


@dataclass(frozen=True)
class PruneReport:
    """What retention deleted (or, in a dry run, would delete), and what it kept."""

    local_deleted: tuple[str, ...]
    remote_deleted: tuple[str, ...]
    remote_kept: tuple[str, ...]
    dry_run: bool


def gfs_keep(runs: Sequence[RunMark], *, daily: int, weekly: int, monthly: int) -> set[str]:
    """Return the runs grandfather-father-son keeps: the newest verified run of each of the last
    `daily` days, `weekly` ISO weeks and `monthly` months that have one, plus the newest verified run.

    Periods are counted among the backups that exist, never as an age cut-off, so a month
    without backups deletes nothing.
    """
    verified = sorted((run for run in runs if run.verified), key=lambda run: run.started_at, reverse=True)
    keep: set[str] = set()
    periods = (
        (lambda at: at.date(), daily),
        (lambda at: tuple(at.isocalendar())[:2], weekly),
        (lambda at: (at.year, at.month), monthly),
    )
    for period_of, count in periods:
        seen: list = []
        for run in verified:
            period = period_of(run.started_at)
            if period in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(period)
            keep.add(run.run_id)
    if verified:
        keep.add(verified[0].run_id)
    return keep


def remote_deletions(runs: Sequence[RunMark], keep: set[str]) -> list[str]:
    """Return the remote runs to delete: verified runs GFS does not keep, and unverified runs older
    than the newest verified one (a newer failed run stays for investigation)."""
    verified_times = [run.started_at for run in runs if run.verified]
    newest = max(verified_times) if verified_times else None
    doomed = []
    for run in runs:
        if run.run_id in keep:
            continue
        if run.verified or (newest is not None and run.started_at < newest):
            doomed.append(run.run_id)
    return sorted(doomed)


def local_deletions(runs: Sequence[RunMark], now: datetime, keep_days: int) -> list[str]:
    """Return the local runs older than `keep_days`, never the newest verified one."""
    verified = [run for run in runs if run.verified]
    newest = max(verified, key=lambda run: run.started_at).run_id if verified else None
    cutoff = now - timedelta(days=keep_days)
    return sorted(run.run_id for run in runs if run.started_at < cutoff and run.run_id != newest)


@task(name="prune-backups", cache_policy=NO_CACHE)
def prune_backups(plan: BackupPlan, database_url: str, dry_run: bool = False) -> PruneReport:
    """Apply retention locally and on the remote; with `dry_run`, only report what would go."""
    logger = run_logger()
    now = datetime.now(timezone.utc)
    local_root = Path(plan.local_dir)
    local_runs = (
        [_local_mark(path) for path in sorted(local_root.iterdir()) if path.is_dir() and parse_run_id(path.name)]
        if local_root.is_dir()
        else []
    )
    local_doomed = local_deletions(local_runs, now, plan.keep_local_days)
    remote_doomed: list[str] = []
    keep: set[str] = set()
    if plan.remote:
        remote_runs = read_remote_marks(plan.remote)
        keep = gfs_keep(remote_runs, daily=plan.keep_daily, weekly=plan.keep_weekly, monthly=plan.keep_monthly)
        remote_doomed = remote_deletions(remote_runs, keep)
    verb = "would delete" if dry_run else "deleted"
    if not dry_run:
        for run_id in local_doomed:
            shutil.rmtree(local_root / run_id)
        for run_id in remote_doomed:
            rclone.remove_folder(rclone.join(plan.remote, run_id))
        with open_session(database_url) as session:
            mark_deleted(session, local_doomed, now, local=True)
            mark_deleted(session, remote_doomed, now, remote=True)
    logger.info(
        "retention %s %d local and %d remote backups; the remote keeps %d (%d daily, %d weekly, %d monthly)",
        verb,
        len(local_doomed),
        len(remote_doomed),
        len(keep),
        plan.keep_daily,
        plan.keep_weekly,
        plan.keep_monthly,
    )
    for run_id in remote_doomed:
        logger.info("retention %s remote %s", verb, run_id)
    return PruneReport(tuple(local_doomed), tuple(remote_doomed), tuple(sorted(keep)), dry_run)


def read_remote_marks(remote: str) -> list[RunMark]:
    """Read every run folder's manifest on the remote (a folder without one counts as unverified)."""
    folders = [name for name in rclone.list_folders(remote) if parse_run_id(name)]
    with tempfile.TemporaryDirectory(prefix="vigia-manifests-") as scratch:
        rclone.fetch_files(remote, Path(scratch), f"/*/{MANIFEST_FILE}")
        return [_mark(name, Path(scratch) / name / MANIFEST_FILE) for name in folders]


def _local_mark(path: Path) -> RunMark:
    return _mark(path.name, path / MANIFEST_FILE)


def _mark(run_id: str, manifest: Path) -> RunMark:
    try:
        verified = bool(json.loads(manifest.read_text()).get("verified"))
    except (OSError, ValueError):
        verified = False
    return RunMark(run_id, parse_run_id(run_id), verified)
