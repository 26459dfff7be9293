"""The first health check of a fresh install pages nobody about a backup that was never due (issue #12, item 8)."""

import asyncio
import uuid

import pytest

from blocks.health_targets import HealthTarget, HealthTargets
from blocks.vigia import VigiaSettings
from flows.health_check import health_check
from store.alerts import list_alerts
from store.database import open_session
from store.incidents import list_incidents
from store.states import list_state_changes

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_the_first_health_check_of_a_fresh_install_finds_the_backup_up_and_opens_no_incident(store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "UTC")
    VigiaSettings(home=str(tmp_path), database_url=store_url).save("default", overwrite=True)
    name = f"t-{uuid.uuid4().hex[:12]}"
    HealthTargets(targets=[HealthTarget(name="backup", kind="backup", dsn=store_url, critical=True)]).save(name, overwrite=True)
    # confirm_after 0: a failing backup probe would turn DOWN and open an incident at once.
    states = asyncio.run(health_check(targets_block=name, confirm_after_seconds=0))
    assert states["backup"].state == "UP"
    assert states["backup"].reason.startswith("no verified backup yet; first backup due by ")
    with open_session(store_url) as session:
        assert [(c.old_state, c.new_state) for c in list_state_changes(session)] == [(None, "UP")]
        assert (list_incidents(session), list_alerts(session)) == ([], [])
