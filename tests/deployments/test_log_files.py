"""The logs under VIGIA_HOME/logs: a chatty child's log is rotated while it runs, and a repeated error is one line a minute."""

from __future__ import annotations

import io
import logging
import os
import sys
import time

import httpx
import pytest

import deployments.dispatch  # noqa: F401  Prefect sets logging up on import; here, before caplog attaches its handler
from deployments.log_files import LOG_BACKUPS, LOG_MAX_BYTES, RECEIVER_LOGGERS, RepeatFilter
from deployments.supervisor import Part, Supervisor
from deployments.webhook import create_app_from_environment
from tests.fakes.evolution_webhook import voice_note_envelope
from tests.fakes.server import serve_app

TOKEN = "log-files-test-token-0123456789"
LINE_BYTES = 1024
# 8 × the limit, 1 MiB at a time at ~10 MiB/s: `vigia up` looks every 0.5 s, so a file overshoots by ~5 MiB at most,
# and at least five rotations drop the first lines.
WRITTEN_BYTES = 8 * LOG_MAX_BYTES
CHATTY_CHILD = f"""
import sys, time
line = 0
for burst in range({WRITTEN_BYTES // (1024 * 1024)}):
    for _ in range(1024):
        line += 1
        sys.stdout.write(f"line {{line:08d}} ".ljust({LINE_BYTES - 1}, "x") + "\\n")
    sys.stdout.flush()
    time.sleep(0.1)
"""


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_vigia_up_rotates_a_chatty_childs_log_and_keeps_three_backups(tmp_path):
    supervisor = Supervisor(
        [Part("chatty", (sys.executable, "-c", CHATTY_CHILD))],
        os.environ,
        tmp_path / "logs",
        say=lambda line: None,
        alert=lambda child: None,
    )
    supervisor.step()
    chatty = supervisor.children["chatty"].process
    deadline = time.monotonic() + 120
    while chatty.poll() is None and time.monotonic() < deadline:
        supervisor.step()  # `vigia up` looks every 0.25 s
        time.sleep(0.5)
    assert chatty.returncode == 0
    logs = sorted((tmp_path / "logs").iterdir())
    assert [path.name for path in logs] == ["chatty.log", *(f"chatty.log.{number}" for number in range(1, LOG_BACKUPS + 1))]
    assert all(path.stat().st_size <= LOG_MAX_BYTES + 6 * 1024 * 1024 for path in logs), {p.name: p.stat().st_size for p in logs}
    current = (tmp_path / "logs" / "chatty.log").read_bytes()
    last_line = WRITTEN_BYTES // LINE_BYTES
    assert current.startswith(b"line ") and current.rstrip().endswith(b"x")  # the child's appends start over at 0: no hole of NULs
    assert f"line {last_line:08d} ".encode() in current
    assert not any(b"line 00000001 " in path.read_bytes()[:LINE_BYTES] for path in logs)  # the oldest lines are gone


def test_a_repeated_error_is_written_once_a_window_with_its_count():
    stream, clock = io.StringIO(), Clock()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatFilter(window_seconds=60, clock=clock))
    logger = logging.getLogger("tests.log_files.repeats")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for number in range(313):
            logger.error("voice note %d not stored: %s", number, "store down")
        logger.warning("a different message passes")
        clock.now += 61
        logger.error("voice note %d not stored: %s", 313, "store down")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "voice note 0 not stored: store down",
        "a different message passes",
        "voice note 313 not stored: store down (repeated 312 times in the last 60 s)",
    ]


@pytest.fixture
def receiver_environment(monkeypatch, tmp_path):
    """The environment of a receiver whose store refuses connections; the factory's log filters are removed after."""
    monkeypatch.setenv("VIGIA_HOME", str(tmp_path))
    monkeypatch.setenv("VIGIA_DATABASE_URL", "postgresql+psycopg://vigia@127.0.0.1:1/vigia")
    monkeypatch.setenv("VIGIA_WEBHOOK_TOKEN", TOKEN)
    yield
    for name in RECEIVER_LOGGERS:  # the factory filtered this process's handlers: leave them as they were
        for handler in logging.getLogger(name).handlers:
            for existing in [f for f in handler.filters if isinstance(f, RepeatFilter)]:
                handler.removeFilter(existing)


def test_the_receiver_logs_a_store_outage_once_however_many_notes_it_refuses(receiver_environment, caplog):
    caplog.set_level(logging.ERROR, logger="deployments.webhook")
    with serve_app(create_app_from_environment()) as url:  # uvicorn's factory, as `vigia up` runs it
        statuses = [
            httpx.post(
                f"{url}/webhooks/evolution", json=voice_note_envelope(b"OggS" * 64), headers={"X-Vigia-Token": TOKEN}, timeout=10
            ).status_code
            for _ in range(30)
        ]
    assert statuses == [503] * 30
    outage = [record.getMessage() for record in caplog.records if "not stored" in record.getMessage()]
    assert len(outage) == 1 and "failed:" in outage[0]
