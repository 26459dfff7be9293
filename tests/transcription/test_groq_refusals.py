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
