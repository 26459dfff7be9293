"""PostgreSQL: connect, `SELECT 1`, and how many connections are in use."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from clients.errors import ClientError
from clients.redaction import mask_secrets


class PostgresError(ClientError):
    """PostgreSQL refused or did not answer."""


@dataclass(frozen=True)
class PostgresStatus:
    """One successful PostgreSQL probe."""

    latency_ms: float
    connections_in_use: int
    max_connections: int


def libpq_url(url: str) -> str:
    """Return a libpq URL from a SQLAlchemy one (postgresql+psycopg:// → postgresql://)."""
    scheme, separator, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{separator}{rest}" if separator else url


async def ping(url: str, *, timeout: float) -> PostgresStatus:
    """Connect, run `SELECT 1` and count connections in use.

    Raises:
        PostgresError: with libpq's reason (never the password) when it fails.
    """
    started = time.perf_counter()
    try:
        async with await psycopg.AsyncConnection.connect(
            libpq_url(url), connect_timeout=max(1, round(timeout)), autocommit=True, application_name="vigia-probe"
        ) as connection:
            cursor = await connection.execute("SELECT 1, (SELECT count(*) FROM pg_stat_activity), current_setting('max_connections')::int")
            _, in_use, maximum = await cursor.fetchone()
    except psycopg.Error as error:
        raise PostgresError(mask_secrets(_reason(error))) from error
    return PostgresStatus((time.perf_counter() - started) * 1000, int(in_use), int(maximum))


def _reason(error: psycopg.Error) -> str:
    # libpq puts the useful part ("password authentication failed…", "Connection refused") last,
    # followed by tab-indented hints ("Is the server running…?") that say nothing new.
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line[:1].isspace()]
    return lines[-1] if lines else type(error).__name__
