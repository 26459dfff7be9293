"""The logs under VIGIA_HOME/logs: bounded in size, and a repeated error written once a minute with its count.

`vigia up` sends each child's stdout and stderr to `logs/<child>.log`, opened for appending. A
child never reopens it, so the file is rotated by copy and truncate (logrotate's `copytruncate`):
the child's next append lands at the start of the emptied file. A line written between the copy
and the truncate is lost; that is the price of not passing every line through `vigia up`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
REPEAT_WINDOW_SECONDS = 60.0
# Whose records reach the receiver's stderr, and so its log file: ours, Prefect's root set-up and uvicorn's own.
RECEIVER_LOGGERS = ("", "deployments", "clients", "store", "uvicorn", "uvicorn.error", "uvicorn.access")


def rotate_if_large(path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> bool:
    """Rotate `path` to `path.1` … `path.<backups>` once it is over `max_bytes`, truncating it in place.

    Returns:
        Whether it was rotated.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for number in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{number}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{number + 1}"))
    with open(path, "r+b") as source:
        with open(path.with_name(f"{path.name}.1"), "wb") as copy:
            shutil.copyfileobj(source, copy)
        source.truncate(0)
    return True


class RepeatFilter(logging.Filter):
    """Let the first record of a kind through each window, and count the rest into the next one let through.

    A kind is the logger, the level and the message before its arguments, so `voice note %s not
    stored: %s` repeated for a thousand notes is one line a minute: `… (repeated 999 times in the
    last 60 s)`. Tracebacks of the suppressed records go with them.
    """

    def __init__(self, window_seconds: float = REPEAT_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_seconds = window_seconds
        self.clock = clock
        self.seen: dict[tuple, list] = {}  # kind -> [window start, records suppressed in it]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg), record.exc_info[0] if record.exc_info else None)
        now = self.clock()
        entry = self.seen.get(kind)
        if entry is not None and now - entry[0] < self.window_seconds:
            entry[1] += 1
            return False
        if entry is not None and entry[1]:
            record.msg = f"{record.getMessage()} (repeated {entry[1]} times in the last {self.window_seconds:.0f} s)"
            record.args = None
        self.seen[kind] = [now, 0]
        if len(self.seen) > 1000:  # kinds are message templates, so few; a bound all the same
            self.seen.pop(next(iter(self.seen)))
        return True


def limit_repeats(logger_names: Iterable[str] = RECEIVER_LOGGERS, window_seconds: float = REPEAT_WINDOW_SECONDS) -> int:
    """Give every handler of these loggers a RepeatFilter of its own (once); return how many got one."""
    added = 0
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(existing, RepeatFilter) for existing in handler.filters):
                handler.addFilter(RepeatFilter(window_seconds))
                added += 1
    return added
