"""The store's URL rule, without SQLAlchemy: the settings check it at start (the long-lived `vigia up` supervisor
must not carry SQLAlchemy), and the store connects with what it returns."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# The schemes a store URL may have, and the driver each one connects with (psycopg 3 for PostgreSQL).
DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def normalize_url(url: str) -> str:
    """Return the store URL with the psycopg 3 driver made explicit.

    Raises:
        ValueError: when the URL is not a SQLite or PostgreSQL SQLAlchemy URL.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not re.fullmatch(r"[\w+]+", scheme):
        raise ValueError("not a SQLAlchemy URL (expected sqlite:///PATH or postgresql+psycopg://…)")
    if scheme not in DRIVERS:
        raise ValueError(f"unsupported driver {scheme!r} (expected sqlite or postgresql+psycopg)")
    parts = urlsplit(url)
    if parts.netloc.endswith(":"):
        raise ValueError("no port after the ':'")
    _ = parts.port  # a port that is not a number raises ValueError
    return f"{DRIVERS[scheme]}://{rest}"
