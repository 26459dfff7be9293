"""Groq's rate limits, shared by every transcriber on every host: concurrency, requests per minute, audio seconds per hour.

The shared bound is three Prefect global concurrency limits (`vigia setup` creates them; the UI's
Concurrency page edits them): one held (under a lease) while a batch runs, two with slot decay
used as rate limits, each taken once per batch. A local bound with the same numbers holds when Prefect is away. A note that finds no room
before its patience runs out is put back in the queue (oldest first) instead of meeting a 429. Groq's own
word steers the local bound: a 429's retry-after, or `x-ratelimit-remaining-requests: 0` until its reset,
holds admissions (and a transcriber's claims) until then.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import ObjectNotFound

CONCURRENCY_LIMIT = "groq-concurrency"
REQUESTS_LIMIT = "groq-requests-per-minute"
AUDIO_LIMIT = "groq-audio-seconds-per-hour"
SHARED_LEASE_SECONDS = 120  # a batch's held slots free themselves this long after a holder died
MIN_BILLED_SECONDS = 10  # Groq bills every Whisper request as at least 10 s of audio
# A batch that finds the shared limits full asks again within this (jittered): slots a finished batch gave back
# are taken within ~0.4 s, at a few cheap writes per second while transcribers wait on each other.
SHARED_POLL_SECONDS = 0.5
DEFAULT_HOLD_SECONDS = 1.0  # a 429 that named no retry-after
logger = logging.getLogger(__name__)
_admitted: ContextVar[GroqGate | None] = ContextVar("groq_admitted", default=None)  # the gate whose room this request holds


class GroqBusy(Exception):
    """Groq's limits left no room within the patience given: the note goes back to the queue."""


@dataclass(frozen=True)
class GroqLimits:
    """How much of Groq every Vigia process together may use."""

    max_concurrency: int
    requests_per_minute: int
    audio_seconds_per_hour: int

    def definitions(self) -> list[GlobalConcurrencyLimitCreate]:
        """The Prefect global concurrency limits that share these bounds between processes and hosts."""
        return [
            GlobalConcurrencyLimitCreate(name=CONCURRENCY_LIMIT, limit=self.max_concurrency),
            GlobalConcurrencyLimitCreate(
                name=REQUESTS_LIMIT, limit=self.requests_per_minute, slot_decay_per_second=self.requests_per_minute / 60
            ),
            GlobalConcurrencyLimitCreate(
                name=AUDIO_LIMIT, limit=self.audio_seconds_per_hour, slot_decay_per_second=self.audio_seconds_per_hour / 3600
            ),
        ]


async def ensure_groq_limits(limits: GroqLimits) -> list[str]:
    """Create the missing global concurrency limits (existing ones keep their UI edits); one line per limit."""
    lines = []
    async with get_client() as client:
        for definition in limits.definitions():
            try:
                existing = await client.read_global_concurrency_limit_by_name(definition.name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(definition)
                lines.append(f"concurrency limit {definition.name}: created, limit {definition.limit}")
                continue
            lines.append(f"concurrency limit {definition.name}: kept, limit {existing.limit} (edit it on the UI's Concurrency page)")
    return lines


class _LocalRate:
    """A token bucket: `capacity` units refilled evenly over `period_seconds`."""

    def __init__(self, capacity: int, period_seconds: float):
        self.capacity = capacity
        self.per_second = capacity / period_seconds
        self.tokens = float(capacity)
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: int, deadline: float) -> None:
        amount = min(amount, self.capacity)
        async with self.lock:  # one waiter at a time keeps the order of arrival
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
                self.updated = now
                if self.tokens >= amount:
                    self.tokens -= amount
                    return
                wait = (amount - self.tokens) / self.per_second
                if now + wait > deadline:
                    raise GroqBusy(f"the local bound of {self.capacity} per period has no room for {wait:.1f} s")
                await asyncio.sleep(wait)


