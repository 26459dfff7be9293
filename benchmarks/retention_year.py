"""Benchmark a year of retention: Vigia's store and Prefect's database after 365 simulated days, with and without it.

The store, simulated whole. Two SQLite stores get the same year, day by day, written with past timestamps
(`store.demo_days.append_day`): the demo's 20 targets probed every 5 minutes, a health run per check and 300
voice notes a day. After each day the kept store runs what `maintenance/daily` runs, at that day's end
(`store.retention.apply_retention(url, now=day's end)` with the default limits: hours rolled up, raw probes over
35 days deleted once rolled up, other rows over 400 days, VACUUM when a fifth of the file is free); the other
store keeps everything. Sizes are the files' (with -wal) after a final checkpoint.

Prefect's database, sampled and scaled: a year is 288 health checks and 300 voice-note runs a day, too many to
create here. A real Prefect server (the test harness, SQLite) runs SAMPLE_CHECKS real `health-check` flow runs
(20 cheap targets on this host: tcp, disk, memory, cpu, postgres, redis) and SAMPLE_NOTES stand-in voice-note
runs (one flow run per note, three tasks and the two vigia.voice-note events the transcriber emits). SQLite's
dbstat gives each table's growth per run, split into events (events, event_resources) and the rest (runs,
states, task runs, logs, artifacts). Scaled to a day (288 checks + 300 notes), then:
- no retention: the empty database + 365 days of both;
- retention as `vigia up` sets it: the empty database + (7 + 1) days of events + (35 + 1) days of the rest —
  Prefect's vacuum deletes runs ended over VIGIA_PREFECT_KEEP_RUNS_DAYS and events over
  VIGIA_PREFECT_KEEP_EVENTS_DAYS (tests/deployments/test_prefect_retention.py shows it does), SQLite reuses
  the freed pages, and one more day stands for what is written between two vacuum passes.

    uv run python benchmarks/retention_year.py

The last line is `retention: store X MB, prefect.db Y MB after 365 days (no retention: X0 MB, Y0 MB)`.
Goal: X ≤ 10 % of X0 and Y ≤ 10 % of Y0.
"""

import asyncio
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hermetic import PREFECT_HOME, REPOSITORY  # noqa: I001 — first: sets up the environment before Prefect loads

