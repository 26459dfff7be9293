"""Redis: PING, memory use, and the length of a list or stream used as a queue."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors

from clients.errors import ClientError
from clients.redaction import mask_secrets


class RedisError(ClientError):
    """Redis refused or did not answer."""


# How long a queue is, by the type of its key: a list (LPUSH/BRPOP), a stream (XADD), a sorted set (delayed jobs).
QUEUE_LENGTHS = {"list": "llen", "stream": "xlen", "zset": "zcard", "none": None}


@dataclass(frozen=True)
class RedisStatus:
    """One successful Redis probe."""

    latency_ms: float
    used_memory_bytes: int
    max_memory_bytes: int  # 0 when no maxmemory is set


async def ping(url: str, *, timeout: float) -> RedisStatus:
    """PING Redis and read its memory use.

    Raises:
        RedisError: naming the reason (refused, timed out, needs a password, wrong password).
    """
    started = time.perf_counter()
    async with _connect(url, timeout) as client:
        try:
            await client.ping()
            memory = await client.info("memory")
        except redis_errors.RedisError as error:
            raise RedisError(_reason(error, _has_password(url))) from error
    return RedisStatus((time.perf_counter() - started) * 1000, int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0)))


async def queue_length(url: str, key: str, *, timeout: float) -> tuple[int, float]:
    """Return the length of a Redis list, stream or sorted set (0 when the key does not exist) and the latency in ms.

    Raises:
        RedisError: as `ping` does, or naming the key when it holds another type.
    """
    started = time.perf_counter()
    async with _connect(url, timeout) as client:
        try:
            key_type = (await client.type(key)).decode()
            if key_type not in QUEUE_LENGTHS:
                raise RedisError(f"key {key!r} is a {key_type}, not a list, stream or sorted set")
            length = await getattr(client, QUEUE_LENGTHS[key_type])(key) if QUEUE_LENGTHS[key_type] else 0
        except redis_errors.RedisError as error:
            raise RedisError(_reason(error, _has_password(url))) from error
    return int(length), (time.perf_counter() - started) * 1000


def _connect(url: str, timeout: float) -> aioredis.Redis:
    try:
        return aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False)
    except ValueError as error:
        raise RedisError(f"malformed Redis URL: {mask_secrets(str(error))}") from error


def _has_password(url: str) -> bool:
    return urlsplit(url).password is not None


def _reason(error: redis_errors.RedisError, sent_password: bool) -> str:
    text = mask_secrets(str(error).strip()) or type(error).__name__
    # redis-py 8 opens with HELLO, whose refusal no longer says NOAUTH; what we sent tells us more.
    if isinstance(error, redis_errors.AuthenticationError) or "NOAUTH" in text or "already authenticated" in text:
        if not sent_password:
            return "Redis wants a password (NOAUTH): add `:PASSWORD@` before the host in the URL"
        return f"authentication failed: {text}"
    if isinstance(error, redis_errors.TimeoutError):
        return f"timed out: {text}"
    if isinstance(error, redis_errors.ConnectionError):
        return f"cannot connect: {text}"
    return text
