"""pg_dump and pg_restore: argv and environment for custom-format dumps piped through zstd."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from clients import commands
from clients.commands import PipelineResult, Stage
from clients.postgres import libpq_url

ZSTD_LEVEL = 3
# libpq's own words ("PQgetResult() failed") say only that the connection broke; the server's reason follows
# on a detail line, sometimes wrapped over several lines.
_SERVER_SAID = re.compile(r"detail: Error message from server: (?:FATAL: +)?(?P<reason>.+)")


def connection(url: str, database: str | None = None) -> tuple[str, dict[str, str], tuple[str, ...]]:
    """Split a PostgreSQL URL into a password-free libpq URL for argv, the env holding the password, and the secrets.

    `database` replaces the URL's database (a scratch copy, a restore target).
    """
    parts = urlsplit(libpq_url(url))
    password = parts.password
    user = quote(parts.username, safe="") + "@" if parts.username else ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    path = "/" + quote(database, safe="") if database else parts.path
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    clean = urlunsplit(("postgresql", f"{user}{host}{port}", path, query, ""))
    env = commands.environment({"PGPASSWORD": password} if password else {})
    return clean, env, (password,) if password else ()


def database_name(url: str) -> str:
    """Return the database a PostgreSQL URL names."""
    return urlsplit(url).path.strip("/")


def dump_database(
    url: str, output: Path, *, snapshot: str | None, timeout: float, on_bytes: Callable[[int], None] | None = None
) -> PipelineResult:
    """Dump one database as `pg_dump -Fc -Z0 | zstd` into `output` (written as .partial, renamed on success).

    Raises:
        CommandFailed: naming pg_dump or zstd, whichever failed first.
    """
    conninfo, env, secrets = connection(url)
    dump = ["pg_dump", "--format=custom", "--compress=0", "--no-password", f"--dbname={conninfo}"]
    if snapshot:
        dump.append(f"--snapshot={snapshot}")
    stages = [
        Stage(tuple(dump), env, secrets),
        Stage(("zstd", f"-{ZSTD_LEVEL}", "-T0", "-q", "-c"), commands.environment()),
    ]
    try:
        return commands.run_pipeline(stages, timeout=timeout, output=output, on_bytes=on_bytes)
    except commands.CommandFailed as error:
        reason = server_reason(error.stderr_tail) if error.tool == "pg_dump" else None
        if reason is None:
            raise
        said = f"{commands.error_line(error.stderr_tail)}; the server said: {reason}"
        raise commands.CommandFailed(error.tool, error.argv, error.returncode, error.stderr_tail, said) from error


def server_reason(stderr: str) -> str | None:
    """Return the server's reason from pg_dump's `detail: Error message from server:` line, when it gave one."""
    match = _SERVER_SAID.search(stderr)
    return match["reason"].strip() if match else None


def restore_database(
    dump_path: Path,
    url: str,
    *,
    database: str | None = None,
    clean: bool = False,
    scratch: bool = False,
    timeout: float,
    on_bytes: Callable[[int], None] | None = None,
) -> PipelineResult:
    """Restore a zstd custom-format dump as `zstd -dc | pg_restore` into the database of `url` (or `database`).

    `clean` drops the dump's objects first (a --force restore); `scratch` also skips grants.

    Raises:
        CommandFailed: with pg_restore's first error (it stops at the first one).
    """
    conninfo, env, secrets = connection(url, database)
    restore = ["pg_restore", "--no-owner", "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
    if scratch:
        restore.append("--no-privileges")
    if clean:
        restore += ["--clean", "--if-exists"]
    if on_bytes is None:  # nobody watches: let zstd read the file itself, one copy fewer
        stages = [Stage(("zstd", "-d", "-q", "-c", "--", str(dump_path)), commands.environment()), Stage(tuple(restore), env, secrets)]
        return commands.run_pipeline(stages, timeout=timeout)
    stages = [
        Stage(("zstd", "-d", "-q", "-c"), commands.environment()),
        Stage(tuple(restore), env, secrets),
    ]
    return commands.run_pipeline(stages, timeout=timeout, stdin_path=dump_path, on_bytes=on_bytes)


def tool_version(tool: str) -> str:
    """Return a tool's version line (`pg_dump (PostgreSQL) 15.20`, `*** Zstandard … v1.5.4`)."""
    result = commands.run((tool, "--version"), timeout=10, env=commands.environment())
    return commands.last_line(result.stdout.splitlines()[0] if result.stdout else result.stderr)
