"""Read-only sessions, for the dashboard and the report: no write lock taken, none waited for, nothing written."""

import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from store.database import StoreError, open_read_session, open_session
from store.models import HealthRunRow
from store.sla import sla_summary

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def seed(url: str) -> None:
    with open_session(url) as session:
        session.add(HealthRunRow(started_at=NOW, finished_at=NOW, targets_total=1, targets_down=0))


def test_a_dashboard_read_on_sqlite_answers_while_a_writer_holds_the_write_lock_and_sees_the_last_commit(sqlite_store_url, tmp_path):
    seed(sqlite_store_url)
    writer = sqlite3.connect(tmp_path / "vigia.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a health check in the middle of its transaction
    writer.execute("DELETE FROM health_runs")
    try:
        started = time.monotonic()
        with open_read_session(sqlite_store_url) as session:
            rows = session.execute(text("SELECT count(*) FROM health_runs")).scalar()
            summary = sla_summary(session, NOW - timedelta(days=7), NOW, now=NOW)
        seconds = time.monotonic() - started
        locked = threading.Event()

        def write_through_the_store_session() -> None:
            with open_session(sqlite_store_url) as session:
                locked.set()
                session.execute(text("SELECT 1"))

        blocked = threading.Thread(target=write_through_the_store_session, daemon=True)
        blocked.start()
        blocked.join(timeout=1)
        waited = blocked.is_alive()  # a write session queues behind the lock (busy timeout 30 s)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    blocked.join(timeout=30)
    assert (rows, len(summary), waited) == (1, 5, True)
    assert seconds < 5


def test_a_read_session_refuses_to_write_on_both_stores(store_url):
    seed(store_url)
    with pytest.raises(StoreError, match="readonly|read-only"):
        with open_read_session(store_url) as session:
            session.execute(text("DELETE FROM health_runs"))
    with open_read_session(store_url) as session:
        assert session.execute(text("SELECT count(*) FROM health_runs")).scalar() == 1
