"""Benchmark the weekly report on a year of history against the I/O floor of reading that week's raw rows.

A PostgreSQL store gets one year of synthetic history (`vigia demo-data`: 20 targets probed every
5 minutes ≈ 2.1 M probe rows, ~100 k voice notes), in a subprocess so its memory is not counted.
Then, in this process: the report for one week (every table, its week-before deltas, CSVs, the
HTML page and the PNG charts; the Prefect run counts and the email are left out) against
`pd.read_sql` of the week's raw rows of the tables the report reads. Needs PostgreSQL (trust) on
127.0.0.1:5432.

    uv run python benchmarks/weekly_report.py

The last line is `weekly_report: X s (raw read floor: Y s, ratio R), peak RSS Z MB`.
Goals: ratio ≤ 1.0; peak RSS ≤ 1 GB.
"""

from hermetic import REPOSITORY  # noqa: I001 — first: sets up the environment before Prefect loads

import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from prefect.logging import disable_run_logger  # noqa: E402
from tasks.report_render import write_report  # noqa: E402
from tasks.weekly_data import collect_weekly_data, parse_week  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "vigia_bench_weekly"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
WEEK = "2026-W45"
ZONE = "America/Sao_Paulo"
RUNS = 3
RAW_TABLES = {  # the week's raw rows of every table the report reads, and the column that places a row in time
    "probe_results": "at",
    "state_changes": "at",
    "incidents": "opened_at",
    "voice_notes": "received_at",
    "backup_runs": "started_at",
    "restores": "started_at",
    "alerts": "created_at",
    "deliveries": "at",
    "silences": "starts_at",
}


def seed() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    env = {**os.environ, "VIGIA_DATABASE_URL": URL, "VIGIA_HOME": tempfile.mkdtemp(prefix="vigia-bench-home-")}
    started = time.perf_counter()
    subprocess.run(["vigia", "demo-data", "--days", "365", "--seed", "11", "--notes-per-day", "280"], env=env, check=True, cwd=REPOSITORY)
    print(f"seeded one year in {time.perf_counter() - started:.1f} s")
    with psycopg.connect(URL.replace("+psycopg", "")) as connection:
        connection.execute("ANALYZE")
        probes, notes = (connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("probe_results", "voice_notes"))
    print(f"{probes} probe results, {notes} voice notes")


def report_once(folder: Path) -> tuple[float, float]:
    """Return (whole report, its data part: every figure and table read and shaped, before charts and files)."""
    week = parse_week(WEEK, ZONE)
    started = time.perf_counter()
    with disable_run_logger():
        report = collect_weekly_data.fn(URL, week, [], [], now=datetime.now(timezone.utc))
        data = time.perf_counter() - started
        write_report.fn(report, folder)
    return time.perf_counter() - started, data


def raw_read_once() -> float:
    week = parse_week(WEEK, ZONE)
    engine = create_engine(URL)
    started = time.perf_counter()
    with engine.connect() as connection:
        for table, column in RAW_TABLES.items():
            pd.read_sql(
                text(f"SELECT * FROM {table} WHERE {column} >= :start AND {column} < :end"),
                connection,
                params={"start": week.start.replace(tzinfo=None), "end": week.end.replace(tzinfo=None)},
            )
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def main() -> None:
    seed()
    folder = Path(tempfile.mkdtemp(prefix="vigia-bench-reports-"))
    report_once(folder)  # warm: imports, vl-convert's engine, the database cache
    raw_read_once()
    reports = [report_once(folder) for _ in range(RUNS)]
    floors = [raw_read_once() for _ in range(RUNS)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    report, data = statistics.median(r[0] for r in reports), statistics.median(r[1] for r in reports)
    floor = statistics.median(floors)
    print(
        f"of which figures and tables (two weeks, SQL-aggregated): {data:.2f} s (ratio {data / floor:.2f}); "
        f"PNG charts, CSVs and HTML: {report - data:.2f} s"
    )
    print(f"weekly_report: {report:.2f} s (raw read floor: {floor:.2f} s, ratio {report / floor:.2f}), peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
