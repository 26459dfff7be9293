"""Transcribers outside the receiver: a burst shared by two of them, a dead holder's notes and runs, Groq's shared limits,
and the runaway of the old 60 s re-queue replayed with a few hundred notes and a slow Groq."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Running
from sqlalchemy import text, update

from blocks.alert_routes import AlertRoutes
from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from deployments.dispatch import TranscriberThread
from deployments.transcription_runs import RunMaker
from deployments.webhook import WebhookConfig, create_app
from store import voice_note_queue
from store.alerts import list_alerts
from store.database import get_engine, open_session
from store.models import VoiceNoteRow
from tasks.groq_gate import GroqLimits, ensure_groq_limits
from tests.conftest import TABLES
from tests.fakes.evolution_webhook import voice_note_envelope
from tests.fakes.server import serve_app
from tests.polling import wait_until

from .conftest import EVOLUTION_KEY, GROQ_KEY, INSTANCE, TOKEN, Clips
from .test_voice_notes_end_to_end import CHAT, REPLY, Platform, blocks, deployment, save_settings  # noqa: F401

pytestmark = pytest.mark.usefixtures("prefect_server")
ROOMY = {"groq_max_concurrency": 16, "groq_requests_per_minute": 100_000, "groq_audio_seconds_per_hour": 100_000_000}


class ConcurrencyMeter:
    """ASGI wrapper counting the transcription requests Groq holds at once."""

    def __init__(self, app):
        self.app, self.now, self.most = app, 0, 0
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        counted = scope["type"] == "http" and scope["path"].endswith("/audio/transcriptions")
        if counted:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            if counted:
                with self.lock:
                    self.now -= 1


@pytest.fixture
def postgres_store(postgres_schema_url) -> str:
    with get_engine(postgres_schema_url).begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return postgres_schema_url


@pytest.fixture
def metered_groq(fake_groq) -> Iterator[tuple[str, ConcurrencyMeter]]:
    meter = ConcurrencyMeter(fake_groq.app)
    with serve_app(meter) as url:
        yield url, meter


def save_blocks(store_url: str, home, evolution_url: str, groq_url: str) -> None:
    VigiaSettings(home=str(home), database_url=store_url).save("default", overwrite=True)
    EvolutionApi(url=evolution_url, api_key=EVOLUTION_KEY, instance=INSTANCE, timeout_seconds=5).save("default", overwrite=True)
    GroqApi(api_key=GROQ_KEY, base_url=groq_url, timeout_seconds=30).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)


def start(store_url: str, home, transcribers: int, **options) -> tuple[Platform, list[TranscriberThread], object]:
    threads = [TranscriberThread(store_url, **options) for _ in range(transcribers)]
    for thread in threads:
        thread.start()
    server = serve_app(create_app(store_url, WebhookConfig(token=TOKEN, spool_dir=home / "spool" / "voice-notes")))
    url = server.__enter__()
    return Platform(url, store_url, home, None, None, threads[0]), threads, server


def stop(threads: list[TranscriberThread], server) -> None:
    for thread in threads:
        thread.stop()
    server.__exit__(None, None, None)


def statuses(store_url: str) -> list[tuple[int, str, int]]:
    with open_session(store_url) as session:
        return [tuple(row) for row in session.execute(text("SELECT id, status, attempts FROM voice_notes ORDER BY id"))]


@pytest.mark.slow
def test_two_transcribers_woken_by_notify_answer_a_burst_once_each(
    postgres_store,
    deployment,
    tmp_path,
    fake_evolution,
    evolution_url,
    fake_groq,
    metered_groq,
    clips: Clips,
):
    groq_url, meter = metered_groq
    save_blocks(postgres_store, tmp_path, evolution_url, groq_url)
    save_settings(**ROOMY)
    fake_groq.delay_seconds = 0.3
    platform, threads, server = start(postgres_store, tmp_path, 2, max_in_flight=6)
    try:
        ids = [platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(30)]
        wait_until(lambda: all(status == "replied" for _, status, _ in statuses(postgres_store)), 90, "every note replied")
    finally:
        stop(threads, server)
    assert sorted(sent.quoted_id for sent in fake_evolution.sent) == sorted(platform.note(i).message_id for i in ids)
    assert {attempts for _, _, attempts in statuses(postgres_store)} == {1}
    assert len(fake_groq.transcriptions) == 30


def test_a_dead_holders_notes_are_taken_again_and_its_runs_marked_crashed(blocks, deployment, sqlite_store_url, tmp_path, clips: Clips):
    server = serve_app(create_app(sqlite_store_url, WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool" / "voice-notes")))
    url = server.__enter__()
    platform = Platform(url, sqlite_store_url, tmp_path, None, None, None)
    recorded, orphaned = (platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(2))
    dead_runs = asyncio.run(_die_holding(sqlite_store_url, recorded, orphaned))
    threads = [TranscriberThread(sqlite_store_url, poll_seconds=0.05)]
    threads[0].start()
    try:
        for voice_note_id in (recorded, orphaned):
            platform.wait_for(voice_note_id, "replied", seconds=30)
    finally:
        stop(threads, server)
    assert asyncio.run(_state_names(dead_runs)) == ["CRASHED", "CRASHED"]
    assert [platform.note(i).attempts for i in (recorded, orphaned)] == [2, 1]


async def _die_holding(store_url: str, recorded: int, orphaned: int) -> list:
    """A holder that created both notes' runs, recorded and started one, then died before renewing its leases."""
    maker, now = RunMaker(), datetime.now(timezone.utc)
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    with open_session(store_url) as session:
        voice_note_queue.take_notes(session, [recorded], first, "dead/1", now, timedelta(seconds=30))
        voice_note_queue.take_notes(session, [orphaned], second, "dead/1", now, timedelta(seconds=30))
    run_a, run_b = await maker.create(first, [recorded]), await maker.create(second, [orphaned])
    async with get_client() as client:
        await client.set_flow_run_state(run_a.id, Running(), force=True)
    await maker.close()
    with open_session(store_url) as session:
        voice_note_queue.rekey_claim(session, first, str(run_a.id), str(run_a.id))
        session.execute(update(VoiceNoteRow).where(VoiceNoteRow.id == recorded).values(status="running", attempts=1))
        session.execute(update(VoiceNoteRow).values(lease_expires_at=now - timedelta(seconds=1)))
    return [run_a.id, run_b.id]


