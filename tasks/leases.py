"""Leases on queued voice notes held by a run: who holds them, and their renewal while the run works."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

from store import voice_note_queue
from store.database import StoreError, in_session

LEASE = timedelta(seconds=30)  # a holder that stops renewing loses its notes this long after its last renewal
RENEW_EVERY_SECONDS = 10.0
logger = logging.getLogger(__name__)


def holder_name() -> str:
    """Who holds a lease, for people reading the store: host and process id."""
    return f"{socket.gethostname()}/{os.getpid()}"


@asynccontextmanager
async def renewing(database_url: str, token: str) -> AsyncIterator[None]:
    """Renew every lease held under `token` while the block runs, so no transcriber takes its notes as a dead holder's."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                await in_session(database_url, voice_note_queue.renew_lease, token, datetime.now(timezone.utc), LEASE)
            except StoreError as error:  # the next renewal may get through before the lease runs out
                logger.warning("renewing the voice notes' lease %s failed: %s", token, error)

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewer.cancel()
