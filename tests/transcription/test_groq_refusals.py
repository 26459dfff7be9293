"""Groq's refusals of an audio file reach the flow as permanent, with or without the error `code` older bodies leave out."""

from __future__ import annotations

import asyncio

import pytest

from clients import groq
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app

from .conftest import GROQ_KEY


def transcribe(fake: FakeGroq, audio: bytes, file_name: str) -> groq.TranscriptionReply:
    async def call() -> groq.TranscriptionReply:
        client = groq.create_client(GROQ_KEY, url, timeout=5)
        try:
            return await groq.transcribe(client, audio, model="whisper-large-v3-turbo", language="pt", timeout=5, file_name=file_name)
        finally:
            await client.close()

    with serve_app(fake.app) as url:
        return asyncio.run(call())


@pytest.mark.parametrize("error_codes", [True, False], ids=["with-code", "without-code"])
@pytest.mark.parametrize(
    ("audio", "file_name", "reason", "message"),
    [
        pytest.param(
            b"\x00\x01 not an audio container",
            "voice.ogg",
            "audio-undecodable",
            "Groq could not decode the audio (400): could not process file - is it a valid media file?",
            id="undecodable",
        ),
        pytest.param(
            b"OggS audio",
            "voice.oga",
            "unsupported-format",
            "Groq refused the audio format (400): file must be one of the following types: [flac mp3 mp4 mpeg mpga m4a ogg opus wav webm]",
            id="oga-name",
        ),
    ],
)
def test_audio_groq_will_not_take_is_rejected_for_good_with_or_without_an_error_code(error_codes, audio, file_name, reason, message):
    fake = FakeGroq(api_key=GROQ_KEY, error_codes=error_codes)
    with pytest.raises(groq.TranscriptionRejected) as raised:
        transcribe(fake, audio, file_name)
    assert (raised.value.reason, str(raised.value)) == (reason, message)
    assert len(fake.transcriptions) == 1  # refused once, never retried


def test_a_reply_carries_the_days_requests_left_and_when_they_reset_from_groqs_headers(clips):
    fake = FakeGroq(api_key=GROQ_KEY, requests_per_day=2)
    first = transcribe(fake, clips.speech, "voice.ogg")
    second = transcribe(fake, clips.speech, "voice.ogg")
    assert (first.quota, second.quota) == (groq.RequestQuota(1, 43.2), groq.RequestQuota(0, 43.2))
    assert "quota" not in second.model_dump()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("43.2s", 43.2), ("2m59.56s", 179.56), ("1h2m3s", 3723.0), ("250ms", 0.25), ("3m", 180.0), ("", None), ("soon", None), (None, None)],
)
def test_groqs_reset_durations_are_read_as_seconds(text, seconds):
    assert groq.duration_seconds(text) == seconds


def test_a_held_gate_sends_a_note_back_to_the_queue_at_once_and_admits_after_the_hold():
    from tasks.groq_gate import GroqBusy, GroqGate, GroqLimits, report_rate_limited

    async def scenario() -> tuple[str, float, float]:
        gate = GroqGate(GroqLimits(4, 1000, 100_000))
        async with gate.admit(3.0, patience_seconds=1.0):
            report_rate_limited(0.6)  # Groq's 429 to the admitted request holds the gate for everyone
        try:
            async with gate.admit(3.0, patience_seconds=0.1):
                refused = "admitted"
        except GroqBusy as busy:
            refused = str(busy)
        held = gate.held_seconds()
        async with gate.admit(3.0, patience_seconds=5.0):
            after = gate.held_seconds()
        return refused, held, after

    refused, held, after = asyncio.run(scenario())
    assert refused.startswith("Groq asked to wait") and 0 < held <= 0.6 and after == 0.0
