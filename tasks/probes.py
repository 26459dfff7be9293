"""The probe task: measure every target concurrently and grade each against its thresholds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import LOWER_IS_WORSE, HealthTarget
from clients import evolution, groq, host, http, postgres, prefect_server, redis, tcp
from clients.errors import ClientError
from clients.redaction import mask_secrets
from store import voice_note_queue
from store.database import StoreError, open_session
from store.probes import ProbeResult
from store.sla import backup_freshness

ERROR_RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ProbeContext:
    """What probes need beyond the target itself: the gateways' Blocks and the Prefect API."""

    evolution: EvolutionApi | None = None
    groq: GroqApi | None = None
    prefect_api_url: str | None = None
    prefect_auth_string: str | None = None


class ProbeFailed(Exception):
    """The target answered, but not as a healthy one does."""


@dataclass(frozen=True)
class Measure:
    """What one probe saw: the kind's number, the latency, and a short summary."""

    value: float | None
    latency_ms: float | None
    summary: str


@task(name="probe-targets", cache_policy=NO_CACHE)
async def probe_targets(targets: Sequence[HealthTarget], context: ProbeContext) -> list[ProbeResult]:
    """Probe every target at once; a failing or hanging probe never stops the others."""
    logger = get_run_logger()
    results = await asyncio.gather(*(probe_target(target, context) for target in targets))
    for result in results:
        latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
        outcome = ("WARNING" if result.level == "warning" else "OK") if result.ok else "FAILED"
        logger.info("%s (%s) %s%s: %s", result.target, result.kind, outcome, latency, result.reason)
    return list(results)


async def probe_target(target: HealthTarget, context: ProbeContext) -> ProbeResult:
    """Probe one target and grade the result; every error becomes a failed result naming the reason."""
    at = datetime.now(timezone.utc)
    started = time.perf_counter()
    try:
        # The clients enforce the target's timeout; this guard only catches a client that does not.
        measure = await asyncio.wait_for(_measure(target, context, at), target.timeout_seconds + 2)
    except (ClientError, ProbeFailed) as error:
        return _failed(target, at, started, str(error))
    except asyncio.TimeoutError:
        return _failed(target, at, started, f"timed out after {target.timeout_seconds:g} s")
    except Exception as error:  # a probe bug must not take down the whole check
        return _failed(target, at, started, f"probe error: {type(error).__name__}: {error}")
    return grade(target, measure, at)


def grade(target: HealthTarget, measure: Measure, at: datetime) -> ProbeResult:
    """Grade a successful measure against the target's two-tier thresholds and latency limit."""
    warning_at, critical_at = target.thresholds()
    lower_is_worse = target.kind in LOWER_IS_WORSE

    def crosses(threshold: float | None) -> bool:
        if threshold is None or measure.value is None:
            return False
        return measure.value < threshold if lower_is_worse else measure.value > threshold

    level, ok, reason = "ok", True, measure.summary
    if crosses(critical_at):
        level, ok, reason = "critical", False, f"{measure.summary} (critical threshold {critical_at:g})"
    elif crosses(warning_at):
        level, reason = "warning", f"{measure.summary} (warning threshold {warning_at:g})"
    elif measure.latency_ms is not None and measure.latency_ms > target.latency_warning_ms:
        level, reason = "warning", f"slow: {measure.latency_ms:.0f} ms (warning above {target.latency_warning_ms:g} ms)"
    return ProbeResult(
        target=target.name,
        kind=target.kind,
        at=at,
        ok=ok,
        level=level,
        latency_ms=measure.latency_ms,
        value=measure.value,
        reason=reason,
    )


def _failed(target: HealthTarget, at: datetime, started: float, reason: str) -> ProbeResult:
    secrets = [target.dsn.get_secret_value()] if target.dsn else []
    return ProbeResult(
        target=target.name,
        kind=target.kind,
        at=at,
        ok=False,
        level="critical",
        latency_ms=(time.perf_counter() - started) * 1000,
        reason=mask_secrets(reason, secrets),
    )


async def _measure(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    kind = target.kind
    if kind == "http":
        return await _measure_http(target, at)
    if kind == "tcp":
        latency = await tcp.connect(target.url or "", timeout=target.timeout_seconds)
        return Measure(None, latency, "connected")
    if kind == "postgres":
        status = await postgres.ping(target.dsn.get_secret_value(), timeout=target.timeout_seconds)
        used = 100.0 * status.connections_in_use / status.max_connections
        return Measure(used, status.latency_ms, f"{status.connections_in_use}/{status.max_connections} connections in use")
    if kind == "redis":
        status = await redis.ping(target.dsn.get_secret_value(), timeout=target.timeout_seconds)
        if not status.max_memory_bytes:
            return Measure(None, status.latency_ms, f"{status.used_memory_bytes // 2**20} MiB used, no maxmemory")
        used = 100.0 * status.used_memory_bytes / status.max_memory_bytes
        return Measure(used, status.latency_ms, f"memory {used:.0f}% of maxmemory")
    if kind == "queue" and target.queue_key == voice_note_queue.HEALTH_QUEUE_KEY:
        return await _measure_voice_note_queue(target, at)
    if kind == "queue":
        length, latency = await redis.list_length(target.dsn.get_secret_value(), target.queue_key or "", timeout=target.timeout_seconds)
        return Measure(float(length), latency, f"{length} items in {target.queue_key}")
    if kind == "disk":
        free, free_bytes = host.disk_free_percent(target.url or "/")
        return Measure(free, None, f"{free:.1f}% free ({free_bytes / 2**30:.1f} GiB)")
    if kind == "memory":
        used = host.memory_used_percent()
        return Measure(used, None, f"{used:.1f}% used")
    if kind == "prefect":
        return await _measure_prefect(target, context, at)
    if kind == "evolution":
        return await _measure_evolution(target, context)
    if kind == "groq":
        return await _measure_groq(target, context)
    if kind == "backup":
        return await _measure_backup(target, at)
    raise ProbeFailed(f"unknown probe kind {kind!r}")


async def _measure_http(target: HealthTarget, at: datetime) -> Measure:
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


async def _measure_prefect(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    api_url = target.url or context.prefect_api_url
    if not api_url:
        raise ProbeFailed("not configured: no Prefect API URL (PREFECT_API_URL)")
    async with prefect_server.create_client(api_url, timeout=target.timeout_seconds, auth_string=context.prefect_auth_string) as client:
        counts = await prefect_server.count_runs(client, at, ERROR_RATE_WINDOW)
    finished = counts.completed + counts.failed + counts.crashed
    summary = f"error rate {counts.error_rate_percent:.1f}% of {finished} runs in the last hour, {counts.late} late"
    return Measure(counts.error_rate_percent, counts.latency_ms, summary)


async def _measure_evolution(target: HealthTarget, context: ProbeContext) -> Measure:
    block = context.evolution
    if block is None:
        raise ProbeFailed("not configured: set EVOLUTION_API_URL, EVOLUTION_API_KEY and EVOLUTION_INSTANCE")
    async with evolution.create_client(block.url, block.api_key.get_secret_value(), timeout=target.timeout_seconds) as client:
        state, latency = await evolution.read_connection_state(client, block.instance)
    if state != "open":
        raise ProbeFailed(f"WhatsApp instance {block.instance!r} is {state or 'not loaded'}, not open")
    return Measure(None, latency, f"instance {block.instance} open")


async def _measure_groq(target: HealthTarget, context: ProbeContext) -> Measure:
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


async def _measure_backup(target: HealthTarget, at: datetime) -> Measure:
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