async def _state_names(run_ids: list) -> list[str]:
    async with get_client() as client:
        return [(await client.read_flow_run(run_id)).state.type.value for run_id in run_ids]


def test_a_notes_room_goes_to_the_next_note_when_its_reply_is_out_not_when_its_whole_run_ends(
    blocks, deployment, sqlite_store_url, tmp_path, fake_evolution, monkeypatch, clips: Clips
):
    import flows.transcribe_voice_note as flow_module

    publish = flow_module._publish
    published: list[datetime] = []

    async def slow_publish(outcomes):  # a Prefect slow to take the run's artifact and final state
        await asyncio.sleep(3)
        await publish(outcomes)
        published.append(datetime.now(timezone.utc))

    monkeypatch.setattr(flow_module, "_publish", slow_publish)
    platform, threads, server = start(sqlite_store_url, tmp_path, 1, max_in_flight=1, poll_seconds=0.05)
    try:
        first, second = (platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(2))
        platform.wait_for(first, "replied", seconds=30)
        # Its room is the first note's: the second is claimed (its lease taken) once that room frees.
        claimed = wait_until(lambda: platform.note(second).lease_token and datetime.now(timezone.utc), 30, "the second note's claim")
        platform.wait_for(second, "replied", seconds=30)
    finally:
        stop(threads, server)
    assert claimed < published[0], "the second note waited for the first note's run to end"
    assert len(fake_evolution.sent) == 2


def test_groqs_shared_concurrency_limit_holds_across_two_transcribers(
    blocks,
    deployment,
    sqlite_store_url,
    tmp_path,
    fake_evolution,
    evolution_url,
    fake_groq,
    metered_groq,
    clips: Clips,
):
    groq_url, meter = metered_groq
    save_blocks(sqlite_store_url, tmp_path, evolution_url, groq_url)
    save_settings(**ROOMY)  # each process's own bound is roomy: only the shared limit holds them
    asyncio.run(_set_shared_limits(GroqLimits(2, 100_000, 100_000_000)))
    fake_groq.delay_seconds = 0.4
    platform, threads, server = start(sqlite_store_url, tmp_path, 2, max_in_flight=6, poll_seconds=0.05)
    try:
        ids = [platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(10)]
        for voice_note_id in ids:
            platform.wait_for(voice_note_id, "replied", seconds=60)
    finally:
        stop(threads, server)
        asyncio.run(_delete_shared_limits())
    assert meter.most == 2 and len(fake_evolution.sent) == 10
    assert {attempts for _, _, attempts in statuses(sqlite_store_url)} == {1}


