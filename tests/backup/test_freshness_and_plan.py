"""The backup freshness probe (critical past 26 h), the backup-plan Block, and the plan `vigia setup` derives."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from pydantic import ValidationError

from blocks.backup_plan import BackupPlan, BackupSource
from blocks.health_targets import HealthTarget
from deployments.backup_cli import plan_from_settings
from deployments.settings import load_settings
from store.backups import set_run_status, start_run
from store.database import open_session
from store.health_runs import record_health_run
from tasks.probes import ProbeContext, probe_target


class TestBackupPlanBlock(BlockStandardTestSuite):
    @pytest.fixture
    def block(self):
        return BackupPlan

    @pytest.mark.skip(reason="fetches the logo over the network, which is not reachable here")
    def test_has_a_valid_image(self, block):
        pass


def probe_backup(store_url: str):
    return asyncio.run(probe_target(HealthTarget(name="backup", kind="backup", dsn=store_url, critical=True), ProbeContext()))


def add_run(store_url: str, hours_ago: float, status: str) -> None:
    started = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    run_id = started.strftime("%Y-%m-%dT%H%M%SZ")
    with open_session(store_url) as session:
        start_run(session, run_id, started_at=started, local_dir="/x", remote=None, flow_run_id=None)
        set_run_status(session, run_id, status, verified=status == "verified", finished_at=started + timedelta(minutes=1))


def install(store_url: str, hours_ago: float) -> datetime:
    """Record the store's first row, a health run, as a platform's first health check does."""
    at = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    with open_session(store_url) as session:
        record_health_run(session, run_id=None, started_at=at, finished_at=at, targets_total=1, targets_down=0)
    return at


def test_a_fresh_install_without_a_backup_is_up_and_says_when_the_first_is_due(store_url, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "UTC")
    installed = install(store_url, hours_ago=0.05)
    add_run(store_url, 0.01, "failed")  # a failed run alerts on its own; freshness is not due yet
    first_run = installed.replace(hour=3, minute=0, second=0, microsecond=0)
    first_run += timedelta(days=1) if first_run <= installed else timedelta()
    result = probe_backup(store_url)
    assert (result.ok, result.level, result.value) == (True, "ok", None)
    assert result.reason == (
        f"no verified backup yet; first backup due by {first_run + timedelta(hours=26):%Y-%m-%d %H:%M} UTC"
        " (daily at 03:00, or `vigia backup run`)"
    )


def test_freshness_is_critical_without_any_verified_backup_once_the_first_was_due(store_url):
    install(store_url, hours_ago=51)  # the first 03:00 comes within 24 h, plus 26 h
    add_run(store_url, 1, "failed")
    result = probe_backup(store_url)
    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "no verified backup yet: run `vigia backup run` (it also runs daily at 03:00)"


def test_freshness_is_ok_for_a_recent_verified_backup_and_critical_past_26_hours(store_url):
    add_run(store_url, 27, "verified")
    stale = probe_backup(store_url)
    assert (stale.ok, stale.level) == (False, "critical")
    assert stale.value == pytest.approx(26.98, abs=0.05)
    assert stale.reason.endswith("h old (critical threshold 26)")
    add_run(store_url, 2, "verified")
    add_run(store_url, 1, "failed")  # a newer failure does not reset freshness
    fresh = probe_backup(store_url)
    assert (fresh.ok, fresh.level) == (True, "ok")
    assert fresh.value == pytest.approx(1.98, abs=0.05)


def test_the_plan_from_the_settings_names_every_source_and_defaults_to_a_local_remote(tmp_path):
    (tmp_path / "bot.env").write_text("X=1\n")
    settings = load_settings(
        {
            "VIGIA_HOME": str(tmp_path),
            "VIGIA_BACKUP_POSTGRES": "postgresql://app:pw-secret@db/n8n,postgresql://db/evolution",
            "VIGIA_BACKUP_REDIS": "redis://:pw@cache:6379/0",
            "VIGIA_BACKUP_PATHS": str(tmp_path / "bot.env"),
        },
        env_file=None,
    )
    plan = plan_from_settings(settings)
    assert [(s.name, s.kind) for s in plan.sources] == [
        ("postgres-n8n", "postgres"),
        ("postgres-evolution", "postgres"),
        ("redis", "redis"),
        ("files", "files"),
        ("store", "store"),
    ]
    assert (plan.local_dir, plan.remote) == (str(tmp_path / "backups"), str(tmp_path / "remote"))
    assert "pw-secret" not in repr(plan)
    bare = plan_from_settings(load_settings({"VIGIA_HOME": str(tmp_path)}, env_file=None))
    assert [s.name for s in bare.sources] == ["store"]


def test_a_source_without_what_its_kind_needs_is_rejected_naming_it():
    with pytest.raises(ValidationError, match="source 'db': url is required for kind 'postgres'"):
        BackupSource(name="db", kind="postgres")
    with pytest.raises(ValidationError, match="sources: duplicate names a"):
        BackupPlan(
            local_dir="/x",
            sources=[BackupSource(name="a", kind="files", paths=["/etc"]), BackupSource(name="a", kind="files", paths=["/etc"])],
        )
