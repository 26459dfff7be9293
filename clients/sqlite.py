"""SQLite: a consistent copy of a live database with the online backup API, and its check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clients.errors import ClientError


class SqliteError(ClientError):
    """SQLite could not copy or check a database."""


def backup_database(source: Path, output: Path) -> None:
    """Copy a live SQLite database into `output` with the online backup API (writers may go on).

    Raises:
        SqliteError: with SQLite's reason.
    """
    output.unlink(missing_ok=True)
    try:
        reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        try:
            writer = sqlite3.connect(output)
            try:
                reader.backup(writer, pages=4096)
                # The copy inherits WAL mode; a self-contained file must not need -wal/-shm companions.
                writer.execute("PRAGMA journal_mode=DELETE")
            finally:
                writer.close()
        finally:
            reader.close()
    except sqlite3.Error as error:
        output.unlink(missing_ok=True)
        raise SqliteError(f"cannot copy {source.name}: {error}") from error


def table_counts(path: Path) -> dict[str, int]:
    """Check a SQLite file's integrity and return its tables' row counts.

    Raises:
        SqliteError: when the file is damaged.
    """
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise SqliteError(f"{path.name} fails the integrity check: {verdict}")
            names = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            return {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise SqliteError(f"cannot read {path.name}: {error}") from error
