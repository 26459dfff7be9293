"""Benchmark the week's conversation figures on a year of chat metadata against reading that week's raw rows into pandas.

A PostgreSQL store gets one year of synthetic chats (store/demo_conversations.py, about 20 k
messages a day ≈ 7.3 M rows), written week by week with COPY. Then: `store.conversations`'
figures for one week (volume, new conversations, first-response and reply p50/p95, unanswered)
plus the chats waiting at its end, against `pd.read_sql` of that week's rows (the floor any
pandas computation starts from). Needs PostgreSQL (trust) on 127.0.0.1:5432.

    uv run python benchmarks/conversation_metrics.py

The last line is `conversations: X s (raw read floor: Y s, ratio R)`. Goal: ratio ≤ 0.5.
BENCH_KEEP=1 keeps the database; BENCH_REUSE=1 measures a kept one without seeding again.
"""

from hermetic import REPOSITORY  # noqa: F401, I001 — first: sets up the environment before anything loads

import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import text  # noqa: E402

from store.conversations import chats_waiting, conversation_figures, pair_messages  # noqa: E402
from store.database import get_engine, migrate, open_session  # noqa: E402
from store.demo import DemoSummary, _insert  # noqa: E402
from store.demo_conversations import conversation_rows  # noqa: E402
from store.models import ConversationMessageRow  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "vigia_bench_conversations"
URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DATABASE}"
END = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)  # Monday 00:00 in São Paulo
WEEK = (END - timedelta(days=7), END)
CHATS_PER_DAY = 4300  # about 4.6 messages a conversation: ~20 k messages a day
RUNS = 5


def seed() -> int:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    migrate(URL)
    rng, summary, start = random.Random(17), DemoSummary(END - timedelta(days=365), END), time.perf_counter()
    week_start = END - timedelta(days=365)
    while week_start < END:
        week_end = min(week_start + timedelta(days=7), END)
        rows = conversation_rows(rng, week_start, week_end, CHATS_PER_DAY)
        for number, row in enumerate(rows):
            row["message_id"] = f"B{week_start:%Y%m%d}{number:08d}"
        with open_session(URL) as session:
            _insert(session, ConversationMessageRow, rows, summary)
            pair_messages(session, week_start)
        week_start = week_end
    with psycopg.connect(URL.replace("+psycopg", "")) as connection:
        connection.execute("ANALYZE conversation_messages")
    total = summary.rows["conversation_messages"]
    print(f"seeded {total:,} messages ({total / 365:,.0f} a day) in {time.perf_counter() - start:.0f} s")
    return total


def figures_once() -> float:
    started = time.perf_counter()
    with open_session(URL) as session:
        figures = conversation_figures(session, *WEEK)
        chats_waiting(session, WEEK[1])
    elapsed = time.perf_counter() - started
    assert figures.messages_in > 0
    return elapsed


def raw_read_once() -> float:
    engine = get_engine(URL)
    started = time.perf_counter()
    with engine.connect() as connection:
        frame = pd.read_sql(
            text("SELECT * FROM conversation_messages WHERE at >= :start AND at < :end"),
            connection,
            params={"start": WEEK[0].replace(tzinfo=None), "end": WEEK[1].replace(tzinfo=None)},
        )
    elapsed = time.perf_counter() - started
    assert len(frame) > 0
    return elapsed


def main() -> None:
    if not os.environ.get("BENCH_REUSE"):
        seed()
    figures_once(), raw_read_once()  # warm: the database cache, imports
    figures = statistics.median(figures_once() for _ in range(RUNS))
    floor = statistics.median(raw_read_once() for _ in range(RUNS))
    get_engine(URL).dispose()
    if not os.environ.get("BENCH_KEEP"):
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    print(f"conversations: {figures:.2f} s (raw read floor: {floor:.2f} s, ratio {figures / floor:.2f})")


if __name__ == "__main__":
    main()
