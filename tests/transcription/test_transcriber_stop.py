"""A transcriber process stopped while a batch runs (what `vigia up` does on Ctrl-C): the batch finishes, the process exits 0.

Prefect's flow engine installs its own SIGTERM handler while a run executes in the main thread; it
raised TerminationSignal in the middle of the batch, the run ended Crashed and the process died with a
traceback (seen in the transcription benchmark's logs).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
from prefect.client.orchestration import get_client

from deployments.parts import Ports, child_environment, platform_urls
from deployments.settings import load_settings
from deployments.webhook import WebhookConfig, create_app
from tests.fakes.evolution_webhook import voice_note_envelope
from tests.fakes.server import serve_app

from .conftest import TOKEN, Clips
from .test_voice_notes_end_to_end import CHAT, Platform, blocks, deployment  # noqa: F401


@pytest.mark.timeout(180)
def test_a_sigterm_while_a_batch_runs_lets_the_batch_finish_and_the_process_exit_cleanly(
    prefect_server, blocks, deployment, sqlite_store_url, tmp_path, fake_evolution, fake_groq, clips: Clips
):
    fake_groq.delay_seconds = 3.0
    environ = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_WEBHOOK_TOKEN": TOKEN}
    settings = load_settings(environ, env_file=None)
    urls = replace(platform_urls(settings, Ports()), prefect_api=prefect_server)
    env = child_environment(settings, urls, "test-marker", environ)  # what `vigia up` gives its parts
    transcriber = subprocess.Popen(
        [sys.executable, "-m", "deployments.transcriber"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        with serve_app(create_app(sqlite_store_url, WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool" / "voice-notes"))) as url:
            platform = Platform(url, sqlite_store_url, tmp_path, fake_evolution, fake_groq, None)
            voice_note_id = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
            note = platform.wait_for(voice_note_id, "running", "replied", seconds=60)
            assert note.status == "running", "the batch finished before the stop: nothing was tested"
            transcriber.send_signal(signal.SIGTERM)
            output, _ = transcriber.communicate(timeout=60)
    finally:
        if transcriber.poll() is None:
            transcriber.kill()
    assert transcriber.returncode == 0, output
    assert "TerminationSignal" not in output and "Traceback" not in output, output
    assert "Warning" not in output, output  # e.g. Prefect's "attempted to send logs to the API without a flow run id"
    assert platform.note(voice_note_id).status == "replied" and len(fake_evolution.sent) == 1

    async def run_state() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(note.flow_run_id)).state.type.value

    assert asyncio.run(run_state()) == "COMPLETED"


def test_a_ctrl_c_while_the_transcriber_still_loads_ends_it_without_a_traceback(tmp_path):
    """`vigia up` stopped right after it started (or on a busy host, where loading Prefect takes seconds)."""
    transcriber = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "deployments.transcriber"],
        env={**os.environ, "VIGIA_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in transcriber.stderr:  # -X importtime: one line per module imported
            if "prefect" in line:  # still loading
                transcriber.send_signal(signal.SIGINT)
                break
        output = transcriber.stderr.read()
        transcriber.wait(timeout=30)
    finally:
        if transcriber.poll() is None:
            transcriber.kill()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-2000:]
    assert "deployments.transcription_runs" not in output  # the signal came while it was loading, not after
