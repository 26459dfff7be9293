"""Comparing a sample of keys between two Redis databases: each key's value read by its type, and its TTL."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis import exceptions as redis_errors

from clients.redaction import mask_secrets
from clients.redis_dump import RedisDumpError, connect

SCAN_LIMIT = 10_000
TTL_SLACK_MS = 5_000
_READERS = {
    "string": lambda client, key: client.get(key),
    "hash": lambda client, key: client.hgetall(key),
    "list": lambda client, key: client.lrange(key, 0, -1),
    "set": lambda client, key: sorted(client.smembers(key)),
    "zset": lambda client, key: client.zrange(key, 0, -1, withscores=True),
    "stream": lambda client, key: client.xrange(key),
}


@dataclass(frozen=True)
class SampleComparison:
    """How many keys were compared per type, and every difference found."""

    compared: dict[str, int]
    differences: tuple[str, ...]


def compare_sample(source_url: str, source_db: int, target_url: str, target_db: int, *, per_type: int = 20) -> SampleComparison:
    """Compare up to `per_type` keys of each type of the source database with the target: value and TTL.

    Raises:
        RedisDumpError: when either side cannot be read.
    """
    with connect(source_url, source_db) as source, connect(target_url, target_db) as target:
        try:
            sample = _sample_keys(source, per_type)
            differences = [
                difference
                for kind, keys in sample.items()
                for key in keys
                if (difference := _compare_key(source, target, kind, key)) is not None
            ]
        except redis_errors.RedisError as error:
            raise RedisDumpError(f"cannot compare db {source_db} with db {target_db}: {mask_secrets(str(error))}") from error
    return SampleComparison({kind: len(keys) for kind, keys in sample.items()}, tuple(differences))


def _sample_keys(client: redis.Redis, per_type: int) -> dict[str, list[bytes]]:
    sample: dict[str, list[bytes]] = {}
    for scanned, key in enumerate(client.scan_iter(count=500)):
        if scanned >= SCAN_LIMIT:
            break
        kind = client.type(key).decode()
        keys = sample.setdefault(kind, [])
        if len(keys) < per_type:
            keys.append(key)
    return sample


def _compare_key(source: redis.Redis, target: redis.Redis, kind: str, key: bytes) -> str | None:
    name = key.decode(errors="replace")
    found = target.type(key).decode()
    if found == "none" and not source.exists(key):
        return None  # expired in both while they were compared
    if found != kind:
        return f"{name}: a {kind} in the backup, {'missing' if found == 'none' else 'a ' + found} after the restore"
    reader = _READERS.get(kind, lambda client, key: client.dump(key))
    if reader(source, key) != reader(target, key):
        return f"{name}: the {kind} value differs after the restore"
    before, after = source.pttl(key), target.pttl(key)
    if (before < 0) != (after < 0) or (before >= 0 and abs(before - after) > TTL_SLACK_MS):
        return f"{name}: TTL {_ttl(before)} in the backup, {_ttl(after)} after the restore"
    return None


def _ttl(milliseconds: int) -> str:
    return "none" if milliseconds < 0 else f"{milliseconds / 1000:.0f} s"
