"""Uptime as DESIGN §11 defines it: time-weighted, gaps unknown, MAINTENANCE excluded, PENDING up."""

from datetime import datetime, timedelta, timezone

import pytest

from store.database import open_session
from store.models import StateChangeRow, TargetStateRow
from store.probes import ProbeResult, insert_probe_results
from store.sla import uptime

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=timezone.utc)
H = 3600


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def arrange(url: str, target: str, changes: list[tuple[float, str | None, str]], probe_seconds: list[float]) -> None:
    with open_session(url) as session:
        session.add(
            TargetStateRow(
                target=target,
                kind="http",
                critical=True,
                state=changes[-1][2],
                level="ok",
                since=at(changes[-1][0]),
                failing_since=None,
                last_probe_at=at(probe_seconds[-1]),
                reason=None,
                incident_id=None,
                version=1,
            )
        )
        for second, old, new in changes:
            session.add(StateChangeRow(target=target, old_state=old, new_state=new, old_level=None, new_level="ok", at=at(second)))
        insert_probe_results(session, [ProbeResult(target, "http", at(s), True, "ok") for s in probe_seconds], run_id=None)


def test_uptime_weighs_time_excludes_maintenance_counts_pending_up_and_leaves_gaps_unknown(store_url):
    probes = [s for s in range(-600, 10 * H, 300) if not 4 * H <= s < 6 * H]
    arrange(
        store_url,
        "api",
        [
            (-3 * H, None, "UP"),
            (1 * H, "UP", "DOWN"),
            (1.5 * H, "DOWN", "UP"),
            (7 * H, "UP", "MAINTENANCE"),
            (8 * H, "MAINTENANCE", "UP"),
            (9 * H, "UP", "PENDING"),
            (9 * H + 600, "PENDING", "UP"),
        ],
        probes,
    )
    with open_session(store_url) as session:
        [report] = uptime(session, T0, at(10 * H))
    # The last probe before the gap (3h55) covers ten minutes; the gap runs 4h05 to 6h.
    assert report.unknown_seconds == pytest.approx(6900)
    assert report.down_seconds == pytest.approx(1800)
    assert report.maintenance_seconds == pytest.approx(3600)
    assert report.up_seconds == pytest.approx(36000 - 6900 - 1800 - 3600)
    assert report.percent == pytest.approx(100 * 23700 / 25500)
    assert report.meets_target is False


def test_a_target_never_probed_in_the_window_has_no_uptime_and_is_all_unknown(store_url):
    arrange(store_url, "old", [(-10 * H, None, "UP")], [-10 * H])
    with open_session(store_url) as session:
        [report] = uptime(session, T0, at(H))
    assert (report.percent, report.unknown_seconds, report.up_seconds) == (None, 3600, 0)


def test_a_fully_covered_up_target_meets_the_target(store_url):
    arrange(store_url, "db", [(-H, None, "UP")], list(range(-H, 24 * H, 300)))
    with open_session(store_url) as session:
        [report] = uptime(session, T0, at(24 * H))
    assert (report.percent, report.unknown_seconds, report.meets_target) == (100.0, 0, True)
