"""How each probe kind measures: one async function per kind, found by kind in `MEASURES` (the registry's functions).

A measure returns what it saw, or raises a `ClientError` or `ProbeFailed` naming the reason; `tasks.probes` grades it
against the kind's row in `blocks.probe_kinds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget
from clients import evolution, groq, host, http, postgres, prefect_server, redis, tcp
from store import voice_note_queue
from store.database import StoreError, open_session
from store.sla import backup_freshness

ERROR_RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ProbeContext:
    """What probes need beyond the target itself: the gateways' Blocks, the Prefect API and where samples are kept."""

    evolution: EvolutionApi | None = None
    groq: GroqApi | None = None
    prefect_api_url: str | None = None
    prefect_auth_string: str | None = None
    samples_dir: Path | None = None  # cpu: the previous probe's counters, so a probe measures the interval since it


class ProbeFailed(Exception):
    """The target answered, but not as a healthy one does."""


@dataclass(frozen=True)
class Measure:
    """What one probe saw: the kind's number, the latency, and a short summary."""

    value: float | None
    latency_ms: float | None
    summary: str


MeasureFunction = Callable[[HealthTarget, ProbeContext, datetime], Awaitable[Measure]]


async def measure_tcp(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Connect to host:port."""
    latency = await tcp.connect(target.url or "", timeout=target.timeout_seconds)
    return Measure(None, latency, "connected")


async def measure_postgres(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Connect, `SELECT 1`, and measure the connections in use as a share of max_connections."""
    status = await postgres.ping(target.dsn.get_secret_value(), timeout=target.timeout_seconds)
    used = 100.0 * status.connections_in_use / status.max_connections
    return Measure(used, status.latency_ms, f"{status.connections_in_use}/{status.max_connections} connections in use")


async def measure_redis(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """PING Redis and measure its memory use as a share of maxmemory, when one is set."""
    status = await redis.ping(target.dsn.get_secret_value(), timeout=target.timeout_seconds)
    if not status.max_memory_bytes:
        return Measure(None, status.latency_ms, f"{status.used_memory_bytes // 2**20} MiB used, no maxmemory")
    used = 100.0 * status.used_memory_bytes / status.max_memory_bytes
    return Measure(used, status.latency_ms, f"memory {used:.0f}% of maxmemory")


async def measure_queue(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Count the items waiting: a Redis list's or stream's length, or the store's voice notes waiting for a transcriber."""
    if target.queue_key == voice_note_queue.HEALTH_QUEUE_KEY and not target.dsn.get_secret_value().startswith(("redis", "unix")):
        return await _measure_voice_note_queue(target, at)
    length, latency = await redis.queue_length(target.dsn.get_secret_value(), target.queue_key or "", timeout=target.timeout_seconds)
    return Measure(float(length), latency, f"{length} items in {target.queue_key}")


async def measure_disk(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Measure the free share of the file system holding the target's path."""
    free, free_bytes = host.disk_free_percent(target.url or "/")
    return Measure(free, None, f"{free:.1f}% free ({free_bytes / 2**30:.1f} GiB)")


async def measure_memory(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Measure this host's used memory."""
    used = host.memory_used_percent()
    return Measure(used, None, f"{used:.1f}% used")


async def measure_cpu(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Measure this host's busy CPU share since the previous probe (a short sample on the first)."""
    sample_file = context.samples_dir / f"{target.name}.cpu.json" if context.samples_dir else None
    busy = await asyncio.to_thread(host.cpu_busy_percent, sample_file)
    return Measure(busy.percent, None, f"{busy.percent:.1f}% busy over the last {busy.seconds:.0f} s")


async def measure_http(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Fetch the URL, check its status and JSON field, and measure the days left on its TLS certificate."""
    reply = await http.fetch(target.url or "", timeout=target.timeout_seconds, json_field=target.json_field, ca_file=target.ca_file)
    expected = f"{target.expect_status}" if target.expect_status else "2xx or 3xx"
    status_ok = reply.status_code == target.expect_status if target.expect_status else 200 <= reply.status_code < 400
    if not status_ok:
        raise ProbeFailed(f"HTTP {reply.status_code}, expected {expected}")
    if target.json_field and reply.json_value != target.json_value:
        raise ProbeFailed(f"JSON {target.json_field} is {reply.json_value!r}, expected {target.json_value!r}")
    if reply.certificate_expires_at is None:
        return Measure(None, reply.latency_ms, f"HTTP {reply.status_code}")
    days_left = (reply.certificate_expires_at - at).total_seconds() / 86400
    if days_left <= 0:
        raise ProbeFailed(f"TLS certificate expired on {reply.certificate_expires_at:%Y-%m-%d}")
    return Measure(days_left, reply.latency_ms, f"HTTP {reply.status_code}, TLS certificate expires in {days_left:.1f} days")


async def measure_prefect(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Measure the Prefect API's workflow error rate over the last hour, and its late runs."""
    api_url = target.url or context.prefect_api_url
    if not api_url:
        raise ProbeFailed("not configured: no Prefect API URL (PREFECT_API_URL)")
    async with prefect_server.create_client(api_url, timeout=target.timeout_seconds, auth_string=context.prefect_auth_string) as client:
        counts = await prefect_server.count_runs(client, at, ERROR_RATE_WINDOW)
    finished = counts.completed + counts.failed + counts.crashed
    summary = f"error rate {counts.error_rate_percent:.1f}% of {finished} runs in the last hour, {counts.late} late"
    return Measure(counts.error_rate_percent, counts.latency_ms, summary)


async def measure_evolution(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Ask Evolution API for the WhatsApp instance's connection state; only `open` is up."""
    block = context.evolution
    if block is None:
        raise ProbeFailed("not configured: set EVOLUTION_API_URL, EVOLUTION_API_KEY and EVOLUTION_INSTANCE")
    async with evolution.create_client(block.url, block.api_key.get_secret_value(), timeout=target.timeout_seconds) as client:
        state, latency = await evolution.read_connection_state(client, block.instance)
    if state != "open":
        raise ProbeFailed(f"WhatsApp instance {block.instance!r} is {state or 'not loaded'}, not open")
    return Measure(None, latency, f"instance {block.instance} open")


async def measure_groq(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """List the models the Groq key can use; the transcription model must be among them."""
    block = context.groq
    if block is None:
        raise ProbeFailed("not configured: set GROQ_API_KEY")
    client = groq.create_client(block.api_key.get_secret_value(), block.base_url, timeout=target.timeout_seconds)
    async with client:
        models, latency = await groq.list_models(client)
    if block.transcription_model not in models:
        raise ProbeFailed(f"model {block.transcription_model!r} is not available to this key")
    return Measure(None, latency, f"{len(models)} models, {block.transcription_model} available")


async def _measure_voice_note_queue(target: HealthTarget, at: datetime) -> Measure:
    """The transcription queue in the store: notes waiting for a transcriber, and the oldest one's wait."""
    started = time.perf_counter()

    def read() -> voice_note_queue.QueueState:
        with open_session(target.dsn.get_secret_value()) as session:
            return voice_note_queue.read_queue(session, at)

    try:
        queue = await asyncio.to_thread(read)
    except StoreError as error:
        raise ProbeFailed(str(error)) from error
    detail = f"{queue.waiting} voice notes waiting, the oldest for {queue.oldest_waiting_seconds:.0f} s; {queue.held} being answered"
    return Measure(float(queue.waiting), (time.perf_counter() - started) * 1000, detail)


async def measure_backup(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    """Measure the age of the newest verified backup."""

    def read_freshness():
        with open_session(target.dsn.get_secret_value()) as session:
            return backup_freshness(session, at)

    try:
        fresh = await asyncio.to_thread(read_freshness)
    except StoreError as error:
        raise ProbeFailed(str(error)) from error
    if fresh.awaiting_first:  # a fresh install: no backup was due yet, so nobody is paged
        return Measure(None, None, f"no verified backup yet; {fresh.first_due_text()} (daily at 03:00, or `vigia backup run`)")
    if fresh.age_seconds is None:
        raise ProbeFailed("no verified backup yet: run `vigia backup run` (it also runs daily at 03:00)")
    age_hours = fresh.age_seconds / 3600
    return Measure(age_hours, None, f"newest verified backup {fresh.run_id} is {age_hours:.1f} h old")


# The registry's functions, one per row of blocks.probe_kinds.PROBE_KINDS.
MEASURES: dict[str, MeasureFunction] = {
    "http": measure_http,
    "tcp": measure_tcp,
    "postgres": measure_postgres,
    "redis": measure_redis,
    "queue": measure_queue,
    "disk": measure_disk,
    "memory": measure_memory,
    "cpu": measure_cpu,
    "prefect": measure_prefect,
    "evolution": measure_evolution,
    "groq": measure_groq,
    "backup": measure_backup,
}
