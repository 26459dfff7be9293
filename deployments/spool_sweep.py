"""The receiver's spool kept to what the notes still need, swept by the receiver itself: only its host can reach that disk.

A transcriber on another host cannot read the audio the receiver spooled here: it fetches the note again from
Evolution (tasks/transcripts.py: fetch_audio) and the note then names that copy, so nobody would ever delete
this one. The sweep runs in the receiver's writer thread between batches, when every file it spooled is
committed with its note, and removes the files it spooled that no note names any more (answered, or
fetched again elsewhere). Audio a finished note keeps (VIGIA_KEEP_TRANSCRIPTS) is remembered and not asked
about again; a transcriber's own files (named by the note's id) are its own to remove.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from store.database import StoreError, open_session
from store.voice_notes import FINISHED, audio_in_use

logger = logging.getLogger(__name__)
SWEEP_SECONDS = 10.0
CHUNK = 500  # paths per query
SPOOLED_NAME = re.compile(r"[0-9a-f]{32}\.[a-z0-9]+")  # the receiver's own files (voice_note_writer._spool)


class SpoolSweep:
    """Every SWEEP_SECONDS, remove the receiver's spooled audio that no note names any more."""

    def __init__(self, database_url: str, spool_dir: Path):
        self.database_url = database_url
        self.spool_dir = spool_dir
        self.kept_for_good: set[str] = set()  # named by a finished note: its audio is kept on purpose
        self.next_at = time.monotonic() + SWEEP_SECONDS
        self.failing = False

    def seconds_to_next(self) -> float:
        """How long the writer may wait for a webhook before the next sweep is due."""
        return max(0.0, self.next_at - time.monotonic())

    def sweep_if_due(self) -> int:
        """Sweep when it is time; return how many files went."""
        if time.monotonic() < self.next_at:
            return 0
        self.next_at = time.monotonic() + SWEEP_SECONDS
        return self.sweep()

    def sweep(self) -> int:
        """Remove the spooled files no note names; return how many went (none when the store does not answer)."""
        started = time.perf_counter()
        paths = [str(path) for path in self._spooled() if str(path) not in self.kept_for_good]
        if not paths:
            return 0
        try:
            named: dict[str, str] = {}
            with open_session(self.database_url) as session:
                for start in range(0, len(paths), CHUNK):
                    named.update(audio_in_use(session, paths[start : start + CHUNK]))
        except StoreError as error:
            if not self.failing:
                logger.warning("spool sweep skipped: the store did not answer (%s); trying again in %.0f s", error, SWEEP_SECONDS)
            self.failing = True
            return 0
        self.failing = False
        self.kept_for_good.update(path for path, status in named.items() if status in FINISHED)
        gone = [path for path in paths if path not in named]
        for path in gone:
            Path(path).unlink(missing_ok=True)
        if gone:
            logger.info("spool: %d audio files no note needs removed in %.0f ms", len(gone), (time.perf_counter() - started) * 1000)
        return len(gone)

    def _spooled(self) -> list[Path]:
        try:
            return [entry for entry in self.spool_dir.iterdir() if SPOOLED_NAME.fullmatch(entry.name) and entry.is_file()]
        except FileNotFoundError:
            return []
