"""The maintenance flow run for real: the store's retention with the limits of the vigia-settings Block."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from blocks.vigia import VigiaSettings
from flows.maintenance import maintenance
from store.database import open_session
from store.models import HealthRunRow

pytestmark = pytest.mark.usefixtures("prefect_server")


def count_runs(url: str) -> int:
    with open_session(url) as session:
        return session.scalar(select(func.count()).select_from(HealthRunRow))


def test_maintenance_prunes_with_the_blocks_limits_and_a_dry_run_keeps_everything(store_url, tmp_path):
    now = datetime.now(timezone.utc)
    with open_session(store_url) as session:
        for days in (60, 10):
            at = now - timedelta(days=days)
            session.add(HealthRunRow(started_at=at, finished_at=at, targets_total=1, targets_down=0))
    VigiaSettings(home=str(tmp_path), database_url=store_url, keep_probes_days=20, keep_history_days=30).save("default", overwrite=True)
    dry = asyncio.run(maintenance(dry_run=True))
    assert (dry["health_runs"], count_runs(store_url)) == (1, 2)
    done = asyncio.run(maintenance())
    assert (done["health_runs"], count_runs(store_url)) == (1, 1)


def test_maintenance_drops_an_answered_notes_spooled_audio_from_vigia_home(sqlite_store_url, tmp_path):
    from store.models import VoiceNoteRow

    spool = tmp_path / "spool" / "voice-notes"
    spool.mkdir(parents=True)
    answered, waiting = spool / "answered.ogg", spool / "waiting.ogg"
    with open_session(sqlite_store_url) as session:
        for path, status in ((answered, "replied"), (waiting, "received")):
            path.write_bytes(b"OggS")
            session.add(
                VoiceNoteRow(
                    instance="i",
                    message_id=path.stem,
                    chat_jid="j",
                    received_at=datetime.now(timezone.utc),
                    status=status,
                    audio_path=str(path),
                )
            )
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)

    asyncio.run(maintenance())

    assert (answered.exists(), waiting.exists()) == (False, True)
