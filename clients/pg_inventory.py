"""What a PostgreSQL database holds (tables with exact row counts, views, sequences, large objects),
read in an exported snapshot so a dump and its counts see the same data; scratch databases."""

from __future__ import annotations

import secrets as random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from clients.errors import ClientError
from clients.postgres import _reason, libpq_url
from clients.redaction import mask_secrets

_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""


class InventoryError(ClientError):
    """PostgreSQL refused a catalog query, a snapshot or a scratch database."""


@dataclass(frozen=True)
class Inventory:
    """Tables with exact row counts, views, sequences and the number of large objects."""

    tables: dict[str, int]
    views: tuple[str, ...]
    sequences: tuple[str, ...]
    large_objects: int

    def differences(self, other: Inventory) -> list[str]:
        """Describe how `other` (a restored copy) differs from this one; empty when it matches."""
        found = []
        for name in sorted(set(self.tables) | set(other.tables)):
            mine, theirs = self.tables.get(name), other.tables.get(name)
            if mine != theirs:
                found.append(f"table {name}: {_count(mine)} in the source, {_count(theirs)} restored")
        for label, mine, theirs in (("view", self.views, other.views), ("sequence", self.sequences, other.sequences)):
            for name in sorted(set(mine) ^ set(theirs)):
                found.append(f"{label} {name} {'missing from the copy' if name in mine else 'not in the source'}")
        if self.large_objects != other.large_objects:
            found.append(f"large objects: {self.large_objects} in the source, {other.large_objects} restored")
        return found

    def as_dict(self) -> dict:
        """Return the inventory for a manifest."""
        return {"tables": self.tables, "views": list(self.views), "sequences": list(self.sequences), "large_objects": self.large_objects}


@contextmanager
def exported_snapshot(url: str) -> Iterator[tuple[str, psycopg.Connection]]:
    """Hold a REPEATABLE READ transaction open and yield its exported snapshot id and connection.

    `pg_dump --snapshot` with that id sees exactly what `read_inventory(connection)` counts.

    Raises:
        InventoryError: when PostgreSQL cannot be reached.
    """
    with _connect(url, autocommit=False) as connection:
        try:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        except psycopg.Error as error:
            raise InventoryError(f"cannot export a snapshot: {mask_secrets(_reason(error))}") from error
        try:
            yield snapshot, connection
        finally:
            if not connection.closed:
                connection.rollback()


def read_inventory(connection: psycopg.Connection) -> Inventory:
    """Count every table's rows exactly, and list views, sequences and large objects.

    Raises:
        InventoryError: when a query fails (the backend was killed, a permission is missing).
    """
    try:
        relations = connection.execute(_RELATIONS).fetchall()
        tables = {}
        for schema, name, kind in relations:
            if kind in ("r", "p", "m"):
                query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                if kind == "p":
                    query = sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                tables[_qualified(schema, name)] = int(connection.execute(query).fetchone()[0])
        large_objects = int(connection.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0])
    except psycopg.Error as error:
        raise InventoryError(f"cannot count rows: {mask_secrets(_reason(error))}") from error
    return Inventory(
        tables=tables,
        views=tuple(_qualified(s, n) for s, n, k in relations if k == "v"),
        sequences=tuple(_qualified(s, n) for s, n, k in relations if k == "S"),
        large_objects=large_objects,
    )


def inventory(url: str) -> Inventory:
    """Read the inventory of a database in one transaction."""
    with _connect(url, autocommit=False) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return read_inventory(connection)


def is_empty(url: str) -> bool:
    """Whether a database holds no table, view, sequence or large object of its own."""
    found = inventory(url)
    return not (found.tables or found.views or found.sequences or found.large_objects)


def create_scratch_database(url: str, label: str) -> str:
    """Create an empty scratch database on the server of `url` and return its name.

    Raises:
        InventoryError: naming the missing CREATEDB right when that is the reason.
    """
    name = f"vigia_scratch_{label[:30]}_{random.token_hex(4)}".lower().replace("-", "_")
    _execute_admin(url, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)), f"create scratch database {name}")
    return name


def create_database(url: str, name: str) -> None:
    """Create an empty database (the target of a restore that does not exist yet)."""
    _execute_admin(url, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)), f"create database {name}")


def drop_database(url: str, name: str) -> None:
    """Drop a database, disconnecting whoever is still in it."""
    _execute_admin(url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)), f"drop database {name}")


def database_exists(url: str, name: str) -> bool:
    """Whether the server of `url` has a database called `name`."""
    with _connect(url, autocommit=True, database="postgres") as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def server_version(url: str) -> str:
    """Return the server's version string, for the manifest."""
    with _connect(url, autocommit=True) as connection:
        return str(connection.execute("SHOW server_version").fetchone()[0])


def _execute_admin(url: str, statement: sql.Composable, what: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction: autocommit, from the maintenance DB.
    with _connect(url, autocommit=True, database="postgres") as connection:
        try:
            connection.execute(statement)
        except psycopg.errors.InsufficientPrivilege as error:
            raise InventoryError(f"cannot {what}: the role needs the CREATEDB right ({_reason(error)})") from error
        except psycopg.Error as error:
            raise InventoryError(f"cannot {what}: {mask_secrets(_reason(error))}") from error


def _connect(url: str, *, autocommit: bool, database: str | None = None) -> psycopg.Connection:
    kwargs = {"dbname": database} if database else {}
    try:
        return psycopg.connect(libpq_url(url), autocommit=autocommit, connect_timeout=10, application_name="vigia-backup", **kwargs)
    except psycopg.Error as error:
        raise InventoryError(f"cannot connect: {mask_secrets(_reason(error))}") from error


def _qualified(schema: str, name: str) -> str:
    return f'"{schema}"."{name}"'


def _count(value: int | None) -> str:
    return "absent" if value is None else f"{value} rows"


def url_for(url: str, database: str) -> str:
    """Return `url` (password kept, for psycopg only) pointing at another database on the same server."""
    parts = urlsplit(libpq_url(url))
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))
