"""Prefect's server as `vigia up` runs it: `prefect server start`, with SQLite's write lock taken when a transaction begins.

Prefect opens most of its write transactions DEFERRED. On SQLite (WAL), a deferred transaction that
has read and then writes, after another connection wrote meanwhile, fails at once with "database is
locked" (SQLITE_BUSY_SNAPSHOT: the busy timeout does not apply to it); the API answers 503 and
Prefect's client backs off 2, 4, 8 s. Under a burst of voice notes that was most of the
transcription overhead. Beginning every transaction IMMEDIATE makes a writer wait its turn on
SQLite's busy timeout (60 s) instead, which takes milliseconds. PostgreSQL is left as it is.

    python -m deployments.prefect_server --host 127.0.0.1 --port 4200 --analytics-off
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager


def take_write_lock_at_begin() -> None:
    """Make every transaction Prefect begins on SQLite a `BEGIN IMMEDIATE` (Prefect 3.9's own switch for its locking reads)."""
    from prefect.server.database import configurations

    original = configurations.AioSqliteConfiguration.begin_transaction

    @asynccontextmanager
    async def begin_immediate(self, session, with_for_update: bool = False):
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_immediate.__doc__ = original.__doc__
    configurations.AioSqliteConfiguration.begin_transaction = begin_immediate


def main() -> None:
    take_write_lock_at_begin()
    from prefect.cli import app

    sys.argv = [sys.argv[0], "server", "start", *sys.argv[1:]]
    app()


if __name__ == "__main__":
    main()