DAYS = 365
NOTES_PER_DAY = 300
CHECKS_PER_DAY = 288
SAMPLE_CHECKS = 12
SAMPLE_NOTES = 24
KEEP_RUNS_DAYS, KEEP_EVENTS_DAYS = 35, 7
EVENT_TABLES = ("events", "event_resources")
YEAR_END = datetime(2026, 12, 1, tzinfo=timezone.utc)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="vigia-bench-retention-"))
    try:
        kept, everything = simulate_store_year(workdir)
        prefect_kept, prefect_everything = scale_prefect_year(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(PREFECT_HOME, ignore_errors=True)
    print(f"store: {100 * kept / everything:.1f} % of no retention; prefect.db: {100 * prefect_kept / prefect_everything:.1f} %")
    print(
        f"retention: store {mb(kept)} MB, prefect.db {mb(prefect_kept)} MB after {DAYS} days "
        f"(no retention: {mb(everything)} MB, {mb(prefect_everything)} MB)"
    )


def simulate_store_year(workdir: Path) -> tuple[int, int]:
    """Write the same year day by day into two stores; run the daily retention on one. Return both sizes in bytes."""
    from store.database import get_engine, migrate, open_session
    from store.demo import DemoSummary
    from store.demo_days import append_day
    from store.retention import apply_retention

    urls = {name: f"sqlite:///{workdir / name / 'vigia.db'}" for name in ("kept", "everything")}
    for name, url in urls.items():
        (workdir / name).mkdir()
        migrate(url)
    start = YEAR_END - timedelta(days=DAYS)
    started = time.perf_counter()
    for index in range(DAYS):
        day = start + timedelta(days=index)
        for url in urls.values():
            with open_session(url) as session:
                append_day(session, day, notes=NOTES_PER_DAY, rng=random.Random(index), summary=DemoSummary(day, day))
        report = apply_retention(urls["kept"], day + timedelta(days=1, minutes=30))
        if index % 73 == 72:
            print(f"day {index + 1}: {report.describe()} ({time.perf_counter() - started:.0f} s so far)")
    sizes = []
    for name, url in urls.items():
        get_engine(url).dispose()
        sizes.append(file_bytes(workdir / name / "vigia.db"))
        largest = sorted(table_bytes(workdir / name / "vigia.db").items(), key=lambda item: -item[1])[:5]
        print(f"{name} store's largest tables: " + ", ".join(f"{table} {mb(size)} MB" for table, size in largest))
    return sizes[0], sizes[1]


def scale_prefect_year(workdir: Path) -> tuple[int, int]:
    """Run sampled health checks and voice-note runs on a real Prefect server; scale their growth to a year."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        database = prefect_database()
        empty = file_bytes(database)
        before = table_bytes(database)
        run_health_checks(workdir)
        after_checks = table_bytes(database)
        run_voice_note_stand_ins()
        after_notes = table_bytes(database)
    per_check = split_growth(before, after_checks, SAMPLE_CHECKS)
    per_note = split_growth(after_checks, after_notes, SAMPLE_NOTES)
    events_per_day = CHECKS_PER_DAY * per_check[0] + NOTES_PER_DAY * per_note[0]
    rest_per_day = CHECKS_PER_DAY * per_check[1] + NOTES_PER_DAY * per_note[1]
    print(
        f"prefect.db per run: health check {per_check[0] / 1024:.0f} KB events + {per_check[1] / 1024:.0f} KB runs, "
        f"voice note {per_note[0] / 1024:.0f} KB + {per_note[1] / 1024:.0f} KB; empty {mb(empty)} MB"
    )
    everything = empty + DAYS * (events_per_day + rest_per_day)
    kept = empty + (KEEP_EVENTS_DAYS + 1) * events_per_day + (KEEP_RUNS_DAYS + 1) * rest_per_day
    return int(kept), int(everything)


def run_health_checks(workdir: Path) -> None:
    """Run the real health-check flow SAMPLE_CHECKS times on 20 targets of this host."""
    from blocks.health_targets import HealthTarget, HealthTargets
    from blocks.vigia import VigiaSettings
    from flows.health_check import health_check
    from store.database import migrate

    url = f"sqlite:///{workdir / 'checks.db'}"
    migrate(url)
    VigiaSettings(home=str(workdir), database_url=url).save("default", overwrite=True)
    targets = [HealthTarget(name=f"disk-{n}", kind="disk", url=str(workdir)) for n in range(5)]
    targets += [HealthTarget(name=f"memory-{n}", kind="memory", warning_at=100, critical_at=100) for n in range(3)]
    targets += [HealthTarget(name=f"cpu-{n}", kind="cpu", warning_at=100, critical_at=100) for n in range(2)]
    targets += [HealthTarget(name=f"pg-{n}", kind="postgres", dsn="postgresql://postgres@127.0.0.1:5432/postgres") for n in range(5)]
    targets += [HealthTarget(name=f"redis-{n}", kind="redis", dsn="redis://127.0.0.1:6379/0") for n in range(5)]
    HealthTargets(targets=targets).save("year", overwrite=True)
    for _ in range(SAMPLE_CHECKS):
        asyncio.run(health_check(targets_block="year"))


def run_voice_note_stand_ins() -> None:
    """One flow run per voice note: fetch, transcribe and reply tasks, and the received and replied events."""
    from prefect import flow, task
    from prefect.events import emit_event

    @task
    def fetch_audio(number: int) -> int:
        return number * 2000

    @task
    def transcribe(audio_bytes: int) -> str:
        return f"{audio_bytes} bytes heard"

    @task
    def reply(text: str) -> str:
        return f"replied: {text}"

    @flow(name="transcribe-voice-note")
    def voice_note(number: int) -> str:
        emit_event("vigia.voice-note.received", resource={"prefect.resource.id": f"vigia.voice-note.{number}"})
        answer = reply(transcribe(fetch_audio(number)))
        emit_event("vigia.voice-note.replied", resource={"prefect.resource.id": f"vigia.voice-note.{number}"})
        return answer

    for number in range(SAMPLE_NOTES):
        voice_note(number)
    time.sleep(3)  # events reach the server asynchronously; let the last ones land before measuring


def prefect_database() -> Path:
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    return Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])


def table_bytes(database: Path) -> dict[str, int]:
    """Bytes each table and index holds (SQLite dbstat), read after a checkpoint so the -wal counts."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        rows = connection.execute(
            "SELECT s.name, m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON m.name = s.name GROUP BY s.name"
        )
        totals: dict[str, int] = {}
        for _, table, size in rows:
            totals[table] = totals.get(table, 0) + size
    return totals


def split_growth(before: dict[str, int], after: dict[str, int], runs: int) -> tuple[float, float]:
    """Bytes per run: (events and their resources, everything else)."""
    grown = {table: after.get(table, 0) - before.get(table, 0) for table in after}
    events = sum(size for table, size in grown.items() if table in EVENT_TABLES)
    return events / runs, (sum(grown.values()) - events) / runs


def file_bytes(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(path.stat().st_size for path in database.parent.glob(database.name + "*"))


def mb(size: float) -> str:
    return f"{size / 2**20:.1f}"


if __name__ == "__main__":
    assert REPOSITORY.is_dir()
    main()
