"""A growing wait between wrong dashboard passwords per client, so guessing is not free."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_ATTEMPTS = 3
# A client's address can be faked (a proxy's header, many sources): all clients together also get a
# budget, so rotating addresses buys a few more guesses, not free ones.
FREE_ATTEMPTS_ALL_CLIENTS = 20
ALL_CLIENTS = "*"
MAX_WAIT_SECONDS = 60.0
FORGET_AFTER_SECONDS = 3600.0
MAX_CLIENTS = 10_000


@dataclass
class _Failures:
    count: int
    last_at: float


class LoginThrottle:
    """Counts wrong passwords per client and for all clients; past the free attempts each doubles the wait, up to a minute.

    The state is per process and shared by every browser session, so opening a new session does
    not reset it; a client is keyed by its address (behind a proxy, all clients share one key,
    which errs towards locking out rather than letting guesses through).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, _Failures] = {}

    def wait_seconds(self, client: str) -> float:
        """Return how long `client` must wait before its next attempt is even checked (0 when free)."""
        with self._lock:
            return max(self._wait(client, FREE_ATTEMPTS), self._wait(ALL_CLIENTS, FREE_ATTEMPTS_ALL_CLIENTS))

    def record_failure(self, client: str) -> None:
        """Count one wrong password from `client`."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            for key in (client, ALL_CLIENTS):
                failures = self._failures.setdefault(key, _Failures(0, now))
                failures.count += 1
                failures.last_at = now

    def record_success(self, client: str) -> None:
        """Forget `client`'s wrong passwords once it gave the right one."""
        with self._lock:
            self._failures.pop(client, None)

    def _wait(self, key: str, free_attempts: int) -> float:
        failures = self._failures.get(key)
        if failures is None or failures.count < free_attempts:
            return 0.0
        wait = min(2.0 ** (failures.count - free_attempts + 1), MAX_WAIT_SECONDS)
        return max(0.0, failures.last_at + wait - self._clock())

    def _forget_old(self, now: float) -> None:
        # Bounded memory: idle clients are forgotten, and a flood of new addresses drops the oldest.
        stale = [client for client, failures in self._failures.items() if now - failures.last_at > FORGET_AFTER_SECONDS]
        for client in stale:
            del self._failures[client]
        while len(self._failures) >= MAX_CLIENTS:
            del self._failures[min(self._failures, key=lambda client: self._failures[client].last_at)]


@functools.cache
def shared_throttle() -> LoginThrottle:
    """The server's one throttle: it outlives each script run, so a new browser session starts with its client's count."""
    return LoginThrottle()
