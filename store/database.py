"""Engines, sessions and migrations for the store, on SQLite or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from sqlalchemy import DateTime, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from store.urls import normalize_url

T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(Exception):
    """The store cannot be reached or used."""


class UtcDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite keeps naive text)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use UTC-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def refused_by_store(error: BaseException) -> bool:
    """True when the store refused the data itself (a constraint, a value it cannot hold): trying again cannot help.

    False for a store that could not be reached or was busy, which a later try may get past.
    """
    return isinstance(error.__cause__, (IntegrityError, DataError))


def describe_url(url: str) -> str:
    """Return the URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


@functools.lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """Return the process-wide engine for a store URL."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 10})


def _configure_sqlite(connection, _record) -> None:
    # WAL lets the dashboard and /health read while a flow writes; the busy timeout absorbs the
    # short write locks of overlapping runs instead of failing with "database is locked".
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; only a power cut loses the last commits
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # SQLAlchemy emits BEGIN itself (see _begin_immediate) instead of pysqlite's lazy BEGIN.
    connection.isolation_level = None


def _begin_immediate(connection) -> None:
    # Take the write lock when the transaction starts: a transaction that read first and wrote
    # later would fail with SQLITE_BUSY_SNAPSHOT when another writer committed in between,
    # instead of waiting and then seeing the other run's write.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def open_session(url: str) -> Iterator[Session]:
    """Yield a session on the store; commit on success, roll back on error.

    Raises:
        StoreError: when the store cannot be reached, naming it without its password.
    """
    try:
        with _session_factory(get_engine(url)).begin() as session:
            yield session
    except SQLAlchemyError as error:
        raise StoreError(f"store {describe_url(url)} failed: {_first_line(error)}") from error


@contextmanager
def open_read_session(url: str) -> Iterator[Session]:
    """Yield a read-only session, for the dashboard and the report; it takes no write lock and writes nothing.

    On SQLite a plain (deferred) BEGIN on a query_only connection: with WAL it reads the last committed
    state while a flow holds the write lock, instead of queueing behind it as BEGIN IMMEDIATE does. On
    PostgreSQL, SET TRANSACTION READ ONLY. The transaction is rolled back at the end.

    Raises:
        StoreError: when the store cannot be reached, naming it without its password.
    """
    try:
        engine = _read_engine(url)
        with _session_factory(engine)() as session:
            if engine.dialect.name == "postgresql":
                session.execute(text("SET TRANSACTION READ ONLY"))
            yield session
            session.rollback()
    except SQLAlchemyError as error:
        raise StoreError(f"store {describe_url(url)} failed: {_first_line(error)}") from error


@functools.lru_cache(maxsize=8)
def _read_engine(url: str) -> Engine:
    """The engine read-only sessions use: the store's own on PostgreSQL, one without BEGIN IMMEDIATE on SQLite."""
    database = make_url(normalize_url(url)).database
    if not normalize_url(url).startswith("sqlite") or not database or database == ":memory:":
        return get_engine(url)  # an in-memory SQLite exists only on the store's own connections
    get_engine(url)  # the store's engine first: it creates the folder and turns WAL on
    engine = create_engine(normalize_url(url), connect_args={"timeout": 30})
    event.listen(engine, "connect", _configure_sqlite_reader)
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    return engine


def _configure_sqlite_reader(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")  # a write through a read session fails instead of taking the lock
    cursor.close()
    connection.isolation_level = None


async def in_session(url: str, function: Callable[..., T], *args, **kwargs) -> T:
    """Run one store function in its own transaction (open_session), off the event loop; return what it returns.

    Raises:
        StoreError: as open_session.
    """

    def call() -> T:
        with open_session(url) as session:
            return function(session, *args, **kwargs)

    return await asyncio.to_thread(call)


@functools.lru_cache(maxsize=8)
def _session_factory(engine: Engine) -> sessionmaker:
    """One factory per engine: open_session runs for every store call, the receiver's included."""
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str) -> None:
    """Bring the store's schema up to the newest migration.

    Raises:
        StoreError: when the store cannot be reached or a migration fails.
    """
    from alembic import command  # only start-up migrates: keep every other command's start fast
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with get_engine(url).begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as error:
        raise StoreError(f"migrating store {describe_url(url)} failed: {_first_line(error)}") from error


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
