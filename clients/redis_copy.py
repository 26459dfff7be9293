"""Moving keys between Redis servers with DUMP/RESTORE (TTLs kept), database by database, counting what arrived."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
from redis import exceptions as redis_errors

from clients.redaction import mask_secrets
from clients.redis_dump import RedisDumpError, connect

BATCH_KEYS = 500


@dataclass(frozen=True)
class DatabaseCopy:
    """One database moved from a scratch server into a target: what it held, and what arrived."""

    source_db: int
    target_db: int
    held: int
    moved: int
    expired: int  # keys the scratch server expired while this database was moved (server-wide, so an upper bound)

    @property
    def complete(self) -> bool:
        """Whether every key the database held was moved (or had expired on the way)."""
        return self.moved + self.expired >= self.held


def count_keys(url: str, db: int) -> int:
    """Return the number of keys in one database of the server of `url` (DBSIZE), whatever database the URL names.

    Raises:
        RedisDumpError: when Redis cannot be reached.
    """
    with connect(url, db) as client:
        try:
            return int(client.dbsize())
        except redis_errors.RedisError as error:
            raise RedisDumpError(f"cannot count the keys of db {db}: {mask_secrets(str(error))}") from error


def destinations(held: dict[int, int], target_db: int) -> dict[int, int]:
    """Map each database a backup holds to the target database it is restored into.

    A backup of one database goes into the target URL's database; several keep their numbers.
    """
    if len(held) == 1:
        return {next(iter(held)): target_db}
    return {db: db for db in sorted(held)}


def copy_keys(
    source_url: str,
    target_url: str,
    plan: dict[int, int],
    *,
    on_keys: Callable[[int], None] | None = None,
) -> list[DatabaseCopy]:
    """Move every key of the planned databases (source db → target db) with DUMP/RESTORE, TTLs kept.

    Returns what each database held and what was moved; the target is not checked here.

    Raises:
        RedisDumpError: when either side refuses.
    """
    copies = []
    for source_db, target_db in plan.items():
        held = count_keys(source_url, source_db)
        expired_before = expired_keys(source_url)
        moved = 0
        with connect(source_url, source_db) as source, connect(target_url, target_db) as target:
            try:
                for keys in _batches(source):
                    moved += _move(source, target, keys)
                    if on_keys:
                        on_keys(len(keys))
            except redis_errors.RedisError as error:
                raise RedisDumpError(f"moving keys into db {target_db} failed: {mask_secrets(str(error))}") from error
        copies.append(DatabaseCopy(source_db, target_db, held, moved, expired_keys(source_url) - expired_before))
    return copies


def expired_keys(url: str) -> int:
    """Return how many keys the server has expired since it started (INFO stats), to tell expiry from loss.

    Raises:
        RedisDumpError: when Redis cannot be reached.
    """
    with connect(url) as client:
        try:
            return int(client.info("stats")["expired_keys"])
        except redis_errors.RedisError as error:
            raise RedisDumpError(f"cannot read INFO stats: {mask_secrets(str(error))}") from error


def _batches(source: redis.Redis) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for key in source.scan_iter(count=BATCH_KEYS):
        batch.append(key)
        if len(batch) >= BATCH_KEYS:
            yield batch
            batch = []
    if batch:
        yield batch


def _move(source: redis.Redis, target: redis.Redis, keys: list[bytes]) -> int:
    reading = source.pipeline(transaction=False)
    for key in keys:
        reading.dump(key)
        reading.pttl(key)
    replies = reading.execute()
    writing = target.pipeline(transaction=False)
    count = 0
    for key, value, ttl in zip(keys, replies[0::2], replies[1::2]):
        if value is None or ttl == -2:
            continue  # expired while moving
        writing.restore(key, max(ttl, 0), value, replace=True)
        count += 1
    writing.execute()
    return count
