"""Reading Vigia's events back from the test Prefect server (what the UI's Event Feed shows)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventOccurredFilter, EventResourceFilter
from prefect.events.schemas.events import ReceivedEvent


def events_of(resource_id: str, since: datetime) -> list[ReceivedEvent]:
    """The events of one resource that occurred since `since`, oldest first (resources such as voice note 1 recur across tests)."""
    window = EventOccurredFilter(since=since, until=datetime.now(timezone.utc) + timedelta(minutes=5))

    async def read() -> list[ReceivedEvent]:
        async with get_client() as client:
            page = await client.read_events(filter=EventFilter(occurred=window, resource=EventResourceFilter(id=[resource_id])), limit=50)
            return sorted(page.events, key=lambda event: event.occurred)

    return asyncio.run(read())


def wait_for_events(resource_id: str, names: list[str], since: datetime, seconds: float = 30) -> list[ReceivedEvent]:
    """Poll until the resource's events since `since` are exactly `names` (oldest first); they are sent and stored in the background."""
    deadline = time.monotonic() + seconds
    while True:
        found = events_of(resource_id, since)
        if [event.event for event in found] == names:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"events of {resource_id}: {[event.event for event in found]}, expected {names} within {seconds:.0f} s")
        time.sleep(0.25)
