"""A burst on the receiver: every note stored once, in a few transactions, and a note the store refuses fails alone."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import event, text

from deployments.voice_note_writer import VoiceNoteWriter
from deployments.webhook import WebhookConfig, create_app
from store.database import StoreError, get_engine, open_session
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
