"""Spooled audio and kept transcripts pruned per their settings, on SQLite and PostgreSQL."""

import os
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from store.database import open_session
from store.models import VoiceNoteRow
from store.retention import Limits, apply_retention

NOW = datetime.now(timezone.utc).replace(microsecond=0)
LIMITS = Limits(transcript_days=30)


def add_note(url, spool, name, status, days_old, transcript=None):
    path = spool / f"{name}.ogg"
    path.write_bytes(b"OggS audio")
    with open_session(url) as session:
        received = NOW - timedelta(days=days_old)
        session.add(
            VoiceNoteRow(
                instance="i",
                message_id=name,
                chat_jid="j",
                received_at=received,
                status=status,
                audio_path=str(path),
                transcript=transcript,
            )
        )
    return path


def kept(url):
    with open_session(url) as session:
        rows = session.execute(
            select(VoiceNoteRow.message_id, VoiceNoteRow.audio_path, VoiceNoteRow.transcript).order_by(VoiceNoteRow.message_id)
        )
        return {name: (audio is not None, transcript) for name, audio, transcript in rows}


def test_without_keeping_transcripts_a_finished_notes_audio_goes_and_a_waiting_ones_stays(store_url, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    replied = add_note(store_url, spool, "replied", "replied", 0.1)
    skipped = add_note(store_url, spool, "skipped", "skipped", 0.1)
    waiting = add_note(store_url, spool, "waiting", "received", 0.1)
    failed = add_note(store_url, spool, "failed", "failed", 2)
    stale = add_note(store_url, spool, "stale", "failed", 31)
    orphan, fresh_orphan = spool / "orphan.ogg", spool / "fresh-orphan.ogg"
    orphan.write_bytes(b"left by a crash")
    fresh_orphan.write_bytes(b"the receiver is committing it")
    two_days_ago = (NOW - timedelta(days=2)).timestamp()
    os.utime(orphan, (two_days_ago, two_days_ago))

    report = apply_retention(store_url, NOW, LIMITS, spool_dir=spool)

    assert sorted(path.name for path in spool.iterdir()) == ["failed.ogg", "fresh-orphan.ogg", "waiting.ogg"]
    assert not any(path.exists() for path in (replied, skipped, stale)) and failed.exists() and waiting.exists()
    assert kept(store_url) == {
        "failed": (True, None),
        "replied": (False, None),
        "skipped": (False, None),
        "stale": (False, None),
        "waiting": (True, None),
    }
    assert report.spool_files_deleted == 4


def test_kept_transcripts_and_audio_go_after_their_limit(store_url, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    recent = add_note(store_url, spool, "recent", "replied", 29, transcript="bom dia")
    old = add_note(store_url, spool, "old", "replied", 31, transcript="boa noite")

    report = apply_retention(store_url, NOW, Limits(transcript_days=30, keep_transcripts=True), spool_dir=spool)

    assert (recent.exists(), old.exists()) == (True, False)
    assert kept(store_url) == {"old": (False, None), "recent": (True, "bom dia")}
    assert (report.spool_files_deleted, report.transcripts_cleared) == (1, 1)


def test_a_dry_run_deletes_no_file_and_clears_nothing(store_url, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    replied = add_note(store_url, spool, "replied", "replied", 31, transcript="oi")

    report = apply_retention(store_url, NOW, Limits(transcript_days=30, keep_transcripts=True), spool_dir=spool, dry_run=True)

    assert replied.exists() and kept(store_url) == {"replied": (True, "oi")}
    assert (report.spool_files_deleted, report.transcripts_cleared) == (1, 1)
