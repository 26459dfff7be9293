"""The voice_notes row: stored once per (instance, key.id), and claims that let only one run reply or start."""

from datetime import datetime, timedelta, timezone

from store import voice_notes
from store.database import open_session
from store.voice_notes import NewVoiceNote

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def new_note(message_id: str = "3A7F2C9D41B8E05A6C13", received_at: datetime = NOW) -> NewVoiceNote:
    return NewVoiceNote(
        instance="ops-bot",
        message_id=message_id,
        chat_jid="5511987654321@s.whatsapp.net",
        sender_jid=None,
        sent_at=NOW,
        received_at=received_at,
        quoted="{}",
        mimetype="audio/ogg",
        audio_path=None,
        audio_bytes=None,
        audio_seconds=3.0,
    )


def test_a_message_is_stored_once_per_instance_and_key_id(store_url):
    with open_session(store_url) as session:
        first = voice_notes.insert_voice_note(session, new_note())
        again = voice_notes.insert_voice_note(session, new_note())
        other = voice_notes.insert_voice_note(session, new_note("4F0C6A2B9D7E13C58A0B"))
    assert first is not None and again is None and other not in (None, first)
    with open_session(store_url) as session:
        assert voice_notes.find_voice_note_id(session, "ops-bot", "3A7F2C9D41B8E05A6C13") == first
        assert voice_notes.count_by_status(session) == {"received": 2}


def test_only_one_run_claims_the_reply_and_a_refused_send_releases_it(store_url):
    with open_session(store_url) as session:
        note_id = voice_notes.insert_voice_note(session, new_note())
    with open_session(store_url) as session:
        assert voice_notes.claim_reply(session, note_id, NOW) is True
        assert voice_notes.claim_reply(session, note_id, NOW) is False
        voice_notes.release_reply(session, note_id)
        assert voice_notes.claim_reply(session, note_id, NOW) is True
        voice_notes.record_reply(session, note_id, NOW + timedelta(seconds=4), "3EB0ABC", keep_transcript=False)
        voice_notes.release_reply(session, note_id)  # too late: it was sent
        assert voice_notes.claim_reply(session, note_id, NOW) is False
        note = voice_notes.get_voice_note(session, note_id)
    assert (note.status, note.reply_message_id, (note.replied_at - note.received_at).total_seconds()) == ("replied", "3EB0ABC", 4.0)
