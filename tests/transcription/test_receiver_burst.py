"""A burst on the receiver: every note stored once, in a few transactions, and a note the store refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import event, select, text

from deployments.voice_note_writer import VoiceNoteWriter
from deployments.webhook import WebhookConfig, create_app
from store.conversations import NewMessage, chat_key
from store.database import StoreError, get_engine, open_session
from store.models import ConversationMessageRow
from store.voice_notes import NewVoiceNote, count_by_status, insert_voice_notes
from tests.fakes.evolution_webhook import voice_note_envelope
from tests.fakes.server import serve_app

from .conftest import TOKEN

AUDIO = b"OggS\x00\x02" + bytes(range(256)) * 8
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)


def new_note(message_id: str) -> NewVoiceNote:
    return NewVoiceNote(
        instance="ops-bot",
        message_id=message_id,
        chat_jid="5511987654321@s.whatsapp.net",
        sender_jid=None,
        sent_at=NOW,
        received_at=NOW,
        quoted="{}",
        mimetype="audio/ogg",
        audio_path=None,
        audio_bytes=len(AUDIO),
        audio_seconds=3.0,
    )


def test_notes_stored_together_keep_their_first_id_for_a_redelivery_before_or_within_the_batch(store_url):
    with open_session(store_url) as session:
        [(earlier, new)] = insert_voice_notes(session, [new_note("EARLIER")])
    assert new is False
    with open_session(store_url) as session:
        results = insert_voice_notes(session, [new_note("A"), new_note("EARLIER"), new_note("B"), new_note("A")])
    (a, a_again), (before, before_again), (b, b_again), (a_second, a_second_again) = results
    assert (a_again, before_again, b_again, a_second_again) == (False, True, False, True)
    assert before == earlier and a_second == a and len({a, b, earlier}) == 3
    with open_session(store_url) as session:
        assert count_by_status(session) == {"received": 3}


def test_a_burst_of_webhooks_is_stored_once_each_in_fewer_transactions_than_notes(store_url, tmp_path):
    commits = []
    engine = get_engine(store_url)

    def count_commit(connection) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count_commit)
    envelopes = [voice_note_envelope(AUDIO, message_id=f"3A7F2C9D41B8E05A{index:04d}", seconds=3) for index in range(60)]
    redelivered = envelopes[:10]  # Evolution's retries arriving inside the same burst
    config = WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool")
    try:
        with serve_app(create_app(store_url, config)) as url, httpx.Client(timeout=30) as client:

            def post(envelope) -> httpx.Response:
                return client.post(f"{url}/webhooks/evolution", content=json.dumps(envelope), headers={"X-Vigia-Token": TOKEN})

            with ThreadPoolExecutor(max_workers=30) as pool:
                answers = list(pool.map(post, envelopes + redelivered))
    finally:
        event.remove(engine, "commit", count_commit)
    ids = [answer.json()["voice_note_id"] for answer in answers]
    assert all(answer.status_code in (200, 202) for answer in answers)
    assert sorted(answer.status_code for answer in answers).count(202) == 60
    assert ids[60:] == ids[:10] and len(set(ids)) == 60
    with open_session(store_url) as session:
        assert count_by_status(session) == {"received": 60}
    assert len(list((tmp_path / "spool").iterdir())) == 60  # the redeliveries' audio is not kept twice
    assert len(commits) < 60


def test_a_note_the_store_refuses_fails_alone_and_its_batch_neighbours_are_stored(sqlite_store_url, tmp_path):
    with open_session(sqlite_store_url) as session:
        session.execute(
            text(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON voice_notes WHEN NEW.message_id = 'REFUSED' "
                "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
            )
        )
    writer = VoiceNoteWriter(sqlite_store_url, tmp_path / "spool")

    async def store_together():
        notes = [new_note(name) for name in ("FIRST", "REFUSED", "THIRD", "FOURTH")]
        return await asyncio.gather(*(writer.store(note, AUDIO) for note in notes), return_exceptions=True)

    try:
        first, refused, third, fourth = asyncio.run(store_together())
    finally:
        writer.stop()
    assert isinstance(refused, StoreError) and "refused by a test trigger" in str(refused)
    assert [duplicate for _, duplicate in (first, third, fourth)] == [False, False, False]
    with open_session(sqlite_store_url) as session:
        assert count_by_status(session) == {"received": 3}
    assert len(list((tmp_path / "spool").iterdir())) == 3  # the refused note's audio is not left behind


def test_a_spool_the_disk_refuses_answers_its_error_and_stores_nothing(sqlite_store_url, tmp_path):
    (tmp_path / "spool").write_text("a file where the spool folder should be")
    writer = VoiceNoteWriter(sqlite_store_url, tmp_path / "spool")
    try:
        with pytest.raises(OSError):
            asyncio.run(writer.store(new_note("NO-ROOM"), AUDIO))
    finally:
        writer.stop()
    with open_session(sqlite_store_url) as session:
        assert count_by_status(session) == {}


def new_message(message_id: str, direction: str = "customer") -> NewMessage:
    return NewMessage(
        instance="ops-bot",
        message_id=message_id,
        chat=chat_key(new_note("").chat_jid, bytes(32)),
        direction=direction,
        kind="text",
        at=NOW,
        reply_to=None,
    )


def recorded(store_url: str) -> set[str]:
    with open_session(store_url) as session:
        return set(session.scalars(select(ConversationMessageRow.message_id)))


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_voice_notes_answer_never_waits_for_chat_messages_being_recorded(store_url, tmp_path):
    """Recording metadata is the receiver's side job: a slow metadata write must not hold a voice note's 202."""
    with open_session(store_url) as session:
        session.execute(
            text("CREATE FUNCTION slow_messages() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$")
        )
        session.execute(text("CREATE TRIGGER slow_messages AFTER INSERT ON conversation_messages EXECUTE FUNCTION slow_messages()"))
    writer = VoiceNoteWriter(store_url, tmp_path / "spool")

    async def text_then_note() -> set[str]:
        await writer.record_message(new_message("TEXT"))  # answered at once; written in the background
        await writer.store(new_note("NOTE"), AUDIO, new_message("NOTE"))
        return recorded(store_url)

    try:
        recorded_when_answered = asyncio.run(text_then_note())
        with open_session(store_url) as session:
            assert count_by_status(session) == {"received": 1}
        assert recorded_when_answered == set()  # the note was answered while the chat messages were still being written
    finally:
        writer.stop()
        with open_session(store_url) as session:
            session.execute(text("DROP TRIGGER slow_messages ON conversation_messages"))
            session.execute(text("DROP FUNCTION slow_messages()"))
    assert recorded(store_url) == {"TEXT", "NOTE"}  # and nothing was lost


def test_chat_messages_arriving_together_are_recorded_in_a_few_transactions(sqlite_store_url, tmp_path):
    commits = []
    engine = get_engine(sqlite_store_url)

    def count_commit(connection) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count_commit)
    writer = VoiceNoteWriter(sqlite_store_url, tmp_path / "spool")

    async def chatter() -> None:
        for index in range(40):  # a busy bot: a message every 5 ms
            await writer.record_message(new_message(f"TEXT-{index}", "customer" if index % 3 else "bot"))
            await asyncio.sleep(0.005)

    try:
        asyncio.run(chatter())
    finally:
        writer.stop()
        event.remove(engine, "commit", count_commit)
    assert len(recorded(sqlite_store_url)) == 40
    assert len(commits) <= 8  # not one transaction (and one pairing) per message
