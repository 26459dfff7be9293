"""The store's retention as a task: roll up complete hours, prune past the limits, compact SQLite."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from store.retention import Limits, RetentionReport, apply_retention
from tasks.alerts import run_logger


@task(name="apply-store-retention", cache_policy=NO_CACHE)
def apply_store_retention(database_url: str, limits: Limits, spool_dir: Path | None = None, dry_run: bool = False) -> RetentionReport:
    """Apply the store's retention now (with `dry_run`, only count what would go) and log one line of what it did."""
    started = time.monotonic()
    report = apply_retention(database_url, datetime.now(timezone.utc), limits, dry_run=dry_run, spool_dir=spool_dir)
    run_logger().info("%s in %.1f s", report.describe(), time.monotonic() - started)
    return report
