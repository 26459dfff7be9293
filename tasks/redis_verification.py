"""Verifying a Redis backup the way it is restored: through `vigia restore`'s path into a scratch server,
then comparing key counts per database and a sample of values and TTLs of every type."""

from __future__ import annotations

import shutil
from pathlib import Path

from clients import redis_copy, redis_dump
from clients.redis_sample import compare_sample
from tasks.restores import restore_redis


class RedisVerificationFailed(Exception):
    """A Redis backup restored into a scratch server does not match what it holds, or what the source held."""


def verify_redis_backup(source: str, path: Path, workdir: Path, expected: dict, *, timeout: float) -> str:
    """Restore an RDB into an empty scratch `redis-server` as `vigia restore` would, and compare; return the verdict.

    `expected` is what the capture recorded: the source's key count before and after the copy.

    Raises:
        RedisVerificationFailed: naming the databases or keys that differ.
        RedisDumpError: when a scratch server cannot start, or the restore is incomplete.
    """
    samples: dict[str, int] = {}
    problems: list[str] = []

    def inspect(backup_url: str, copies: list[redis_copy.DatabaseCopy]) -> None:
        for copy in copies:
            comparison = compare_sample(backup_url, copy.source_db, target_url, copy.target_db)
            problems.extend(f"db {copy.source_db}: {difference}" for difference in comparison.differences)
            for kind, count in comparison.compared.items():
                samples[kind] = samples.get(kind, 0) + count

    try:
        with redis_dump.scratch_server(None, workdir / "target", timeout=timeout) as target_url:
            copies = restore_redis(path, target_url, force=False, workdir=workdir / "backup", timeout=timeout, inspect=inspect)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if problems:
        raise RedisVerificationFailed(f"{source}: the restored copy differs: {'; '.join(problems[:5])}")
    loaded = sum(copy.held for copy in copies)
    low, high = sorted((expected["keys_before"], expected["keys_after"]))
    # The source may change while it is copied: the copy must hold what the source held at some point.
    if not low <= loaded <= high:
        raise RedisVerificationFailed(f"{source}: the backup holds {loaded} keys, the source had {low}..{high}")
    per_db = ", ".join(f"db {copy.source_db} {copy.moved}" for copy in copies) or "no keys"
    sampled = ", ".join(f"{count} {kind}" for kind, count in sorted(samples.items())) or "nothing"
    return (
        f"restored into a scratch redis-server as `vigia restore` does: {loaded} keys match ({per_db}); values and TTLs match for {sampled}"
    )
