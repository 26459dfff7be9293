"""The transcriber: takes voice notes from the store's queue and answers them in batch runs, outside the receiver.

`python -m deployments.transcriber` runs one; deployments/dispatch.py's thread hosts one inside
another process (the served runner's, under `vigia up`). Any number may run on any number of hosts: each claims the oldest
waiting notes with a lease it renews while it works (store/voice_note_queue.py), so a note is taken
again only when its holder died, and the reply claim keeps every reply single.

Why the runs execute here: a served runner picks a run up ~3 s after it is created and spends
~1.5 s of CPU starting a subprocess per run, which on two cores cannot hold a 15 s SLA in a burst.
So each batch becomes one run of `transcribe-voice-note/on-webhook`, created Pending (the runner
takes only Scheduled runs) under a name, a tag per note and an idempotency key, and executed on
this process's event loop. In the UI it is an ordinary run of the deployment: "Retry" or "Run"
there hands it to the served runner, and the stored rows keep a re-run from replying twice.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

if __name__ == "__main__":  # loading Prefect takes seconds on a busy host: a stop meanwhile just ends the process
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # (no KeyboardInterrupt traceback in the log); main() sets the real handlers

from prefect.flow_engine import run_flow_async

from deployments.transcription_runs import RunMaker
from flows.transcribe_voice_note import note_finished, transcribe_voice_note
from store import voice_note_queue
from store.database import StoreError, in_session
from tasks import groq_gate
from tasks.groq_gate import CONCURRENCY_LIMIT
from tasks.leases import LEASE, holder_name

logger = logging.getLogger(__name__)
POLL_SECONDS_SQLITE = 0.2  # a read of one indexed row; measured ~0.3 ms, against ~100 ms of average pickup
POLL_SECONDS_POSTGRES = 2.0  # NOTIFY wakes it at once; the poll only notices expired leases
QUEUE_CHECK_SECONDS = 15.0
BACKOFF_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
DRAIN_SECONDS = 20.0
THREADS = 32
# A long queue goes out in batches of 1/BATCH_SHARE of the room. At least that: a note's room frees as soon as its
# reply is out, and claiming each freed room alone made one run per note (a burst of 100 took 61 runs and twice
# as long). At most that: a batch takes its Groq slots all at once, and a batch of 16 on a shared limit of 16
# waited 12 s behind another transcriber's batches of 4. A quarter made more runs than the burst could afford
# (burst100 15.3 s against 12.4 s with half; measured).
BATCH_SHARE = 2


@dataclass(frozen=True)
class TranscriberConfig:
    """How one transcriber works: its store, how many notes it holds at once, how often it polls, the SLA it warns about."""

    database_url: str
    max_in_flight: int = 4
    poll_seconds: float | None = None  # None: by the store's kind
    sla_seconds: float = 15.0


class Transcriber:
    """One transcriber's loop: wake (NOTIFY or poll), claim what fits, start a batch run, repeat."""

    def __init__(self, config: TranscriberConfig):
        self.config = config
        self.postgres = config.database_url.startswith("postgresql")
        self.poll_seconds = config.poll_seconds or (POLL_SECONDS_POSTGRES if self.postgres else POLL_SECONDS_SQLITE)
        self.holder = holder_name()
        self.in_flight = 0
        self.shared_limit: int | None = None  # Groq's shared concurrency as edited in the UI: a batch never asks for more
        self.runs = RunMaker()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.failures = 0
        self._paused_until = 0.0
        self._hold_wake: asyncio.TimerHandle | None = None  # wakes the claims when Groq's hold ends

    def wake(self) -> None:
        """Look at the queue now (a note was stored)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        # Every store call of every note runs in a thread; the default pool (cores + 4) starves a burst's claims.
        loop.set_default_executor(ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="transcriber"))
        listening = threading.Event()
        if self.postgres:
            listener = threading.Thread(
                target=voice_note_queue.listen_for_notes,
                name="voice-note-listener",
                daemon=True,
                args=(self.config.database_url, lambda: loop.call_soon_threadsafe(self._wake.set), listening),
            )
            listener.start()
        stopper = loop.create_task(self._wake_on(stop))
        watcher = loop.create_task(self._watch_queue(stop))
        logger.info(
            "transcriber %s started: up to %d notes at once, %s",
            self.holder,
            self.config.max_in_flight,
            "woken by NOTIFY" if self.postgres else f"polling every {self.poll_seconds:g} s",
        )
        try:
            while not stop.is_set():
                await self._take_waiting()
                await self._sleep()
        finally:
            listening.set()
            stopper.cancel()
            watcher.cancel()
            await self._drain()
            await self.runs.close()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _sleep(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _take_waiting(self) -> None:
        """Claim the oldest waiting notes this transcriber has room for, up to a batch (BATCH_SHARE), as one run."""
        room = min(self.config.max_in_flight, self.shared_limit or self.config.max_in_flight)
        free = room - self.in_flight
        if free <= 0 or time.monotonic() < self._paused_until:
            return
        if held := groq_gate.held_seconds():  # a note claimed while Groq asks to wait would only go back to the queue
            if self._hold_wake is None or self._hold_wake.when() < asyncio.get_running_loop().time():
                self._hold_wake = asyncio.get_running_loop().call_later(held, self._wake.set)
            return
        now = datetime.now(timezone.utc)
        token = uuid.uuid4().hex
        try:
            if not self.postgres and not await in_session(self.config.database_url, voice_note_queue.has_waiting, now):
                return
            batch = max(1, room // BATCH_SHARE)
            least = batch if self.in_flight else 1  # with notes in flight, more room comes soon: wait for a batch's worth
            claimed = await in_session(
                self.config.database_url, voice_note_queue.claim_notes, self.holder, token, now, LEASE, min(free, batch), least
            )
        except StoreError as error:
            self._pause(f"the store failed: {error}")
            return
        if not claimed:
            return
        self.in_flight += len(claimed)
        task = asyncio.get_running_loop().create_task(self._run_batch(token, claimed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._wake.set()  # more may wait, and there may be room for them

    async def _run_batch(self, token: str, claimed: list[voice_note_queue.ClaimedNote]) -> None:
        ids = [note.id for note in claimed]
        held = set(ids)

        def finished(voice_note_id: int) -> None:  # a note's room is free as soon as its reply is out
            if voice_note_id in held:
                held.discard(voice_note_id)
                self.in_flight -= 1
                self._wake.set()

        started = time.perf_counter()
        hook = note_finished.set(finished)
        try:
            flow_run = await self._start_run(token, claimed)
            if flow_run is None:
                return
            created = time.perf_counter()
            state = await run_flow_async(transcribe_voice_note, flow_run=flow_run, parameters={"voice_note_ids": ids}, return_type="state")
            logger.info(
                "voice notes %s: run %s (%s) created in %.2f s, %s in %.2f s",
                _listed(ids),
                flow_run.name,
                flow_run.id,
                created - started,
                state.name,
                time.perf_counter() - created,
            )
        except Exception as error:  # the engine itself broke: the leases run out and another claim closes this run as Crashed
            logger.error("voice notes %s: the run broke: %s", _listed(ids), _short(error))
        finally:
            note_finished.reset(hook)
            self.in_flight -= len(held)
            held.clear()
            self._wake.set()

    async def _start_run(self, token: str, claimed: list[voice_note_queue.ClaimedNote]):
        """Close a dead holder's runs, create this batch's run and move the claim onto it; None (notes given back) on failure."""
        ids = [note.id for note in claimed]
        try:
            await self.runs.close_dead_runs(claimed)
            flow_run = await self.runs.create(token, ids)
            await in_session(self.config.database_url, voice_note_queue.rekey_claim, token, str(flow_run.id), str(flow_run.id))
        except Exception as error:  # Prefect down, the deployment not served yet, or the store away: try again later
            try:
                await in_session(self.config.database_url, voice_note_queue.release_claim, token)
            except StoreError:
                pass  # the lease runs out by itself
            self._pause(f"voice notes {_listed(ids)} stay queued; their run could not be created ({_short(error)})")
            return None
        if self.failures:
            logger.info("transcriber %s creates runs again", self.holder)
        self.failures = 0
        return flow_run

    def _pause(self, reason: str) -> None:
        wait = BACKOFF_SECONDS[min(self.failures, len(BACKOFF_SECONDS) - 1)]
        self.failures += 1
        self._paused_until = time.monotonic() + wait
        logger.warning("%s; trying again in %.0f s", reason, wait)

    async def _watch_queue(self, stop: asyncio.Event) -> None:
        """Beside the claims: re-read the shared limit, warn about the queue's age, every QUEUE_CHECK_SECONDS."""
        while not stop.is_set():
            try:
                await self._check_queue_age()
            except Exception as error:  # the watch must outlive a Prefect or store outage
                logger.warning("checking the transcription queue failed: %s", _short(error))
            await asyncio.sleep(QUEUE_CHECK_SECONDS)

    async def _check_queue_age(self) -> None:
        """A `warning` when the oldest waiting note has waited longer than the SLA (once per half hour); re-read the shared limit."""
        self.shared_limit = await self.runs.read_shared_concurrency(CONCURRENCY_LIMIT)
        try:
            queue = await in_session(self.config.database_url, voice_note_queue.read_queue, datetime.now(timezone.utc))
        except StoreError:
            return
        if queue.oldest_waiting_seconds > self.config.sla_seconds:
            await raise_queue_age_alert(queue, self.config.sla_seconds)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        logger.info("transcriber %s stopping: waiting for %d runs in flight", self.holder, len(self._tasks))
        done, pending = await asyncio.wait(list(self._tasks), timeout=DRAIN_SECONDS)
        for task in pending:  # their leases run out and another transcriber takes the notes
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def raise_queue_age_alert(queue: voice_note_queue.QueueState, sla_seconds: float) -> None:
    """Warn that voice notes wait longer than the SLA before any transcriber takes them."""
    from tasks.alerts import raise_alert

    await raise_alert(
        "warning",
        "voice notes wait in the transcription queue",
        f"{queue.waiting} voice notes wait for a transcriber; the oldest for {queue.oldest_waiting_seconds:.0f} s "
        f"(SLA {sla_seconds:g} s), {queue.held} being answered. Groq's limits (the Concurrency page) or too few "
        "transcribers hold them back: raise the limits, or start another transcriber.",
        key="transcription:queue-age",
        cooldown=timedelta(minutes=30),
    )


