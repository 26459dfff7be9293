"""Redis backups: `redis-cli --rdb`, `redis-check-rdb`, and a scratch `redis-server` to load an RDB into."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis import exceptions as redis_errors

from clients import commands
from clients.archive import file_sha256
from clients.errors import ClientError
from clients.redaction import mask_secrets

_KEYS_READ = re.compile(r"(\d+) keys read")
_KEYSPACE = re.compile(r"^db(\d+)$")


class RedisDumpError(ClientError):
    """Fetching, checking, loading or restoring an RDB failed."""


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis URL points, with its credentials kept apart."""

    host: str | None
    port: int
    socket_path: str | None
    username: str | None
    password: str | None
    db: int
    tls: bool


def parse_url(url: str) -> RedisAddress:
    """Split a redis://, rediss:// or unix:// URL.

    Raises:
        RedisDumpError: for a URL that names no host or socket.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise RedisDumpError(f"not a Redis URL: {mask_secrets(url)}")
    query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
    db_text = parts.path.strip("/") if parts.scheme != "unix" else query.get("db", "0")
    return RedisAddress(
        host=None if parts.scheme == "unix" else (parts.hostname or "127.0.0.1"),
        port=parts.port or 6379,
        socket_path=parts.path if parts.scheme == "unix" else None,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        db=int(db_text or 0),
        tls=parts.scheme == "rediss",
    )


def fetch_rdb(url: str, output: Path, *, timeout: float) -> tuple[int, str]:
    """Fetch an RDB with `redis-cli --rdb` (replication, so it works on a remote server) into `output`.

    Returns the size in bytes and the SHA-256. Written as .partial, renamed only when complete.

    Raises:
        RedisDumpError: with the reason; a missing `sync` permission is named as such.
    """
    address = parse_url(url)
    argv = ["redis-cli", *_location(address), "--no-auth-warning"]
    if address.username:
        argv += ["--user", address.username]
    partial = output.with_name(output.name + ".partial")
    argv += ["--rdb", str(partial)]
    env = commands.environment({"REDISCLI_AUTH": address.password} if address.password else {})
    secrets = (address.password,) if address.password else ()
    try:
        result = commands.run(argv, timeout=timeout, env=env, secrets=secrets, check=False)
        said = f"{result.stdout}\n{result.stderr}"
        # redis-cli exits 0 on some error replies: trust only its success line.
        if result.returncode != 0 or "Transfer finished with success" not in said:
            raise RedisDumpError(_fetch_reason(said, result.returncode))
        size, digest = file_sha256(partial)
        partial.replace(output)
        return size, digest
    finally:
        partial.unlink(missing_ok=True)


def check_rdb(path: Path, *, timeout: float = 600) -> int:
    """Check an RDB file with `redis-check-rdb` and return how many keys it holds.

    Raises:
        RedisDumpError: when the file is damaged.
    """
    result = commands.run(("redis-check-rdb", str(path)), timeout=timeout, env=commands.environment(), check=False)
    said = f"{result.stdout}\n{result.stderr}"
    match = _KEYS_READ.search(said)
    if result.returncode != 0 or "RDB looks OK" not in said or not match:
        raise RedisDumpError(f"redis-check-rdb rejects {path.name}: {commands.last_line(said) or 'no reason given'}")
    return int(match.group(1))


def key_counts(url: str) -> dict[int, int]:
    """Return the number of keys per database (INFO keyspace).

    Raises:
        RedisDumpError: when Redis cannot be reached.
    """
    with connect(url) as client:
        try:
            keyspace = client.info("keyspace")
        except redis_errors.RedisError as error:
            raise RedisDumpError(f"cannot read INFO keyspace: {mask_secrets(str(error))}") from error
    return {int(_KEYSPACE.match(name).group(1)): int(stats["keys"]) for name, stats in keyspace.items() if _KEYSPACE.match(name)}


def url_with_db(url: str, db: int) -> str:
    """Return `url` pointing at database `db` (redis-py lets the URL's database win over a `db=` keyword)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


@contextmanager
def scratch_server(rdb_path: Path | None, workdir: Path, *, timeout: float = 600) -> Iterator[str]:
    """Start a throwaway `redis-server` on a free loopback port, loading an RDB (or empty), and yield its URL.

    Raises:
        RedisDumpError: when the server cannot start or load the file.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    loaded = workdir / "dump.rdb"
    loaded.unlink(missing_ok=True)
    if rdb_path is not None:
        loaded.symlink_to(rdb_path.resolve())
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = (
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--dbfilename",
        "dump.rdb",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    )
    try:
        with commands.background(
            argv, env=commands.environment(), ready=lambda: _loaded(url), timeout=timeout, log_path=workdir / "redis.log"
        ):
            yield url
    except commands.CommandFailed as error:
        what = f"load {rdb_path.name}" if rdb_path is not None else "start"
        raise RedisDumpError(f"a scratch redis-server could not {what}: {error}") from error
    finally:
        loaded.unlink(missing_ok=True)


def redis_version() -> str:
    """Return redis-cli's version line, for the manifest."""
    return commands.run(("redis-cli", "--version"), timeout=10, env=commands.environment()).stdout.strip()


def _location(address: RedisAddress) -> list[str]:
    if address.socket_path:
        return ["-s", address.socket_path]
    location = ["-h", address.host, "-p", str(address.port)]
    return location + (["--tls"] if address.tls else [])


def _fetch_reason(said: str, returncode: int) -> str:
    if "NOPERM" in said:
        return "the Redis user lacks the `sync` permission that `redis-cli --rdb` needs: grant it +sync +psync +replconf (ACL SETUSER)"
    if "NOAUTH" in said or "WRONGPASS" in said or "AUTH failed" in said:
        return f"authentication failed: {commands.last_line(said)}"
    return f"redis-cli --rdb failed (exit {returncode}): {commands.last_line(said) or 'no message'}"


def connect(url: str, db: int | None = None) -> redis.Redis:
    """Return a client for the server of `url`, on database `db` when given (else the URL's)."""
    # The database goes into the URL: redis-py's from_url lets the URL's database override `db=`.
    return redis.Redis.from_url(url if db is None else url_with_db(url, db), socket_timeout=60, socket_connect_timeout=10)


def _loaded(url: str) -> bool:
    with connect(url) as client:
        try:
            return client.info("persistence").get("loading", 1) == 0
        except redis_errors.RedisError:
            return False  # not listening yet, or still LOADING


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
