"""The Overview's window reads search the window's range, never walk a whole table (SQLite's plans, no timing)."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import event

from store.database import get_engine, open_session
from store.probe_hours import state_seconds_rolled
from store.sla.transcriptions import response_times, transcription_outcomes

END = datetime(2026, 11, 20, tzinfo=timezone.utc)
START = END - timedelta(days=30)


def plans_of(url, read) -> list[str]:
    """Run `read` on the store and return SQLite's query plan of every statement it sent."""
    engine = get_engine(url)
    sent = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with open_session(url) as session:
            read(session)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    with engine.connect() as connection:
        return [
            " / ".join(row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            for statement, parameters in sent
            if statement.lstrip().upper().startswith("SELECT")
        ]


def test_transcription_reads_search_the_windows_received_at_range(sqlite_store_url):
    plans = plans_of(sqlite_store_url, lambda session: (transcription_outcomes(session, START, END), response_times(session, START, END)))

    assert plans and all("ix_voice_notes_received_at (received_at>? AND received_at<?)" in plan for plan in plans), plans


def test_transcription_reads_are_answered_from_the_index_alone(sqlite_store_url):
    # Every note of the window is read: from the table, each costs a row lookup (~0.1 s on 30 days of notes).
    plans = plans_of(sqlite_store_url, lambda session: (transcription_outcomes(session, START, END), response_times(session, START, END)))

    assert plans and all("USING COVERING INDEX ix_voice_notes_received_at" in plan for plan in plans), plans


def test_hourly_roll_ups_are_kept_once_in_hour_order(sqlite_store_url):
    # A year of roll-ups is 175 k rows: stored by rowid with a (target, hour) key and an hour index, three copies.
    with get_engine(sqlite_store_url).connect() as connection:
        indexes = (
            connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'probe_hours'").scalars().all()
        )
        table = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'probe_hours'").scalar_one()
    plans = plans_of(sqlite_store_url, lambda session: state_seconds_rolled(session, START, END))

    assert "WITHOUT ROWID" in table and indexes == [], (table, indexes)
    assert plans and all("USING PRIMARY KEY (hour>? AND hour<?)" in plan for plan in plans), plans
