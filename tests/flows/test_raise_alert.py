"""`raise_alert`, the one way every flow raises an alert: routed by severity, cooled down per key."""

import asyncio
from datetime import timedelta

import pytest
from prefect import flow

from blocks.alert_routes import AlertRoutes
from blocks.vigia import VigiaSettings
from store.alerts import list_alerts
from store.database import open_session
from tasks.alerts import raise_alert
from tests.fakes.capture import CaptureServer

pytestmark = pytest.mark.usefixtures("prefect_server")


@flow(name="raises-alerts")
async def raises_alerts(times: int) -> list:
    return [
        await raise_alert("critical", "backup failed", "pg_dump exited 1", key="backup:failed", cooldown=timedelta(minutes=30))
        for _ in range(times)
    ]


def test_raise_alert_sends_once_per_cooldown_and_stores_it(sqlite_store_url, tmp_path):
    capture = CaptureServer()
    with capture.serving() as base:
        VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
        config = f"urls:\n  - json://{base.removeprefix('http://')}/ok/telegram:\n      - tag: critical\n"
        AlertRoutes(config=config, config_format="yaml").save("default", overwrite=True)
        try:
            first, second = asyncio.run(raises_alerts(2))
        finally:
            AlertRoutes().save("default", overwrite=True)
    assert (first.status, second) == ("sent", None)
    assert [c.json["title"] for c in capture.received] == ["[CRITICAL] backup failed"]
    with open_session(sqlite_store_url) as session:
        assert [(a.key, a.severity, a.status) for a in list_alerts(session)] == [("backup:failed", "critical", "sent")]


def test_without_routes_an_alert_is_logged_and_stored_not_lost(sqlite_store_url, tmp_path):
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    [alert] = asyncio.run(raises_alerts(1))
    assert alert.status == "logged"