async def _set_shared_limits(limits: GroqLimits) -> None:
    await _delete_shared_limits()
    await ensure_groq_limits(limits)


async def _delete_shared_limits() -> None:
    async with get_client() as client:
        for definition in GroqLimits(1, 1, 10).definitions():
            try:
                await client.delete_global_concurrency_limit_by_name(definition.name)
            except Exception:  # not there
                pass


@pytest.mark.slow
def test_the_runaway_burst_is_answered_once_each_with_only_the_queue_age_warning(
    blocks,
    deployment,
    sqlite_store_url,
    tmp_path,
    fake_evolution,
    fake_groq,
    clips: Clips,
):
    save_settings(**ROOMY)
    fake_groq.delay_seconds = 1.5  # slow Groq: the queue backs up far beyond the 60 s the old sweeper allowed a claim
    notes = 240
    platform, threads, server = start(sqlite_store_url, tmp_path, 1, max_in_flight=12, poll_seconds=0.1, sla_seconds=4)
    try:
        ids = [platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(notes)]
        wait_until(lambda: all(status == "replied" for _, status, _ in statuses(sqlite_store_url)), 240, "every note replied")
    finally:
        stop(threads, server)
    assert sorted(sent.quoted_id for sent in fake_evolution.sent) == sorted(platform.note(i).message_id for i in ids)
    assert {attempts for _, _, attempts in statuses(sqlite_store_url)} == {1}
    assert len(fake_groq.transcriptions) == notes
    # Notes that waited together went into batch runs: far fewer runs than notes.
    assert len({platform.note(i).flow_run_id for i in ids}) < notes / 2
    with open_session(sqlite_store_url) as session:
        alerts = list_alerts(session)
    assert [(alert.severity, alert.key) for alert in alerts] == [("warning", "transcription:queue-age")]


def test_notes_that_cannot_call_groq_fail_at_once_and_take_none_of_its_shared_room(
    blocks, deployment, sqlite_store_url, tmp_path, fake_evolution, clips: Clips
):
    """Groq not set up yet: the notes fail "not-configured" without spending the requests-per-minute limit on calls never made."""
    asyncio.run(_forget_block("groq", "default"))
    save_settings(groq_max_concurrency=1, groq_requests_per_minute=2, groq_audio_seconds_per_hour=100_000_000)
    asyncio.run(_set_shared_limits(GroqLimits(1, 2, 100_000_000)))
    platform, threads, server = start(sqlite_store_url, tmp_path, 1, max_in_flight=6, poll_seconds=0.05)
    try:
        ids = [platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)) for _ in range(6)]
        notes = [platform.wait_for(voice_note_id, "failed", seconds=60) for voice_note_id in ids]
        requests_taken = asyncio.run(_active_slots("groq-requests-per-minute"))
    finally:
        stop(threads, server)
        asyncio.run(_delete_shared_limits())
    assert {(note.error_reason, note.attempts) for note in notes} == {("not-configured", 1)}
    assert requests_taken == 0
    assert [sent.text for sent in fake_evolution.sent] == [TranscriptionSettings().failure_reply] * 6  # the friendly reply, once each


async def _forget_block(block_type_slug: str, name: str) -> None:
    from prefect.exceptions import ObjectNotFound

    from tasks.block_cache import forget_blocks

    forget_blocks()
    async with get_client() as client:
        try:
            document = await client.read_block_document_by_name(name, block_type_slug)
        except ObjectNotFound:
            return
        await client.delete_block_document(document.id)


async def _active_slots(name: str) -> float:
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(name)).active_slots


def test_when_groq_says_the_days_requests_are_spent_the_next_note_waits_in_the_queue_instead_of_meeting_a_429(
    blocks, deployment, sqlite_store_url, tmp_path, fake_evolution, fake_groq, clips: Clips
):
    save_settings(**ROOMY)
    fake_groq.requests_per_day = 2  # the second reply says `x-ratelimit-remaining-requests: 0`, reset in 43.2 s
    platform, threads, server = start(sqlite_store_url, tmp_path, 1, max_in_flight=4, poll_seconds=0.05)
    try:
        for _ in range(2):
            platform.wait_for(platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)), "replied", seconds=30)
        waiting = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
        time.sleep(3)  # 15 polls of the queue: none may claim it while Groq's hold lasts
        note = platform.note(waiting)
    finally:
        stop(threads, server)
    assert (note.status, note.attempts, note.flow_run_id) == ("received", 0, None)
    assert len(fake_groq.transcriptions) == 2 and len(fake_evolution.sent) == 2