def _listed(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


async def configured() -> TranscriberConfig:
    """This host's transcriber from the settings, with Groq's shared limits ensured on Prefect (kept if edited in the UI)."""
    from blocks.transcription import TranscriptionSettings
    from deployments.settings import load_settings
    from tasks.groq_gate import GroqLimits, ensure_groq_limits

    settings = load_settings()
    limits = GroqLimits(settings.groq_max_concurrency, settings.groq_rpm, settings.groq_audio_seconds_per_hour)
    try:
        for line in await ensure_groq_limits(limits):
            logger.info(line)
    except Exception as error:  # Prefect may come later; each process keeps its own bound meanwhile
        logger.warning("Groq's shared limits could not be checked: %s", _short(error))
    sla = TranscriptionSettings().sla_seconds
    return TranscriberConfig(settings.database_url, max_in_flight=settings.groq_max_concurrency, sla_seconds=sla)


def main() -> None:
    """`python -m deployments.transcriber`: one transcriber until SIGTERM or Ctrl-C, which let the batches in flight finish.

    The transcriber runs on a thread of its own (deployments/dispatch.py): Prefect's flow engine takes
    SIGTERM over while a run executes in the main thread, and would crash the batch instead of letting
    it finish. Its lines go to stderr.
    """
    from deployments.dispatch import TranscriberThread

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("deployments", "store", "tasks"):
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).propagate = False
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    transcriber = TranscriberThread.from_config(asyncio.run(configured()))
    transcriber.start()
    while not stopping.wait(0.5) and transcriber.is_alive():
        pass
    broke = not transcriber.is_alive()
    transcriber.stop(grace_seconds=DRAIN_SECONDS + 10)
    if broke:
        logger.error("the transcriber stopped on its own (see above)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
