"""Every flow run is named by its subject and date (in VIGIA_TIMEZONE), not "wakeful-sparrow"."""

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client

from blocks.alert_routes import AlertRoutes
from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.backup import backup
from flows.health_check import health_check
from flows.restore import restore
from flows.weekly_analytics import weekly_analytics

pytestmark = pytest.mark.usefixtures("prefect_server")


def run_name(state) -> str:
    async def read() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).name

    return asyncio.run(read())


def save_settings(store_url: str, tmp_path, zone: str) -> None:
    VigiaSettings(home=str(tmp_path), database_url=store_url, timezone=zone).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)


def test_a_health_check_run_is_named_by_its_time_in_the_settings_time_zone(sqlite_store_url, tmp_path):
    save_settings(sqlite_store_url, tmp_path, "Asia/Kolkata")
    name = f"t-{uuid.uuid4().hex[:12]}"
    HealthTargets(targets=[HealthTarget(name="mem", kind="memory")]).save(name, overwrite=True)
    state = asyncio.run(health_check(targets_block=name, return_state=True))
    assert state.is_completed()
    match = re.fullmatch(r"health-check (\d{4}-\d\d-\d\d \d\d:\d\d) IST", run_name(state))
    assert match, run_name(state)
    named_at = datetime.strptime(match[1], "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo("Asia/Kolkata"))
    assert abs(datetime.now(ZoneInfo("Asia/Kolkata")) - named_at) < timedelta(minutes=2)


def test_a_backup_run_is_named_by_its_local_day_even_when_it_fails_at_once(sqlite_store_url, tmp_path):
    save_settings(sqlite_store_url, tmp_path, "Pacific/Kiritimati")  # UTC+14: its day is rarely UTC's
    state = backup(plan_block=f"absent-{uuid.uuid4().hex[:8]}", return_state=True)
    assert state.is_failed()
    assert run_name(state) == f"backup {datetime.now(ZoneInfo('Pacific/Kiritimati')):%Y-%m-%d}"


def test_a_weekly_run_is_named_by_the_week_it_reports(sqlite_store_url, tmp_path):
    save_settings(sqlite_store_url, tmp_path, "America/Sao_Paulo")
    chosen = asyncio.run(weekly_analytics(week="2026-W47", send_email=False, return_state=True))
    year, week, _ = (datetime.now(ZoneInfo("America/Sao_Paulo")).date() - timedelta(days=7)).isocalendar()
    previous = asyncio.run(weekly_analytics(send_email=False, return_state=True))
    assert (run_name(chosen), run_name(previous)) == ("weekly 2026-W47", f"weekly {year}-W{week:02d}")


def test_a_restore_run_is_named_by_the_backup_run_and_the_source(sqlite_store_url, tmp_path):
    save_settings(sqlite_store_url, tmp_path, "UTC")
    state = restore(run_id="2026-11-22T030000Z", source="postgres-app", target="postgresql://db/app", return_state=True)
    assert state.is_failed()  # a URL target is refused before anything else; the name is given first
    assert run_name(state) == "restore 2026-11-22T030000Z postgres-app"
