"""Once-only and cooldown claims, acknowledgements and silences, stored for real on both backends."""

import threading
from datetime import datetime, timedelta, timezone

import pytest

from store.alerts import claim_alert_key
from store.database import open_session
from store.incidents import acknowledge_incident, open_incident
from store.models import StateChangeRow, TargetStateRow
from store.probes import ProbeResult, insert_probe_results
from store.silences import active_silences, add_silence, remove_silence
from store.sla import uptime

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def claim(url: str, key: str, at: datetime, cooldown: timedelta | None) -> bool:
    with open_session(url) as session:
        return claim_alert_key(session, key, at, cooldown)


def test_a_once_only_key_is_claimed_once(store_url):
    assert [claim(store_url, "down:1", T0 + timedelta(minutes=m), None) for m in (0, 5, 600)] == [True, False, False]


def test_a_cooldown_key_fires_again_only_after_its_cooldown(store_url):
    hour = timedelta(hours=1)
    assert [claim(store_url, "disk", T0 + timedelta(minutes=m), hour) for m in (0, 30, 59, 60, 90, 121)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]


def test_concurrent_claims_of_one_key_let_exactly_one_through(store_url):
    barrier, wins = threading.Barrier(4), []

    def contend() -> None:
        barrier.wait()
        wins.append(claim(store_url, "escalation:7", T0, None))

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(wins) == [False, False, False, True]


def test_acknowledging_an_incident_once_and_only_while_open(store_url):
    with open_session(store_url) as session:
        incident_id = open_incident(session, "api", critical=True, reason="HTTP 503", opened_at=T0, confirmed_at=T0)
    with open_session(store_url) as session:
        incident = acknowledge_incident(session, incident_id, "  ana is on it ", T0 + timedelta(minutes=3))
    assert incident.acknowledged_at == T0 + timedelta(minutes=3)
    with pytest.raises(ValueError, match=f"incident {incident_id} \\(api\\) is already acknowledged"):
        with open_session(store_url) as session:
            acknowledge_incident(session, incident_id, "again", T0 + timedelta(minutes=4))
    with pytest.raises(LookupError, match="no incident 999"):
        with open_session(store_url) as session:
            acknowledge_incident(session, 999, "who?", T0)


def test_a_removed_silence_stops_at_once(store_url):
    with open_session(store_url) as session:
        silence = add_silence(session, "db", T0, T0 + timedelta(hours=2), "vacuum full")
    with open_session(store_url) as session:
        assert [s.target for s in active_silences(session, T0 + timedelta(minutes=10))] == ["db"]
        assert remove_silence(session, silence.id, T0 + timedelta(minutes=30)) is True
        assert remove_silence(session, silence.id, T0 + timedelta(minutes=31)) is False
        assert active_silences(session, T0 + timedelta(minutes=40)) == []


def test_silenced_time_is_maintenance_and_leaves_uptime(store_url):
    with open_session(store_url) as session:
        session.add(
            TargetStateRow(
                target="db",
                kind="postgres",
                critical=True,
                state="UP",
                level="ok",
                since=T0,
                failing_since=None,
                last_probe_at=T0,
                reason=None,
                incident_id=None,
                version=1,
            )
        )
        for at, old, new in (
            (T0 - timedelta(hours=1), None, "UP"),
            (T0 + timedelta(hours=1), "UP", "DOWN"),
            (T0 + timedelta(hours=2), "DOWN", "UP"),
        ):
            session.add(StateChangeRow(target="db", old_state=old, new_state=new, old_level=None, new_level="ok", at=at))
        insert_probe_results(
            session, [ProbeResult("db", "postgres", T0 + timedelta(minutes=5 * k), True, "ok") for k in range(-12, 49)], None
        )
        # The outage sat inside a maintenance window that overlapped another one.
        add_silence(session, "db", T0 + timedelta(minutes=50), T0 + timedelta(minutes=100), "upgrade")
        add_silence(session, "db", T0 + timedelta(minutes=90), T0 + timedelta(minutes=130), "upgrade, longer than planned")
    with open_session(store_url) as session:
        [report] = uptime(session, T0, T0 + timedelta(hours=4))
    assert report.maintenance_seconds == pytest.approx(80 * 60)
    assert report.down_seconds == 0
    assert report.percent == 100.0
