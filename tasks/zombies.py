"""Zombie runs: a Vigia flow run still Running whose process stopped beating is marked Crashed and alerted once.

Prefect 3.9.1 leaves a run Running forever when its process dies without a word (killed, out of memory,
its worker's host cut off): it holds its deployment's concurrency slot (no backup until someone
notices) and the dashboard counts it running. Every run Vigia starts beats every HEARTBEAT_SECONDS
(`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, set for `vigia up`'s parts and `vigia worker`); a run tagged
`vigia` with no heartbeat for SILENCE is a zombie. Prefect's own remedy, a proactive automation on
the heartbeat, needs the triggers service that `vigia up` leaves off (~40 MB).

    python -m tasks.zombies   # sweep every SWEEP_SECONDS until SIGINT/SIGTERM (what `vigia worker` runs beside the worker)
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.states import Crashed

HEARTBEAT_SECONDS = 30  # Prefect's minimum; its default (180 s) would find a dead run only after 9 minutes
MIN_SILENCE_SECONDS = 45  # a heartbeat late by half its interval is not a death


def configured_silence(environ: Mapping[str, str] = os.environ) -> timedelta:
    """VIGIA_ZOMBIE_AFTER_SECONDS (default 90: three heartbeats missed), at least MIN_SILENCE_SECONDS.

    Raises:
        ValueError: when it is not a number of seconds of at least MIN_SILENCE_SECONDS.
    """
    raw = environ.get("VIGIA_ZOMBIE_AFTER_SECONDS", "90")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1
    if seconds < MIN_SILENCE_SECONDS:
        raise ValueError(f"VIGIA_ZOMBIE_AFTER_SECONDS={raw!r}: give a number of seconds of at least {MIN_SILENCE_SECONDS}")
    return timedelta(seconds=seconds)


SILENCE = timedelta(seconds=90)  # three heartbeats missed: the default of VIGIA_ZOMBIE_AFTER_SECONDS
SWEEP_SECONDS = 15  # with SILENCE: a dead run is marked Crashed within two minutes
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
TAG = "vigia"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Zombie:
    """A run the sweep marked Crashed: the run as it was, its flow's name and the Crashed state it got."""

    run: FlowRun
    flow_name: str
    state: State

    @property
    def run_id(self) -> str:
        return str(self.run.id)


async def find_zombies(client: PrefectClient, now: datetime, silence: timedelta = SILENCE) -> list[FlowRun]:
    """Return the Running runs tagged `vigia`, started over `silence` ago, with no heartbeat within `silence` of `now`."""
    running = await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])), tags=FlowRunFilterTags(all_=[TAG])
        ),
        limit=200,
    )
    candidates = [run for run in running if run.start_time is not None and now - run.start_time > silence]
    if not candidates:
        return []
    beating = await _beating(client, [str(run.id) for run in candidates], now - silence, now)
    return [run for run in candidates if str(run.id) not in beating]


async def close_zombies(client: PrefectClient, now: datetime, silence: timedelta = SILENCE) -> list[Zombie]:
    """Mark each zombie run Crashed (once: a run no longer Running is not found again); return them."""
    closed = []
    for run in await find_zombies(client, now, silence):
        last = await _last_heartbeat(client, str(run.id), now)
        heard = f"its last heartbeat was at {last:%H:%M:%S} UTC" if last else "it never sent a heartbeat"
        message = f"Its process stopped answering: {heard}, and none for {silence.total_seconds():.0f} s (killed, out of memory, or its host cut off)."
        result = await client.set_flow_run_state(run.id, Crashed(message=message), force=True)
        flow = await client.read_flow(run.flow_id)
        closed.append(Zombie(run, flow.name, result.state or Crashed(message=message)))
        logger.warning("flow run %s (%s) marked Crashed: %s", run.name, flow.name, message)
    return closed


async def alert_zombies(zombies: list[Zombie]) -> None:
    """Raise each zombie's alert as the on_crashed hook would have (same key: one alert per run), critical for a backup."""
    from tasks.run_failures import raise_run_alert

    for zombie in zombies:
        severity = "critical" if zombie.flow_name == "backup" else "warning"
        await raise_run_alert(severity, zombie.flow_name, zombie.run, zombie.state)


async def sweep(now: datetime | None = None, silence: timedelta = SILENCE) -> list[Zombie]:
    """Close the zombies Prefect holds now and alert each once; return them."""
    async with get_client() as client:
        zombies = await close_zombies(client, now or datetime.now(timezone.utc), silence)
    if zombies:
        await alert_zombies(zombies)
    return zombies


async def sweep_forever(stop: asyncio.Event, every: float = SWEEP_SECONDS) -> None:
    """Sweep every `every` seconds until `stop` is set; a failed sweep (Prefect away, the store down) is logged and retried."""
    try:
        silence = configured_silence()
    except ValueError as error:
        logger.error("zombie sweep off: %s", error)
        return
    while not stop.is_set():
        try:
            await sweep(silence=silence)
        except Exception as error:  # the next sweep tries again; a sweep must never take its host process down
            logger.warning("zombie sweep failed: %s: %s", type(error).__name__, error)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass


async def _beating(client: PrefectClient, run_ids: list[str], since: datetime, until: datetime) -> set[str]:
    page = await client.read_events(_heartbeats(run_ids, since, until), limit=50)  # the API's most
    beating = {event.resource.id.removeprefix("prefect.flow-run.") for event in page.events}
    while page.next_page is not None and len(beating) < len(run_ids):
        page = await client.read_events_page(page.next_page)
        beating |= {event.resource.id.removeprefix("prefect.flow-run.") for event in page.events}
    return beating


async def _last_heartbeat(client: PrefectClient, run_id: str, now: datetime) -> datetime | None:
    page = await client.read_events(_heartbeats([run_id], now - timedelta(days=1), now), limit=1)
    return page.events[0].occurred if page.events else None


def _heartbeats(run_ids: list[str], since: datetime, until: datetime) -> EventFilter:
    return EventFilter(
        occurred=EventOccurredFilter(since=since, until=until),
        event=EventNameFilter(name=[HEARTBEAT_EVENT]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{run_id}" for run_id in run_ids]),
    )


def main() -> None:
    """Sweep until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await sweep_forever(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
