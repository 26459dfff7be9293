"""Waiting for something another process or thread does: poll a predicate until it holds, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], seconds: float, what: str, every: float = 0.05) -> T:
    """Return the predicate's first truthy value; fail naming `what` once `seconds` have passed without one."""
    deadline = time.monotonic() + seconds
    while True:
        if value := predicate():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(every)
