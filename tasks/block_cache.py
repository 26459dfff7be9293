"""Block documents kept for a few seconds in a long-lived process: the receiver runs many voice-note flows.

Each load is an API call with server-side decryption; at a burst of notes that is most of the
Prefect server's work per run. An edit in the Blocks UI takes effect within `TTL_SECONDS`.
"""

from __future__ import annotations

import time

TTL_SECONDS = 30.0
_cache: dict[tuple[type, str], tuple[float, object | None]] = {}


async def load_block(block_type: type, name: str = "default", *, required: bool = True):
    """Return the named Block document, loaded at most once per `TTL_SECONDS`; None when absent and not `required`.

    Raises:
        ValueError: when a required document does not exist.
    """
    key = (block_type, name)
    cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < TTL_SECONDS:
        block = cached[1]
    else:
        try:
            block = await block_type.aload(name)
        except ValueError:
            block = None
        _cache[key] = (time.monotonic(), block)
    if block is None and required:
        raise ValueError(f"{block_type.get_block_type_slug()}/{name} does not exist; run `vigia setup`")
    return block


def forget_blocks() -> None:
    """Drop every cached document (tests that rewrite Blocks between runs in one process)."""
    _cache.clear()
