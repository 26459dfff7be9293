"""Transcription fixtures: real audio made with espeak-ng and ffmpeg, the fakes on loopback, Blocks pointing at them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.evolution import FakeEvolution
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app

SPOKEN = "the delivery is confirmed for tomorrow at ten"
INSTANCE = "ops-bot"
EVOLUTION_KEY = "evo-global-key-for-tests"
GROQ_KEY = "gsk_transcription_test_key"
TOKEN = "webhook-token-for-tests-0123456789"


@dataclass(frozen=True)
class Clips:
    """Audio made at test time: speech (OGG/Opus), a silent clip, and a half-second clip."""

    speech: bytes
    silence: bytes
    blip: bytes


def _encode(argv_input: list[str], target: Path) -> bytes:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *argv_input, "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k", str(target)],
        check=True,
        timeout=60,
    )
    return target.read_bytes()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Clips:
    """Speech spoken by espeak-ng and encoded as WhatsApp does (OGG/Opus, 16 kbit/s), plus silence."""
    for tool in ("espeak-ng", "ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: apt-get install -y espeak-ng ffmpeg (or `make tools`)")
    folder = tmp_path_factory.mktemp("clips")
    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(wav), SPOKEN], check=True, timeout=60)
    return Clips(
        speech=_encode(["-i", str(wav)], folder / "speech.ogg"),
        silence=_encode(["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3"], folder / "silence.ogg"),
        blip=_encode(["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5"], folder / "blip.ogg"),
    )


@pytest.fixture
def fake_evolution() -> FakeEvolution:
    return FakeEvolution(api_key=EVOLUTION_KEY, instances={INSTANCE: "open"})


@pytest.fixture
def evolution_url(fake_evolution: FakeEvolution) -> Iterator[str]:
    with serve_app(fake_evolution.app) as url:
        yield url


@pytest.fixture
def fake_groq(clips: Clips) -> FakeGroq:
    fake = FakeGroq(api_key=GROQ_KEY)
    fake.script_audio(clips.speech, SPOKEN, duration=2.8)
    fake.script_silence(clips.silence, duration=3.0)
    return fake


@pytest.fixture
def groq_url(fake_groq: FakeGroq) -> Iterator[str]:
    with serve_app(fake_groq.app) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_blocks():
    """Each test writes its own Blocks (fake servers on new ports): the flow's short-lived Block cache must not carry them over."""
    from tasks.block_cache import forget_blocks

    forget_blocks()
    yield
    forget_blocks()
