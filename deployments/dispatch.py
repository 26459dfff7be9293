"""A transcriber on a thread of its own: how every process hosts one (its own, the served runner's, a test's).

Not the main thread: Prefect's flow engine installs its SIGTERM handler while a run executes in the
main thread, and a stop would then crash the batches in flight instead of letting them finish. The
thread runs one transcriber (deployments/transcriber.py) on its own event loop with the caller's
Prefect settings; `submit` only wakes it, so a note stored by anyone is taken the same way.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from dataclasses import asdict

from prefect.context import SettingsContext, get_settings_context

from deployments.transcriber import Transcriber, TranscriberConfig

logger = logging.getLogger(__name__)


class TranscriberThread:
    """Runs a transcriber on a private event-loop thread: start(), submit(id) to wake it, stop()."""

    def __init__(self, database_url: str, *, max_in_flight: int = 4, poll_seconds: float | None = None, sla_seconds: float = 15.0):
        self.config = TranscriberConfig(database_url, max_in_flight=max_in_flight, poll_seconds=poll_seconds, sla_seconds=sla_seconds)
        self.transcriber: Transcriber | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: TranscriberConfig) -> TranscriberThread:
        return cls(**asdict(config))

    def is_alive(self) -> bool:
        """Whether the transcriber still runs (it ends on stop(), or when it broke)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread (idempotent); Prefect settings are those of the caller's context."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            settings = get_settings_context()
            # A fresh context carrying only the caller's Prefect settings: a client the caller had open must not be reused here.
            self._thread = threading.Thread(
                target=contextvars.Context().run, args=(self._run, settings, ready), name="transcriber", daemon=True
            )
            self._thread.start()
            ready.wait()

    def submit(self, voice_note_id: int) -> None:
        """Wake the transcriber: a note was stored."""
        if self._loop is not None and self.transcriber is not None:
            self._loop.call_soon_threadsafe(self.transcriber.wake)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop taking notes, let the runs in flight finish, and end the thread."""
        with self._lock:
            if self._thread is None or self._loop is None:
                return
            if not self._loop.is_closed():  # closed: the transcriber broke and its thread ended
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=grace_seconds)
            self._thread = None

    def _run(self, settings: SettingsContext, ready: threading.Event) -> None:
        try:
            with SettingsContext(profile=settings.profile, settings=settings.settings):
                asyncio.run(self._main(ready))
        finally:
            ready.set()  # start() must not wait forever for a transcriber that broke before it began

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.transcriber = Transcriber(self.config)
        ready.set()
        await self.transcriber.run(self._stop)
