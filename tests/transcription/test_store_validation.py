"""The store refuses, on every backend alike, a voice note it could not hold, as a permanent error naming the field."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from store.database import open_session
from store.voice_notes import InvalidVoiceNote, NewVoiceNote, count_by_status, insert_voice_note

NOTE = NewVoiceNote(
    instance="ops-bot",
    message_id="3A7F2C9D41B8E05A6C13",
    chat_jid="5511987654321@s.whatsapp.net",
    sender_jid=None,
    sent_at=datetime(2025, 10, 23, 14, 35, 13, tzinfo=timezone.utc),
    received_at=datetime.now(timezone.utc),
    quoted="{}",
    mimetype="audio/ogg; codecs=opus",
    audio_path=None,
    audio_bytes=None,
    audio_seconds=6.0,
)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"chat_jid": "5511987654321\x00@s.whatsapp.net"}, "chat_jid: holds a NUL or a lone surrogate"),
        ({"sender_jid": "1" * 129}, "sender_jid: 129 characters, at most 128 fit"),
        ({"mimetype": "audio/ogg" * 12}, "mimetype: 108 characters, at most 100 fit"),
        ({"instance": "ops\ud800"}, "instance: holds a NUL or a lone surrogate"),
        ({"audio_seconds": float("inf")}, "audio_seconds: inf is not a finite number"),
    ],
    ids=["nul-chat", "long-sender", "long-mimetype", "surrogate-instance", "infinite-seconds"],
)
def test_a_note_no_store_can_hold_is_refused_naming_the_field(store_url, change, message):
    with pytest.raises(InvalidVoiceNote, match=f"^{message}$"):
        with open_session(store_url) as session:
            insert_voice_note(session, replace(NOTE, **change))
    with open_session(store_url) as session:
        assert count_by_status(session) == {}
        assert insert_voice_note(session, NOTE) == 1  # the same note, storable, goes in
