"""A run whose process dies without a word (kill -9) is marked Crashed by the sweep and alerted once; a live run is left alone."""

import asyncio
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.alert_routes import AlertRoutes
from blocks.vigia import VigiaSettings
from deployments.parts import HEARTBEAT_SECONDS
from store.alerts import list_alerts
from store.database import open_session
from tasks import zombies
from tasks.run_failures import run_alert_key
from tests.fakes.capture import CaptureServer
from tests.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def start_long_backup(prefect_server: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT_SECONDS}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flows.zombie_flows", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def state_of(run_id: str) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state.type.value


async def heartbeats(run_id: str) -> int:
    async with get_client() as client:
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        page = await client.read_events(zombies._heartbeats([run_id], since, datetime.now(timezone.utc)), limit=10)
        return len(page.events)


def test_a_killed_run_is_marked_crashed_and_alerted_once_while_a_live_one_keeps_running(prefect_server, sqlite_store_url, tmp_path):
    assert HEARTBEAT_SECONDS == str(zombies.HEARTBEAT_SECONDS)
    capture = CaptureServer()
    victim, survivor = (start_long_backup(prefect_server, tmp_path / f"{name}.id") for name in ("victim", "survivor"))
    try:
        victim_id, survivor_id = (
            wait_until(lambda path=tmp_path / f"{name}.id": path.exists() and path.read_text(), 120, f"the {name} run to start", every=0.5)
            for name in ("victim", "survivor")
        )
        wait_until(lambda: asyncio.run(heartbeats(victim_id)) >= 1, 60, "the victim's first heartbeat", every=0.5)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        # The survivor's second heartbeat comes ~30 s after its first; the victim has been silent since its first.
        wait_until(lambda: asyncio.run(heartbeats(survivor_id)) >= 2, 90, "the survivor's second heartbeat", every=0.5)
        assert asyncio.run(state_of(victim_id)) == "RUNNING"  # Prefect alone never learns it died
        with capture.serving() as base:
            VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
            AlertRoutes(
                config=f"urls:\n  - json://{base.removeprefix('http://')}/ok/telegram:\n      - tag: critical\n", config_format="yaml"
            ).save("default", overwrite=True)
            try:
                closed = asyncio.run(zombies.sweep(silence=timedelta(seconds=20)))
                again = asyncio.run(zombies.sweep(silence=timedelta(seconds=20)))
            finally:
                AlertRoutes().save("default", overwrite=True)
        # The suite's Prefect server is shared: runs other tests left Running are this sweep's zombies too.
        ours = {victim_id, survivor_id}
        [victim_closed] = [zombie for zombie in closed if zombie.run_id in ours]
        assert victim_closed.run_id == victim_id and [zombie for zombie in again if zombie.run_id in ours] == []
        assert (asyncio.run(state_of(victim_id)), asyncio.run(state_of(survivor_id))) == ("CRASHED", "RUNNING")
        [alert] = [call for call in capture.received if f"/runs/flow-run/{victim_id}" in call.json["message"]]
        assert alert.json["title"] == f"[CRITICAL] {victim_closed.run.name} crashed"
        assert len(capture.received) == len(closed) + len(again)  # one alert per zombie, none for the survivor
        with open_session(sqlite_store_url) as session:
            stored = [(a.key, a.severity) for a in list_alerts(session)]
        assert (run_alert_key(victim_id), "critical") in stored and len(stored) == len(closed) + len(again)
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()


def test_every_part_beats_often_enough_for_the_sweep_to_find_a_dead_run_within_two_minutes():
    silence = zombies.SILENCE.total_seconds()
    assert int(HEARTBEAT_SECONDS) * 3 <= silence and silence + zombies.SWEEP_SECONDS <= 120


def test_the_silence_before_a_run_is_declared_dead_is_a_setting_of_at_least_45_s():
    assert zombies.configured_silence({}) == timedelta(seconds=90)
    assert zombies.configured_silence({"VIGIA_ZOMBIE_AFTER_SECONDS": "60"}) == timedelta(seconds=60)
    for wrong in ("30", "soon"):
        with pytest.raises(ValueError, match="VIGIA_ZOMBIE_AFTER_SECONDS="):
            zombies.configured_silence({"VIGIA_ZOMBIE_AFTER_SECONDS": wrong})
