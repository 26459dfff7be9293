"""The receiver's spool sweep (deployments/spool_sweep.py): only its host can delete what it spooled, so it removes the
audio no note names any more (answered, or fetched again by a transcriber on another host) and keeps the rest."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone

from sqlalchemy import event

from deployments.spool_sweep import SpoolSweep
from deployments.voice_note_writer import store_voice_notes
from store import voice_notes
from store.database import get_engine, open_session
from store.voice_notes import NewVoiceNote

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def new_note(message_id: str) -> NewVoiceNote:
    return NewVoiceNote("ops-bot", message_id, "5511987654321@s.whatsapp.net", None, NOW, NOW, "{}", "audio/ogg", None, None, 3.0)


def test_the_sweep_removes_only_the_spooled_audio_no_note_names(store_url, tmp_path):
    spool = tmp_path / "spool" / "voice-notes"
    ids = [voice_note_id for voice_note_id, _ in store_voice_notes(store_url, spool, [(new_note(f"M{n}"), b"OggS") for n in range(4)])]
    waiting, answered_elsewhere, kept, failed = ids
    with open_session(store_url) as session:
        spooled = {voice_note_id: voice_notes.get_voice_note(session, voice_note_id).audio_path for voice_note_id in ids}
        other_host = f"/var/lib/vigia-w1/spool/voice-notes/{answered_elsewhere}.ogg"
        voice_notes.record_audio(session, answered_elsewhere, NOW, audio_path=other_host, audio_bytes=4, mimetype="audio/ogg")
        voice_notes.record_reply(session, answered_elsewhere, NOW, "R1", keep_transcript=False)
        voice_notes.record_reply(session, kept, NOW, "R2", keep_transcript=True)
        voice_notes.record_failure(session, failed, "groq-auth", "401")
    transcribers_own = spool / f"{waiting}.ogg"  # a transcriber on this host fetched it: it removes its own file
    transcribers_own.write_bytes(b"OggS")
    orphan = spool / f"{uuid.uuid4().hex}.ogg"  # spooled by a receiver that died before its note was committed
    orphan.write_bytes(b"OggS")

    sweep = SpoolSweep(store_url, spool)
    assert sweep.sweep() == 2
    assert sorted(path.name for path in spool.iterdir()) == sorted(
        [transcribers_own.name] + [spooled[voice_note_id].rsplit("/", 1)[1] for voice_note_id in (waiting, kept, failed)]
    )
    assert sweep.kept_for_good == {spooled[kept]}  # a finished note keeps its audio on purpose: not asked about again


def test_the_sweeps_question_is_answered_from_an_index_not_by_reading_every_note(sqlite_store_url):
    """It runs in the receiver's writer every 10 s while audio waits: a scan of a year of notes would hold the webhooks."""
    statements = []
    engine = get_engine(sqlite_store_url)

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with open_session(sqlite_store_url) as session:
            voice_notes.audio_in_use(session, ["/spool/a.ogg", "/spool/b.ogg"])
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    [(statement, parameters)] = [(s, p) for s, p in statements if "audio_path" in s]
    with sqlite3.connect(sqlite_store_url.removeprefix("sqlite:///")) as connection:
        plan = " / ".join(row[-1] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters))
    assert "USING INDEX ix_voice_notes_audio_path" in plan or "USING COVERING INDEX ix_voice_notes_audio_path" in plan, plan
