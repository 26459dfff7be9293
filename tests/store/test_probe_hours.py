"""Hourly roll-ups give the same uptime as raw rows (to the bit) and the same latency points, on both stores."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from store.database import open_session
from store.models import ProbeHourRow, ProbeResultRow, StateChangeRow, TargetStateRow
from store.probe_hours import HISTOGRAM_COLUMNS, SETTLE, floor_hour, roll_up_hours, rolled_range
from store.probes import ProbeResult, insert_probe_results, latency_series
from store.sla import uptime
from tests.analytics.test_sla_known_week import END, START, seed_uptime

AFTER = END + timedelta(hours=2)  # when the roll-up runs: the whole week is complete
WHOLE_DAY = (START + timedelta(days=1), START + timedelta(days=2))
WINDOWS = [
    WHOLE_DAY,  # whole hours only
    (START, END),
    (START + timedelta(minutes=17, seconds=3), END - timedelta(minutes=23)),  # ragged edges
    (START - timedelta(hours=5), START + timedelta(days=2, hours=1, minutes=40)),  # begins before the first roll-up
    (START + timedelta(days=5, minutes=10), START + timedelta(days=5, minutes=50)),  # inside one hour
    (START + timedelta(days=2, hours=3), END + timedelta(hours=3)),  # ends after the last rolled hour
]


def seed_db(session) -> None:
    """`db`: probes off the minute with microseconds and latencies, a 47-min gap, MAINTENANCE, PENDING and DOWN."""
    base = START - timedelta(hours=2)
    session.add(
        TargetStateRow(target="db", kind="postgres", critical=False, state="UP", level="ok", since=base, last_probe_at=END, version=1)
    )
    changes = [
        (base, "UP"),
        (START + timedelta(days=1, minutes=20, seconds=0.5), "MAINTENANCE"),
        (START + timedelta(days=1, hours=2, minutes=10), "UP"),
        (START + timedelta(days=3, hours=5, seconds=0.25), "PENDING"),
        (START + timedelta(days=3, hours=5, minutes=3), "DOWN"),
        (START + timedelta(days=3, hours=5, minutes=53, microseconds=250), "UP"),
    ]
    for at, state in changes:
        session.add(StateChangeRow(target="db", new_state=state, new_level="ok", at=at))
    gap = (START + timedelta(days=2, hours=7, minutes=5), START + timedelta(days=2, hours=7, minutes=52))
    results, at, n = [], base + timedelta(seconds=7, microseconds=123456), 0
    while at < END + timedelta(hours=4):
        if not gap[0] <= at < gap[1]:
            failed = n % 41 == 0
            latency = None if failed else 3.25 + (n * 37) % 6100 + n / 7
            results.append(ProbeResult("db", "postgres", at, not failed, "critical" if failed else "ok", latency_ms=latency))
        at, n = at + timedelta(minutes=5), n + 1
    insert_probe_results(session, results, run_id=None)


def figures(url: str, windows: list[tuple[datetime, datetime]] = WINDOWS) -> tuple[list, list]:
    with open_session(url) as session:
        uptimes = [uptime(session, start, end) for start, end in windows]
        latencies = [latency_series(session, start, end, 4 * 3600) for start, end in windows]
    return uptimes, latencies


def roll_up_all(url: str, now: datetime) -> int:
    total = 0
    while True:
        with open_session(url) as session:
            hours = roll_up_hours(session, now, max_hours=24)
        if not hours:
            return total
        total += hours


def test_rolled_up_uptime_equals_the_raw_figures_of_the_known_week_with_gaps_pending_and_maintenance(store_url):
    with open_session(store_url) as session:
        seed_uptime(session)
        seed_db(session)
    raw_uptimes, raw_latencies = figures(store_url)
    rolled = roll_up_all(store_url, AFTER)
    rolled_uptimes, rolled_latencies = figures(store_url)
    with open_session(store_url) as session:
        done = rolled_range(session)
        # The whole day is read from roll-ups only: without its raw probes, its figures stay.
        session.execute(
            delete(ProbeResultRow).where(ProbeResultRow.at >= WHOLE_DAY[0] - timedelta(hours=1), ProbeResultRow.at < WHOLE_DAY[1])
        )
    assert figures(store_url, [WHOLE_DAY]) == ([raw_uptimes[0]], [rolled_latencies[0]])
    assert (done.start, done.end) == (START - timedelta(hours=2), floor_hour(AFTER - SETTLE))
    assert rolled == (done.end - done.start) / timedelta(hours=1)
    assert rolled_uptimes == raw_uptimes  # every second, to the bit
    api, db = raw_uptimes[1]
    assert (api.down_seconds, api.maintenance_seconds) == (3600, 3 * 3600)
    assert db.maintenance_seconds == 2 * 3600 - 20 * 60 + 10 * 60 - 0.5 and 0 < db.down_seconds < 3600
    for raw, rolled_points in zip(raw_latencies, rolled_latencies):
        assert [(p.target, p.at, p.max_ms, p.probes) for p in rolled_points] == [(p.target, p.at, p.max_ms, p.probes) for p in raw]
        assert [p.mean_ms for p in rolled_points] == pytest.approx([p.mean_ms for p in raw], rel=1e-12)
    assert sum(len(points) for points in raw_latencies) > 40


def test_a_roll_up_takes_only_complete_hours_once_and_counts_probes_and_latency(store_url):
    with open_session(store_url) as session:
        seed_db(session)
    now = START + timedelta(hours=3, minutes=10)
    with open_session(store_url) as session:
        first = roll_up_hours(session, now, max_hours=100)
    with open_session(store_url) as session:
        again = roll_up_hours(session, now, max_hours=100)
        hours = session.scalars(select(ProbeHourRow).where(ProbeHourRow.target == "db").order_by(ProbeHourRow.hour)).all()
    # From the first probe's hour (START - 2 h) to the hour the settle time leaves complete (START + 2 h).
    assert (first, again) == (4, 0)
    assert [row.hour for row in hours] == [START - timedelta(hours=2) + timedelta(hours=n) for n in range(4)]
    with open_session(store_url) as session:
        probes = session.execute(
            select(
                func.count(),
                func.count(ProbeResultRow.latency_ms),
                func.sum(ProbeResultRow.latency_ms),
                func.max(ProbeResultRow.latency_ms),
            ).where(ProbeResultRow.at >= START, ProbeResultRow.at < START + timedelta(hours=1))
        ).one()
    row = hours[2]
    histogram = [getattr(row, name) for name in HISTOGRAM_COLUMNS]
    assert (row.probes, row.latency_count, row.latency_max_ms) == (probes[0], probes[1], probes[3])
    assert row.latency_sum_ms == pytest.approx(probes[2])
    assert (sum(histogram), row.up_seconds, row.unknown_seconds) == (row.latency_count, 3600, 0)
    assert hours[0].probes_failed == hours[0].probes_critical == 1  # the probe n = 0 failed


def test_two_overlapping_roll_ups_roll_each_hour_once(store_url):
    import threading

    with open_session(store_url) as session:
        seed_db(session)
    with open_session(store_url) as session:
        assert roll_up_hours(session, START, max_hours=100) == 1  # the mark exists: the next roll-ups race to move it
    now = START + timedelta(hours=6, minutes=20)
    second: list[int] = []
    with open_session(store_url) as session:
        first = roll_up_hours(session, now, max_hours=100)
        racer = threading.Thread(target=lambda: second.append(roll_up_hours_in_own_session(store_url, now)))
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive()  # it waits for this transaction (the mark's row lock, or SQLite's write lock)
    racer.join(timeout=30)
    with open_session(store_url) as session:
        hours = session.scalars(select(ProbeHourRow.hour).order_by(ProbeHourRow.hour)).all()
    assert (first, second) == (7, [0])
    assert hours == [START - timedelta(hours=2) + timedelta(hours=n) for n in range(8)]


def roll_up_hours_in_own_session(url: str, now: datetime) -> int:
    with open_session(url) as session:
        return roll_up_hours(session, now, max_hours=100)


def test_migrating_the_roll_ups_to_hour_order_and_back_keeps_every_row(store_url):
    from alembic import command
    from alembic.config import Config

    from store.database import MIGRATIONS, get_engine

    with open_session(store_url) as session:
        seed_db(session)
    with open_session(store_url) as session:
        roll_up_hours(session, AFTER, max_hours=24 * 9)

    def stored() -> list[tuple]:
        with get_engine(store_url).connect() as connection:
            return [tuple(row) for row in connection.exec_driver_sql("SELECT * FROM probe_hours ORDER BY target, hour")]

    def migrate_to(revision: str, step) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with get_engine(store_url).begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    rolled = stored()
    migrate_to("0010", command.downgrade)
    assert len(rolled) > 24 * 7 and stored() == rolled
    migrate_to("head", command.upgrade)
    assert stored() == rolled
