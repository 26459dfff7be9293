"""Starting `transcribe-voice-note` runs from the receiver: a flow run of the deployment, executed in this process.

Why in-process: a served runner picks a run up ~3 s (median) after it is created at a 1 s poll
(~7.6 s at the default 10 s) and then spends ~1.5 s of CPU starting a subprocess, which on two
cores cannot keep a 15 s reply SLA under bursts. So the receiver creates each flow run from the
deployment `transcribe-voice-note/on-webhook` directly in Pending — the runner only takes
Scheduled runs, so it never takes these too — and executes it at once on its own event loop
thread. The run is still a normal run of the deployment: it shows in the UI with its parameter,
and "Retry" or "Run" there schedules it for the served runner; the stored row keeps a re-run from
replying twice. A sweeper restarts stored notes whose run never began (Prefect was down, or the
process died between storing and starting).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import threading
import time
from concurrent.futures import Future
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.context import AsyncClientContext, SettingsContext, get_settings_context
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.flow_engine import run_flow_async
from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES
from prefect.states import Pending

from flows.transcribe_voice_note import transcribe_voice_note
from store import voice_notes
from store.database import open_session

logger = logging.getLogger(__name__)
DEPLOYMENT = "transcribe-voice-note/on-webhook"
MAX_CONCURRENT_RUNS = 6  # more runs at once only make the Prefect server slower per run on 2 cores (measured)
SWEEP_EVERY_SECONDS = 5.0
STALE_CLAIM = timedelta(seconds=60)  # a dispatch claim this old belongs to a process that died
STUCK_RUN = timedelta(minutes=5)
CREATE_PATIENCE_SECONDS = 10.0  # a run `running` this long (its budget is 15 s) died with its process


class VoiceNoteDispatcher:
    """Creates and executes transcription runs on a private event loop thread, and sweeps up notes that never started."""

    def __init__(
        self, database_url: str, *, max_concurrent: int = MAX_CONCURRENT_RUNS, sweep_every_seconds: float = SWEEP_EVERY_SECONDS,
        stale_claim: timedelta = STALE_CLAIM, stuck_run: timedelta = STUCK_RUN,
    ):
        self.database_url = database_url
        self.max_concurrent = max_concurrent
        self.sweep_every_seconds = sweep_every_seconds
        self.stale_claim = stale_claim
        self.stuck_run = stuck_run
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self._deployment_id = None
        self._client_context: AsyncClientContext | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the loop thread and the sweeper (idempotent); Prefect settings are those of the caller's context."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            # A fresh context carrying only the caller's Prefect settings: a client the caller had
            # open (its context is copied by default) must not be reused from this thread's loop.
            settings = get_settings_context()
            self._thread = threading.Thread(
                target=contextvars.Context().run, args=(self._run_with_settings, settings, ready), name="voice-note-dispatcher", daemon=True,
            )
            self._thread.start()
            ready.wait()

    def submit(self, voice_note_id: int) -> Future:
        """Start the run of a note this process has just stored and claimed."""
        self.start()
        return asyncio.run_coroutine_threadsafe(self._spawn(voice_note_id), self._loop)

    def sweep(self) -> Future:
        """Restart every note whose run never began (also done every few seconds)."""
        self.start()
        return asyncio.run_coroutine_threadsafe(self._sweep_once(), self._loop)

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Let running transcriptions finish (up to the grace period), then stop the thread."""
        with self._lock:
            if self._thread is None or self._loop is None:
                return
            future = asyncio.run_coroutine_threadsafe(self._drain(grace_seconds), self._loop)
            try:
                future.result(timeout=grace_seconds + 5)
            except Exception as error:  # stopping must go on whatever a run did
                logger.warning("voice-note dispatcher stopped with runs unfinished: %s", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
            self._loop = None

    def _run_with_settings(self, settings: SettingsContext, ready: threading.Event) -> None:
        # Built once: copying Prefect's settings costs ~100 ms of CPU.
        self._no_retries = SettingsContext(
            profile=settings.profile, settings=settings.settings.copy_with_update(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
        )
        with SettingsContext(profile=settings.profile, settings=settings.settings):
            self._run_loop(ready)

    def _run_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._context = contextvars.copy_context()
        self._semaphore = asyncio.Semaphore(self.max_concurrent)
        self._creating = asyncio.Lock()
        sweeper = loop.create_task(self._sweep_forever())
        loop.call_soon(ready.set)
        logger.info("voice-note dispatcher started: Prefect API %s, up to %d runs at once", PREFECT_API_URL.value(), self.max_concurrent)
        try:
            loop.run_forever()
        finally:
            sweeper.cancel()
            loop.run_until_complete(asyncio.gather(sweeper, *self._tasks, return_exceptions=True))
            loop.close()

    async def _spawn(self, voice_note_id: int) -> None:
        # run_coroutine_threadsafe runs this in the submitting thread's context; the run gets this thread's own.
        task = asyncio.get_running_loop().create_task(self._run(voice_note_id), context=self._context.copy())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, grace_seconds: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        if self._client_context is not None:
            await self._client_context.client.__aexit__(None, None, None)
            self._client_context = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every_seconds)
            try:
                await self._sweep_once()
            except Exception as error:  # the sweeper must outlive a store or Prefect outage
                logger.warning("voice-note sweep failed: %s", error)

    async def _sweep_once(self) -> int:
        now = datetime.now(timezone.utc)
        ids = await self._store(voice_notes.list_unstarted, now, stale_after=self.stale_claim, stuck_after=self.stuck_run)
        claimed = 0
        for voice_note_id in ids:
            if await self._store(voice_notes.claim_dispatch, voice_note_id, now, self.stale_claim) or await self._store(
                voice_notes.reclaim_stuck, voice_note_id, now, self.stuck_run
            ):
                claimed += 1
                await self._spawn(voice_note_id)
        if claimed:
            logger.info("sweeper restarted %d voice notes whose run never began", claimed)
        return claimed

    async def _run(self, voice_note_id: int) -> None:
        async with self._semaphore:
            started = time.perf_counter()
            try:
                # One creation at a time: Prefect's SQLite server answers concurrent creations with
                # 503 "database is locked", and its client then backs off for seconds (measured).
                async with self._creating:
                    await self._share_client()
                    flow_run = await self._flow_run_for(voice_note_id)
            except Exception as error:  # Prefect down or the deployment not served yet: the sweeper retries
                await self._store(voice_notes.release_dispatch, voice_note_id)
                logger.warning("voice note %d stored; its run could not be created (%s), the sweeper retries it", voice_note_id, _short(error))
                return
            created = time.perf_counter()
            try:
                state = await run_flow_async(
                    transcribe_voice_note, flow_run=flow_run, parameters={"voice_note_id": voice_note_id}, return_type="state"
                )
            except Exception as error:  # a crash of the engine itself: the row stays `running` and the sweeper takes it later
                logger.error("voice note %d: flow run %s crashed: %s", voice_note_id, flow_run.id, _short(error))
                return
            logger.info("voice note %d: flow run %s created in %.2f s, %s in %.2f s", voice_note_id, flow_run.id,
                        created - started, state.name, time.perf_counter() - created)

    async def _share_client(self) -> None:
        """Open one Prefect client for every run on this loop (each run would otherwise build its own, ~50 ms of CPU)."""
        if self._client_context is not None:
            return
        client_context = AsyncClientContext()
        await client_context.__aenter__()  # raises while Prefect is down: the note goes back to the sweeper
        self._client_context = client_context
        self._context = contextvars.copy_context()  # runs started from now on find it through get_client()

    async def _flow_run_for(self, voice_note_id: int):
        """The note's flow run that never started, or a new one from the deployment, created Pending."""
        async with get_client() as client:
            note = await self._store(voice_notes.get_voice_note, voice_note_id)
            if note is not None and note.flow_run_id:
                existing = await client.read_flow_run(note.flow_run_id)
                if existing.state is not None and existing.state.type == StateType.PENDING:
                    return existing
            if self._deployment_id is None:
                self._deployment_id = (await client.read_deployment_by_name(DEPLOYMENT)).id
            try:
                flow_run = await _create_promptly(client, self._deployment_id, voice_note_id, self._no_retries)
            except ObjectNotFound:
                self._deployment_id = None  # re-created under a new id: look it up again next time
                raise
        await self._store(voice_notes.record_flow_run, voice_note_id, str(flow_run.id))
        return flow_run

    async def _store(self, function, *args, **kwargs):
        def call():
            with open_session(self.database_url) as session:
                return function(session, *args, **kwargs)

        return await asyncio.to_thread(call)


async def _create_promptly(client, deployment_id, voice_note_id: int, no_retries: SettingsContext):
    """Create the Pending flow run, retrying a busy server within milliseconds.

    Prefect's SQLite server answers 503 "database is locked" when writes overlap, and its client
    then waits 2, 4, 8… s; a creation retried after ~0.1 s nearly always goes through (measured).
    """
    deadline = time.monotonic() + CREATE_PATIENCE_SECONDS
    while True:
        try:
            with no_retries:
                return await client.create_flow_run_from_deployment(
                    deployment_id, parameters={"voice_note_id": voice_note_id}, state=Pending(message="started by the webhook receiver"),
                )
        except PrefectHTTPStatusError as error:
            if error.response.status_code != 503 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(random.uniform(0.05, 0.25))


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
