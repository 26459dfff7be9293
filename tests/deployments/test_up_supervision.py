"""`vigia up` keeps the platform up: each part killed in turn (the Prefect server too) is back within 30 s, and a voice
note posted meanwhile is replied once. A real `vigia up` with the loopback fakes of Evolution and Groq."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from deployments.platform_state import read_state
from store.database import open_session
from store.voice_notes import get_voice_note
from tests.deployments.processes import processes_tagged
from tests.deployments.test_up import status_of, wait_for
from tests.fakes.evolution_webhook import RetryRules, WebhookSender, voice_note_envelope
from tests.fakes.server import free_port
from tests.transcription.conftest import (  # noqa: F401  fixtures
    EVOLUTION_KEY,
    GROQ_KEY,
    INSTANCE,
    SPOKEN,
    TOKEN,
    clips,
    evolution_url,
    fake_evolution,
    fake_groq,
    groq_url,
)

CHAT = "5511987654321@s.whatsapp.net"
REPLY = f"🎙️ *Transcrição:*\n{SPOKEN}"
BACK_SECONDS = 30
# Killed in this order; the Prefect server last, so the parts before it are judged on a healthy platform.
# `serve` hosts the transcriber: killing it kills both.
PARTS = ("dashboard", "receiver", "serve", "prefect-server")


class RunningPlatform:
    def __init__(self, home, evolution_url: str, groq_url: str):
        self.home = home
        self.tag = os.urandom(8).hex()
        ports = {"prefect": free_port(), "webhook": free_port(), "dashboard": free_port()}
        self.urls = {
            "prefect-server": f"http://127.0.0.1:{ports['prefect']}/api/health",
            "receiver": f"http://127.0.0.1:{ports['webhook']}/health",
            "dashboard": f"http://127.0.0.1:{ports['dashboard']}/_stcore/health",
        }
        self.store_url = f"sqlite:///{home / 'vigia.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env.update(
            {
                "VIGIA_HOME": str(home),
                "VIGIA_TEST_TAG": self.tag,
                "VIGIA_WEBHOOK_TOKEN": TOKEN,
                "EVOLUTION_API_URL": evolution_url,
                "EVOLUTION_API_KEY": EVOLUTION_KEY,
                "EVOLUTION_INSTANCE": INSTANCE,
                "GROQ_API_KEY": GROQ_KEY,
                "GROQ_BASE_URL": groq_url,
            }
        )
        self.process = subprocess.Popen(
            [
                "vigia",
                "up",
                "--prefect-port",
                str(ports["prefect"]),
                "--webhook-port",
                str(ports["webhook"]),
                "--dashboard-port",
                str(ports["dashboard"]),
            ],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.sender = WebhookSender(
            f"http://127.0.0.1:{ports['webhook']}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN}, rules=RetryRules.v2_3().scaled(0.2)
        )

    def pids(self) -> dict[str, int]:
        state = read_state(self.home)
        return state.parts if state else {}

    def is_back(self, part: str, killed_pid: int) -> bool:
        pid = self.pids().get(part)
        if pid is None or pid == killed_pid or not os.path.exists(f"/proc/{pid}"):
            return False
        return part not in self.urls or status_of(self.urls[part]) in (200, 503)

    def post_note(self) -> int:
        """Deliver a voice note as Evolution does: retried until the receiver takes it."""
        attempts = self.sender.deliver(voice_note_envelope(self.speech, chat_jid=CHAT))
        assert attempts[-1].status == 202, attempts
        return attempts[-1].body["voice_note_id"]

    def status_of_note(self, voice_note_id: int) -> str:
        with open_session(self.store_url) as session:
            return get_voice_note(session, voice_note_id).status


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_each_part_killed_in_turn_is_back_within_30_s_and_every_note_is_replied_once(
    tmp_path, evolution_url, groq_url, fake_evolution, clips
):
    platform = RunningPlatform(tmp_path, evolution_url, groq_url)
    platform.speech = clips.speech
    try:
        # /health turns 200 once the first health check (started by `vigia up` through the runner) is stored.
        wait_for(
            lambda: (
                set(PARTS) <= set(platform.pids())
                and status_of(platform.urls["receiver"]) == 200
                and all(status_of(url) for url in platform.urls.values())
            ),
            240,
            "every part to run",
            platform.process,
        )
        notes, back_after = [], {}
        for part in PARTS:
            killed = platform.pids()[part]
            os.kill(killed, signal.SIGKILL)
            started = time.monotonic()
            notes.append(platform.post_note())
            if part == "prefect-server":
                assert status_of(platform.urls[part]) is None  # stored (202) while Prefect was away
            wait_for(lambda part=part, killed=killed: platform.is_back(part, killed), BACK_SECONDS, f"{part} to be back", platform.process)
            back_after[part] = round(time.monotonic() - started, 1)
            print(f"{part} back after {back_after[part]} s")
        wait_for(lambda: all(platform.status_of_note(n) == "replied" for n in notes), 120, "every note to be replied", platform.process)
        assert [sent.text for sent in fake_evolution.sent] == [REPLY] * len(notes), back_after
        assert len({sent.quoted_id for sent in fake_evolution.sent}) == len(notes)
    finally:
        platform.process.send_signal(signal.SIGINT)
        try:
            _, stderr = platform.process.communicate(timeout=90)
        finally:
            for pid in processes_tagged(platform.tag):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert platform.process.returncode == 0, stderr
    for part in PARTS:
        assert f"{part} died (exit -9, 1 in 10 min); restarting in 1 s" in stderr
    assert not (tmp_path / "up.json").exists()
    assert processes_tagged(platform.tag) == []
    assert status_of(platform.urls["prefect-server"]) is None
    print(f"back after (s): {back_after}")  # for the report: how long each part took
