"""The probe task: measure every target concurrently and grade each against its thresholds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timezone

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.health_targets import HealthTarget
from blocks.probe_kinds import PROBE_KINDS
from clients.errors import ClientError
from clients.redaction import mask_secrets
from store.probes import ProbeResult
from tasks.probe_measures import MEASURES, Measure, ProbeContext, ProbeFailed

__all__ = ["ProbeContext", "grade", "probe_target", "probe_targets"]


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


async def _measure(target: HealthTarget, context: ProbeContext, at: datetime) -> Measure:
    measure = MEASURES.get(target.kind)
    if measure is None:  # only a document stored by another version of Vigia can name one
        raise ProbeFailed(f"unknown probe kind {target.kind!r}")
    return await measure(target, context, at)


def grade(target: HealthTarget, measure: Measure, at: datetime) -> ProbeResult:
    """Grade a successful measure against the target's two-tier thresholds and latency limit."""
    warning_at, critical_at = target.thresholds()
    lower_is_worse = PROBE_KINDS[target.kind].lower_is_worse

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
