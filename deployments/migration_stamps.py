"""What a warm start may skip: migrating a database this home already migrated with the same code.

`vigia up` records a stamp under VIGIA_HOME once the store's migration finished and once Prefect's server answered
(it migrates its own database on start). A stamp names the code (the store's migration scripts, Prefect's version)
and the database (hashed: a URL may hold a password); when both still match, the next start runs no Alembic at all:
no `migrate` step before the receiver, and a Prefect server started with PREFECT_SERVER_DATABASE_MIGRATE_ON_START=false.
Deleting VIGIA_HOME/stamps (or the database) brings the migrations back."""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

STORE_MIGRATIONS = Path(__file__).resolve().parent.parent / "store" / "migrations" / "versions"


def store_stamp(database_url: str) -> str | None:
    """The stamp of the store's migrations for `database_url`; None when its SQLite file does not exist."""
    if database_url.startswith("sqlite") and not Path(urlsplit(database_url).path.removeprefix("/")).exists():
        return None
    scripts = hashlib.sha256()
    for script in sorted(STORE_MIGRATIONS.glob("*.py")):
        scripts.update(script.name.encode() + script.read_bytes())
    return f"scripts {scripts.hexdigest()[:16]} database {_hashed(database_url)}"


def prefect_stamp(home: Path, prefect_database: str | None) -> str | None:
    """The stamp of Prefect's own database; None when its SQLite file under VIGIA_HOME does not exist."""
    if prefect_database is None and not (home / "prefect" / "prefect.db").exists():
        return None
    return f"prefect {version('prefect')} database {_hashed(prefect_database or 'sqlite')}"


def is_migrated(home: Path, name: str, stamp: str | None) -> bool:
    """Whether the stamp recorded for `name` (store, prefect) is `stamp`."""
    try:
        return stamp is not None and (home / "stamps" / name).read_text() == stamp
    except OSError:
        return False


def record_migrated(home: Path, name: str, stamp: str | None) -> None:
    """Record that `name`'s database is migrated as `stamp` says."""
    if stamp is None:
        return
    folder = home / "stamps"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(stamp)


def _hashed(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
