"""The receiver's one writer: a burst of voice notes (and chat messages' metadata) stored in a few transactions, not one thread per note in a lock queue.

Each webhook hands its note to one writer thread, which takes every note waiting at that moment,
spools their audio and stores them in one transaction (a group commit), then answers each webhook.
Concurrent transactions from a thread pool made SQLite's busy handler sleep (1, 2, 5, 10 … ms per
retry) while another held the write lock: 100 notes at once took a p95 of ~600 ms to acknowledge.

Chat messages' metadata (a voice note's own included) is nobody's answer: it is held up to
HOLD_SECONDS so that a busy bot's messages share a transaction and one pairing, and written after
the voice notes that came meanwhile. Written as they came, one small transaction each, they kept
the writer (and the GIL) busy while voice notes queued behind them: recording doubled the
receiver's p95 for voice notes in benchmarks/conversation_recording.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from clients.audio import extension_for
from deployments.spool_sweep import SpoolSweep
from store.conversations import NewMessage, insert_messages
from store.database import open_session, refused_by_store
from store.voice_note_queue import notify_stored
from store.voice_notes import NewVoiceNote, insert_voice_notes

logger = logging.getLogger(__name__)
MAX_BATCH = 100
RETRY_SECONDS = 2.0
HOLD_SECONDS = 0.1  # chat messages' metadata waits this long for others to share its transaction (and its pairing)
MAX_UNWRITTEN = 10_000  # acknowledged chat messages kept while the store is away (more wait for it: their webhooks get 503)


@dataclass
class _Pending:
    record: NewVoiceNote | None  # None: a chat message alone
    audio: bytes | None
    message: NewMessage | None
    loop: asyncio.AbstractEventLoop | None  # None with no future: a chat message nobody waits for
    future: asyncio.Future | None = field(repr=False)


class VoiceNoteWriter:
    """Store voice notes for the receiver through one thread, every waiting note in one transaction.

    `store()` answers (id, duplicate) once the note's transaction committed, or raises its error
    (StoreError, OSError); a batch that fails is written again note by note, so one note the store
    refuses does not fail its neighbours.
    """

    def __init__(self, database_url: str, spool_dir: Path, max_batch: int = MAX_BATCH):
        self.database_url = database_url
        self.spool_dir = spool_dir
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._store_answers = True  # the last batch was stored
        self._unwritten: list[_Pending] = []  # acknowledged chat messages a failed batch could not store (writer thread only)
        self._retry_at = math.inf  # when the writer tries them again
        self._sweep = SpoolSweep(database_url, spool_dir)  # writer thread only: between batches, all it spooled is committed

    async def store(self, record: NewVoiceNote, audio: bytes | None, message: NewMessage | None = None) -> tuple[int, bool]:
        """Spool `audio` (when given) and store `record`; return the note's id and whether it was stored before.

        Its chat `message` is recorded as record_message does, after the note, without holding its answer.
        """
        return await self._submit(record, audio, message)

    async def record_message(self, message: NewMessage) -> None:
        """Store a chat message's metadata in the next batch.

        While the store takes the writer's batches, return at once: the message is written within
        HOLD_SECONDS (a webhook for a text need not wait for a commit). Should that batch fail, the
        message is kept and tried again every RETRY_SECONDS; a killed receiver loses at most what is in
        flight. After a failure, wait for the commit instead, so the webhook answers 503 and Evolution
        delivers it again until the store is back.
        """
        if self._store_answers:
            self._start()
            self._queue.put(_Pending(None, None, message, None, None))
            return
        await self._submit(None, None, message)

    async def _submit(self, record: NewVoiceNote | None, audio: bytes | None, message: NewMessage | None):
        self._start()
        loop = asyncio.get_running_loop()
        pending = _Pending(record, audio, message, loop, loop.create_future())
        self._queue.put(pending)
        return await pending.future

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="voice-note-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        held: list[_Pending] = []  # acknowledged chat messages waiting for their batch
        write_by = math.inf  # when the held (and the kept) messages are written
        while True:
            self._sweep_spool()
            if self._unwritten:
                write_by = min(write_by, self._retry_at)
            items, stopping = self._take_queued(max(min(write_by - time.monotonic(), self._sweep.seconds_to_next()), 0))
            waited = [pending for pending in items if pending.future is not None]
            if waited:  # a stored voice note's chat message comes back, to be recorded with the held ones
                items += self._write(waited)
            for pending in items:
                if pending.future is None:
                    if not held:
                        write_by = min(write_by, time.monotonic() + HOLD_SECONDS)
                    held.append(pending)
            if stopping or len(held) >= self.max_batch or time.monotonic() >= write_by:
                batch, held, write_by = self._take_unwritten() + held, [], math.inf
                if batch:
                    self._write(batch)
            if stopping:
                if self._unwritten:
                    logger.error(
                        "%d chat messages not recorded: the store did not answer before the receiver stopped", len(self._unwritten)
                    )
                return

    def _take_queued(self, waiting: float) -> tuple[list[_Pending], bool]:
        """What the webhooks queued: block until the first (at most `waiting` s), then take what else is there; and whether to stop."""
        items: list[_Pending] = []
        try:
            item = self._queue.get(timeout=waiting)
        except queue.Empty:
            return items, False
        while item is not None:
            items.append(item)
            if len(items) >= self.max_batch:
                return items, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, False
        return items, True

    def _sweep_spool(self) -> None:
        try:
            self._sweep.sweep_if_due()
        except Exception:  # the writer must outlive a sweep that broke (a spool it cannot read): webhooks wait on it
            logger.exception("spool sweep failed; trying again in %.0f s", self._sweep.seconds_to_next())

    def _take_unwritten(self) -> list[_Pending]:
        taken, self._unwritten = self._unwritten, []
        return taken

    def _write(self, batch: list[_Pending]) -> list[_Pending]:
        """Store the batch in one transaction (else each alone) and settle it; return the stored voice notes' chat messages.

        A voice note's answer waits for the note, not for its chat message's metadata: that is returned
        to be recorded as record_message does, and only once the note is stored (a refused note is
        delivered again, message and all).
        """
        notes = [(p.record, p.audio) for p in batch if p.record is not None]
        messages = [p.message for p in batch if p.message is not None and p.record is None]
        try:
            results = iter(store_voice_notes(self.database_url, self.spool_dir, notes, messages))
        except Exception as error:
            if len(batch) > 1:
                return [message for pending in batch for message in self._write([pending])]
            self._store_answers = False
            if batch[0].future is None:  # acknowledged already: kept to be written once the store answers again
                self._keep_unwritten(batch[0], error)
            else:
                _settle(batch[0], None, error)
            return []
        self._store_answers = True
        for pending in batch:
            _settle(pending, next(results) if pending.record is not None else None, None)
        return [_Pending(None, None, p.message, None, None) for p in batch if p.record is not None and p.message is not None]

    def _keep_unwritten(self, pending: _Pending, error: Exception) -> None:
        message = pending.message
        if refused_by_store(error):  # this message itself is refused: no retry helps
            logger.error("chat message %s not recorded: the store refuses it (%s)", message and message.message_id, error)
            return
        if len(self._unwritten) >= MAX_UNWRITTEN:
            dropped = self._unwritten.pop(0).message
            logger.error(
                "chat message %s not recorded: %d wait for the store already (%s)", dropped and dropped.message_id, MAX_UNWRITTEN, error
            )
        elif not self._unwritten:
            logger.warning("chat messages wait for the store (tried again every %.0f s): %s", RETRY_SECONDS, error)
        self._unwritten.append(pending)
        self._retry_at = time.monotonic() + RETRY_SECONDS


def _settle(pending: _Pending, result: tuple[int, bool] | None, error: Exception | None) -> None:
    if pending.future is None or pending.loop is None:  # a chat message nobody waits for, stored
        return

    def settle() -> None:
        if pending.future.done():  # the webhook's client went away; the note is stored all the same
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)

    try:
        pending.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the receiver's loop closed while the note was written
        what = pending.record or pending.message
        logger.warning("message %s stored after the receiver stopped", what.message_id if what else "?")


def store_voice_notes(
    database_url: str, spool_dir: Path, notes: list[tuple[NewVoiceNote, bytes | None]], messages: list[NewMessage] = ()
) -> list[tuple[int, bool]]:
    """Spool each note's audio and store the notes (and chat messages) in one transaction; return each note's id and whether it was there already.

    On an error nothing is stored and no spooled file is left behind.
    """
    spooled: list[Path | None] = []
    try:
        records = [
            replace(record, audio_path=str(path) if (path := _spool(spool_dir, record, audio, spooled)) else None)
            for record, audio in notes
        ]
        with open_session(database_url) as session:
            results = insert_voice_notes(session, records) if records else []
            if not all(duplicate for _, duplicate in results):
                notify_stored(session)
            insert_messages(session, list(messages))
    except BaseException:
        for path in spooled:
            if path is not None:
                path.unlink(missing_ok=True)
        raise
    for path, (_, duplicate) in zip(spooled, results, strict=True):
        if duplicate and path is not None:
            path.unlink(missing_ok=True)
    return results


def _spool(spool_dir: Path, record: NewVoiceNote, audio: bytes | None, spooled: list[Path | None]) -> Path | None:
    if audio is None:
        spooled.append(None)
        return None
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"{uuid.uuid4().hex}{extension_for(record.mimetype)}"
    spooled.append(path)
    partial = path.with_suffix(".partial")
    try:
        partial.write_bytes(audio)
        partial.replace(path)
    except OSError:  # a full disk: no half-written file left behind
        partial.unlink(missing_ok=True)
        raise
    return path