class GroqGate:
    """Admits Groq requests within the local bound and, while Prefect answers, the shared one."""

    def __init__(self, limits: GroqLimits):
        self.limits = limits
        self._running = asyncio.Semaphore(limits.max_concurrency)
        self._requests = _LocalRate(limits.requests_per_minute, 60)
        self._audio = _LocalRate(limits.audio_seconds_per_hour, 3600)
        self._shared_failing = False
        self._held_until = 0.0  # time.monotonic(): Groq asked to wait (a 429's retry-after, or the day's requests spent)

    def hold_off(self, seconds: float, why: str) -> None:
        """Admit nobody for `seconds`: Groq told us to wait, and every note that asked now would meet a 429."""
        until = time.monotonic() + seconds
        if until > self._held_until + 0.5:
            logger.warning("Groq asked to wait %.1f s (%s): voice notes wait in the queue meanwhile", seconds, why)
        self._held_until = max(self._held_until, until)

    def held_seconds(self) -> float:
        """How long admissions still wait for Groq's say-so (0: not held)."""
        return max(self._held_until - time.monotonic(), 0.0)

    @asynccontextmanager
    async def admit(self, audio_seconds: float | None, patience_seconds: float) -> AsyncIterator[None]:
        """Hold one request's room in this process's bound for the block's duration.

        Raises:
            GroqBusy: when there was no room within `patience_seconds`.
        """
        deadline = time.monotonic() + patience_seconds
        while held := self.held_seconds():
            if time.monotonic() + held > deadline:
                raise GroqBusy(f"Groq asked to wait {held:.0f} s more")
            await asyncio.sleep(held)
        try:
            await asyncio.wait_for(self._running.acquire(), timeout=patience_seconds)
        except TimeoutError as error:
            raise GroqBusy(f"{self.limits.max_concurrency} Groq requests already run in this process") from error
        admitted = _admitted.set(self)
        try:
            await self._requests.take(1, deadline)
            await self._audio.take(billed_seconds(audio_seconds), deadline)
            yield
        finally:
            _admitted.reset(admitted)
            self._running.release()

    @asynccontextmanager
    async def admit_shared(self, requests: int, billed: int, patience_seconds: float) -> AsyncIterator[None]:
        """Hold a batch's room in the limits every process shares, for the block's duration; alone when Prefect is away.

        One acquisition per batch, not per request: on Prefect's embedded SQLite server each one is a
        write that waits behind every other (measured 0.03–2 s each under a burst).

        Raises:
            GroqBusy: when the shared limits had no room within `patience_seconds`.
        """
        deadline = time.monotonic() + patience_seconds
        async with AsyncExitStack() as stack:
            await self._enter_shared(stack, min(requests, self.limits.max_concurrency), billed, deadline)
            yield

    async def _enter_shared(self, stack: AsyncExitStack, requests: int, billed: int, deadline: float) -> None:
        audio = min(billed, self.limits.audio_seconds_per_hour)
        try:
            async with get_client() as client:
                outcomes = await asyncio.gather(
                    _increment(client, CONCURRENCY_LIMIT, requests, "concurrency", deadline),
                    _increment(client, REQUESTS_LIMIT, requests, "rate_limit", deadline),
                    _increment(client, AUDIO_LIMIT, audio, "rate_limit", deadline),
                    return_exceptions=True,
                )
        except (httpx.HTTPError, OSError) as error:
            outcomes = [error]
        lease_id = outcomes[0] if isinstance(outcomes[0], str) else None
        if lease_id:
            stack.push_async_callback(_release, lease_id)
        problems = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if any(isinstance(problem, TimeoutError) for problem in problems):
            raise GroqBusy("the shared Groq limits had no room (see the UI's Concurrency page)")
        if problems:  # Prefect away: the local bound holds alone
            if not self._shared_failing:
                logger.warning("Groq's shared limits are unreachable (%s); using this process's bound only", problems[0])
            self._shared_failing = True
            return
        if self._shared_failing:
            logger.info("Groq's shared limits answer again")
        self._shared_failing = False


async def _increment(client, name: str, slots: int, mode: str, deadline: float) -> str | None:
    """Take `slots` of one limit, waiting out 423s until the deadline; the lease id for a held concurrency slot.

    Called directly, not through prefect.concurrency's helpers: those queue every acquisition of a
    limit behind the previous one in a service thread, which under a burst made a batch wait 3–4 s
    for slots that were free (measured on the embedded SQLite server).

    Raises:
        TimeoutError: when the limit had no room before the deadline.
    """
    while True:
        try:
            if mode == "concurrency":
                response = await client.increment_concurrency_slots_with_lease(
                    names=[name],
                    slots=slots,
                    mode="concurrency",
                    lease_duration=SHARED_LEASE_SECONDS,
                )
                return response.json().get("lease_id")
            await client.increment_concurrency_slots(names=[name], slots=slots, mode="rate_limit")
            return None
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 423:
                wait = min(float(error.response.headers.get("Retry-After") or 1.0), SHARED_POLL_SECONDS) * random.uniform(0.5, 1.0)
            else:
                raise
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"{name}: no room for {slots} slots") from error
            await asyncio.sleep(wait)


async def _release(lease_id: str) -> None:
    try:
        async with get_client() as client:
            await client.release_concurrency_slots_with_lease(lease_id=UUID(lease_id))
    except (httpx.HTTPError, OSError) as error:  # the lease runs out by itself
        logger.warning("releasing Groq's shared slots failed (they free themselves within %d s): %s", SHARED_LEASE_SECONDS, error)


def report_rate_limited(retry_after_seconds: float | None) -> None:
    """Groq answered 429 to the admitted request: hold this gate for its retry-after, so the next notes wait instead."""
    if (gate := _admitted.get()) is not None:
        gate.hold_off(retry_after_seconds if retry_after_seconds is not None else DEFAULT_HOLD_SECONDS, "429")


def report_requests_left(remaining: int | None, reset_seconds: float | None) -> None:
    """Groq's headers on a reply: with none of the day's requests left, hold this gate until the count resets."""
    if remaining == 0 and reset_seconds and (gate := _admitted.get()) is not None:
        gate.hold_off(reset_seconds, "the day's requests are spent")


def held_seconds() -> float:
    """The longest hold of this event loop's gates: a transcriber claims no notes meanwhile."""
    return max((gate.held_seconds() for gate in _gates.get(asyncio.get_running_loop(), {}).values()), default=0.0)


def billed_seconds(audio_seconds: float | None) -> int:
    """The audio seconds Groq counts for one request."""
    return max(MIN_BILLED_SECONDS, math.ceil(audio_seconds or 0))


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[GroqLimits, GroqGate]] = weakref.WeakKeyDictionary()


def gate_for(limits: GroqLimits) -> GroqGate:
    """This event loop's gate for these limits: every run on a transcriber's loop shares it."""
    per_loop = _gates.setdefault(asyncio.get_running_loop(), {})
    gate = per_loop.get(limits)
    if gate is None:
        gate = per_loop[limits] = GroqGate(limits)
    return gate
