"""Redis round trips on real servers: db 0, a non-zero db, several databases, every type and TTLs,
and the restore that must fail when the target keeps fewer keys than the backup holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from clients.redis_dump import RedisDumpError, fetch_rdb
from tasks.restores import RestoreRefused, restore_redis
from tests.backup.conftest import start_redis
from tests.conftest import REDIS_SCRATCH_DB

TYPES_PER_DB = 7  # string, hash, list, set, zset, stream, a string with a TTL
SHARED_REDIS = "redis://127.0.0.1:6379"
SHARED_TARGET_DB = REDIS_SCRATCH_DB


def fill_every_type(client: redis.Redis, tag: str) -> None:
    client.set(f"{tag}:string", f"value of {tag}")
    client.hset(f"{tag}:hash", mapping={"name": "Ana", "db": tag})
    client.rpush(f"{tag}:list", "first", "second", "first")
    client.sadd(f"{tag}:set", "a", "b", "c")
    client.zadd(f"{tag}:zset", {"low": 1.5, "high": 99})
    client.xadd(f"{tag}:stream", {"event": "sent", "n": "1"}, id="1-1")
    client.xadd(f"{tag}:stream", {"event": "read", "n": "2"}, id="2-1")
    client.set(f"{tag}:session", "token", ex=3600)


def read_everything(client: redis.Redis) -> dict[bytes, tuple]:
    """Every key of the client's database: its type, its value read by type, and whether and roughly when it expires."""
    readers = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        b"stream": client.xrange,
    }
    found = {}
    for key in client.scan_iter():
        kind = client.type(key)
        ttl = client.ttl(key)
        found[key] = (kind, readers[kind](key), "no ttl" if ttl == -1 else ("ttl about an hour" if 3500 < ttl <= 3600 else ttl))
    return found


@pytest.fixture
def scratch_servers(tmp_path) -> Iterator:
    """Start throwaway redis-servers on free ports; yields a function returning (client factory, base URL)."""
    processes = []

    def start(name: str, *extra: str) -> str:
        folder = tmp_path / name
        folder.mkdir()
        process, port = start_redis(folder, *extra)
        processes.append(process)
        return f"redis://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def back_up(url: str, tmp_path: Path) -> Path:
    output = tmp_path / "redis.rdb"
    fetch_rdb(url, output, timeout=60)
    return output


@pytest.mark.parametrize("source_db", [0, 5])
def test_a_backup_of_one_database_restores_every_type_and_ttl_into_the_target_database(scratch_servers, tmp_path, source_db):
    source_url, target_url = scratch_servers("source"), scratch_servers("target")
    with redis.Redis.from_url(f"{source_url}/{source_db}") as source:
        fill_every_type(source, f"db{source_db}")
        expected = read_everything(source)
    rdb = back_up(f"{source_url}/{source_db}", tmp_path)

    copies = restore_redis(rdb, f"{target_url}/8", force=False, workdir=tmp_path / "restore")

    assert [(copy.source_db, copy.target_db, copy.held, copy.moved) for copy in copies] == [(source_db, 8, 7, 7)]
    with redis.Redis.from_url(f"{target_url}/8") as target:
        assert read_everything(target) == expected
    assert len(expected) == TYPES_PER_DB


def test_a_backup_of_a_server_with_several_databases_restores_each_into_its_own_number(scratch_servers, tmp_path):
    source_url, target_url = scratch_servers("source"), scratch_servers("target")
    expected = {}
    for db in (0, 2, 11):
        with redis.Redis.from_url(f"{source_url}/{db}") as source:
            fill_every_type(source, f"db{db}")
            expected[db] = read_everything(source)
    rdb = back_up(f"{source_url}/0", tmp_path)

    copies = restore_redis(rdb, f"{target_url}/0", force=False, workdir=tmp_path / "restore")

    assert [(copy.source_db, copy.target_db, copy.moved) for copy in copies] == [(0, 0, 7), (2, 2, 7), (11, 11, 7)]
    for db, keys in expected.items():
        with redis.Redis.from_url(f"{target_url}/{db}") as target:
            assert read_everything(target) == keys


def test_a_restore_into_an_empty_database_of_the_shared_server_ignores_keys_in_its_other_databases(scratch_servers, tmp_path, redis_url):
    source_url = scratch_servers("source")
    with redis.Redis.from_url(f"{source_url}/4") as source:
        fill_every_type(source, "db4")
        expected = read_everything(source)
    with redis.Redis.from_url(redis_url) as other:
        other.set("someone-else", "keeps this")  # another database of the target server is not empty
    with redis.Redis.from_url(f"{SHARED_REDIS}/{SHARED_TARGET_DB}") as target:
        target.flushdb()
        try:
            copies = restore_redis(
                back_up(f"{source_url}/4", tmp_path), f"{SHARED_REDIS}/{SHARED_TARGET_DB}", force=False, workdir=tmp_path / "restore"
            )
            assert read_everything(target) == expected
            assert [(copy.held, copy.moved) for copy in copies] == [(7, 7)]
        finally:
            target.flushdb()


def test_a_restore_into_a_database_that_holds_keys_is_refused_naming_that_database(scratch_servers, tmp_path):
    source_url, target_url = scratch_servers("source"), scratch_servers("target")
    with redis.Redis.from_url(f"{source_url}/0") as source:
        fill_every_type(source, "db0")
    with redis.Redis.from_url(f"{target_url}/8") as target:
        target.set("already", "here")
    rdb = back_up(f"{source_url}/0", tmp_path)

    with pytest.raises(RestoreRefused, match=r"^Redis redis://127\.0\.0\.1:\d+/8 is not empty; add --force"):
        restore_redis(rdb, f"{target_url}/8", force=False, workdir=tmp_path / "restore")
    with redis.Redis.from_url(f"{target_url}/8") as target:
        assert target.keys() == [b"already"]


def test_a_target_that_evicts_keys_while_they_are_restored_fails_the_restore_naming_the_shortfall(scratch_servers, tmp_path):
    source_url = scratch_servers("source")
    target_url = scratch_servers("target", "--maxmemory", "3mb", "--maxmemory-policy", "allkeys-random")
    with redis.Redis.from_url(f"{source_url}/0") as source:
        source.mset({f"blob:{n}": "x" * 20_000 for n in range(400)})  # about 8 MB: more than the target keeps
    rdb = back_up(f"{source_url}/0", tmp_path)

    with pytest.raises(RedisDumpError, match=r"is incomplete: db 0 holds \d+ keys, 400 were written of the 400 in the backup's db 0"):
        restore_redis(rdb, f"{target_url}/0", force=False, workdir=tmp_path / "restore")
