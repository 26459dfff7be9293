"""The one rule naming a PostgreSQL or Redis URL, shared by backup sources and health targets.

The same URL gets the same name as a backup source (`vigia restore --source`) and as a health
target (alerts, `vigia status`):

- PostgreSQL: `postgres-DATABASE` (a database has a name worth showing);
- Redis: `redis` when it is the only one (its databases are numbers), else `redis-HOST-PORT-DB`;
- two URLs that would share a name get their host and port in it, then `-2`, `-3`…

Names are lower-case `[a-z0-9_.-]`, at most 63 characters, as the Blocks require.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_LENGTH = 63
DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}


def name_connections(kind: str, urls: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """Return (name, url) for each URL of `kind` ("postgres" or "redis"), in order, every name unique."""
    named: dict[str, str] = {}
    for url in urls:
        name = _slug(_short_name(kind, url, len(urls)))
        if name in named:
            name = _slug(_long_name(kind, url))
        base, count = name, 1
        while name in named:
            count += 1
            name = f"{base[: MAX_LENGTH - 1 - len(str(count))]}-{count}"
        named[name] = url
    return list(named.items())


def _short_name(kind: str, url: str, count: int) -> str:
    if kind == "redis":
        return "redis" if count == 1 else _long_name(kind, url)
    return f"{kind}-{_database(kind, url)}"


def _long_name(kind: str, url: str) -> str:
    parts = urlsplit(url)
    return f"{kind}-{parts.hostname or 'local'}-{parts.port or DEFAULT_PORTS.get(kind, 0)}-{_database(kind, url)}"


def _database(kind: str, url: str) -> str:
    return urlsplit(url).path.strip("/") or ("0" if kind == "redis" else "postgres")


def slug_name(name: str) -> str:
    """Return `name` as a target or source name: lower-case `[a-z0-9_.-]`, at most 63 characters."""
    return _slug(name).strip("-") or "unnamed"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower())[:MAX_LENGTH]
