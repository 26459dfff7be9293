"""A voice note from the fake Evolution comes back as a quoted transcript: through the receiver, the queue, a
transcriber running a batch run of the `on-webhook` deployment, the real groq SDK against the fake Groq, and sendText."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow_async
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Pending

from blocks.alert_routes import AlertRoutes
from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from deployments.dispatch import TranscriberThread
from deployments.transcription_runs import DEPLOYMENT
from deployments.webhook import WebhookConfig, create_app
from flows.transcribe_voice_note import transcribe_voice_note
from store.alerts import list_alerts
from store.database import open_session
from store.voice_notes import VoiceNote, get_voice_note
from tests.fakes.evolution import FakeEvolution
from tests.fakes.evolution_webhook import WebhookSender, voice_note_envelope
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app
from tests.polling import wait_until

from .conftest import EVOLUTION_KEY, GROQ_KEY, INSTANCE, SPOKEN, TOKEN, Clips
from .proxy import SwitchableProxy

pytestmark = pytest.mark.usefixtures("prefect_server")
CHAT = "5511987654321@s.whatsapp.net"
REPLY = f"🎙️ *Transcrição:*\n{SPOKEN}"
FAILURE = "⚠️ Não consegui transcrever este áudio agora. Tente novamente mais tarde."


@dataclass
class Platform:
    """The receiver, a transcriber, the fakes, and the store, as one test sees them."""

    url: str
    store_url: str
    home: Path
    evolution: FakeEvolution
    groq: FakeGroq
    transcriber: TranscriberThread

    def send(self, envelope: dict) -> int:
        [attempt] = WebhookSender(f"{self.url}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN}).deliver(envelope)
        assert attempt.status == 202, attempt
        return attempt.body["voice_note_id"]

    def note(self, voice_note_id: int) -> VoiceNote:
        with open_session(self.store_url) as session:
            return get_voice_note(session, voice_note_id)

    def wait_for(self, voice_note_id: int, *statuses: str, seconds: float = 20) -> VoiceNote:
        return wait_until(
            lambda: (n := self.note(voice_note_id)).status in statuses and n, seconds, f"voice note {voice_note_id} {statuses}"
        )


def save_settings(**changes) -> None:
    TranscriptionSettings(**changes).save("default", overwrite=True)


@pytest.fixture(scope="module")
def deployment(prefect_server) -> None:
    transcribe_voice_note.to_deployment(name="on-webhook", tags=["vigia"]).apply()


@pytest.fixture
def blocks(sqlite_store_url, tmp_path, evolution_url, groq_url) -> Iterator[None]:
    VigiaSettings(home=str(tmp_path), database_url=sqlite_store_url).save("default", overwrite=True)
    EvolutionApi(url=evolution_url, api_key=EVOLUTION_KEY, instance=INSTANCE, timeout_seconds=5).save("default", overwrite=True)
    GroqApi(api_key=GROQ_KEY, base_url=groq_url, timeout_seconds=5).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    save_settings()
    yield


def start_platform(store_url, home, fake_evolution, fake_groq, poll_seconds: float = 0.05) -> tuple[Platform, Callable[[], None]]:
    """The receiver alone in its app (it only stores), and a transcriber on a thread polling the store as a separate process would."""
    transcriber = TranscriberThread(store_url, poll_seconds=poll_seconds)
    transcriber.start()
    server = serve_app(create_app(store_url, WebhookConfig(token=TOKEN, spool_dir=home / "spool" / "voice-notes")))
    url = server.__enter__()

    def stop() -> None:
        transcriber.stop()
        server.__exit__(None, None, None)

    return Platform(url, store_url, home, fake_evolution, fake_groq, transcriber), stop


@pytest.fixture
def platform(blocks, deployment, sqlite_store_url, tmp_path, fake_evolution, fake_groq) -> Iterator[Platform]:
    fake_evolution.media_store.retry_wait_seconds = 0.2  # Evolution's real 5 s wait is measured in test_media_downloads only
    running, stop = start_platform(sqlite_store_url, tmp_path, fake_evolution, fake_groq)
    yield running
    stop()


async def read_flow_run(flow_run_id: str):
    async with get_client() as client:
        flow_run = await client.read_flow_run(flow_run_id)
        deployment = await client.read_deployment(flow_run.deployment_id)
        return flow_run, deployment


async def run_again(voice_note_id: int):
    """What the served runner does for "Run" in the UI: a new run of the deployment, executed to its end."""
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(DEPLOYMENT)
        flow_run = await client.create_flow_run_from_deployment(
            deployment.id, parameters={"voice_note_ids": [voice_note_id]}, state=Pending()
        )
    return await run_flow_async(
        transcribe_voice_note, flow_run=flow_run, parameters={"voice_note_ids": [voice_note_id]}, return_type="state"
    )


def test_a_voice_note_comes_back_as_a_quoted_transcript_and_a_rerun_never_replies_twice(platform, clips: Clips):
    voice_note_id = platform.send(voice_note_envelope(clips.speech, message_id="3A7F2C9D41B8E05A6C13", seconds=3, chat_jid=CHAT))
    note = platform.wait_for(voice_note_id, "replied")
    [sent] = platform.evolution.sent
    assert (sent.number, sent.text, sent.quoted_id, sent.link_preview, sent.delay_ms) == (CHAT, REPLY, "3A7F2C9D41B8E05A6C13", False, 0)
    assert note.reply_message_id == sent.message_id
    assert note.received_at <= note.run_started_at <= note.audio_fetched_at <= note.transcribed_at <= note.replied_at
    assert (note.audio_seconds, note.transcript, note.audio_path, note.attempts) == (2.8, None, None, 1)
    assert list((platform.home / "spool" / "voice-notes").iterdir()) == []
    [request] = platform.groq.transcriptions
    assert (request.filename, request.content_type, request.response_format, request.model, request.language, request.temperature) == (
        "voice.ogg",
        "audio/ogg",
        "verbose_json",
        "whisper-large-v3-turbo",
        "pt",
        "0.0",
    )
    flow_run, deployment = wait_until(
        lambda: (run := asyncio.run(read_flow_run(note.flow_run_id)))[0].state.is_final() and run, 20, "the run to end"
    )
    assert (deployment.name, flow_run.parameters, flow_run.state.type.value) == (
        "on-webhook",
        {"voice_note_ids": [voice_note_id]},
        "COMPLETED",
    )
    assert (flow_run.name, sorted(flow_run.tags)) == (f"voice-note-{voice_note_id}", ["vigia", f"voice-note-{voice_note_id}"])
    assert (platform.note(voice_note_id).lease_token, platform.note(voice_note_id).lease_expires_at) == (None, None)  # let go once done

    rerun = asyncio.run(run_again(voice_note_id))
    assert (rerun.is_completed(), rerun.result()) == (True, {str(voice_note_id): "replied"})
    assert len(platform.evolution.sent) == 1 and len(platform.groq.transcriptions) == 1


def test_duplicate_deliveries_and_retries_produce_one_reply(platform, clips: Clips):
    envelope = voice_note_envelope(clips.speech, chat_jid=CHAT)
    sender = WebhookSender(f"{platform.url}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN})
    attempts = sender.deliver_twice(envelope) + sender.deliver(envelope)
    assert [a.body["status"] for a in attempts] == ["accepted", "duplicate", "duplicate"]
    platform.wait_for(attempts[0].body["voice_note_id"], "replied")
    assert [s.text for s in platform.evolution.sent] == [REPLY]
    assert len(platform.groq.transcriptions) == 1


def test_without_inline_audio_it_is_fetched_from_evolution_and_uploaded_as_ogg(platform, clips: Clips):
    envelope = voice_note_envelope(None, variant="2.3.5", chat_jid=CHAT)
    message_id = envelope["data"]["key"]["id"]
    platform.evolution.media[message_id] = (clips.speech, "audio/ogg; codecs=opus")
    platform.wait_for(platform.send(envelope), "replied")
    [fetch] = platform.evolution.media_requests
    assert fetch["message"]["key"]["id"] == message_id and "audioMessage" in fetch["message"]["message"]
    assert fetch["convertToMp4"] is False
    assert [r.filename for r in platform.groq.transcriptions] == ["voice.ogg"]  # never Evolution's .oga
    assert [s.text for s in platform.evolution.sent] == [REPLY]


def test_media_evolution_cannot_fetch_gets_the_friendly_reply_once_and_a_warning(platform):
    voice_note_id = platform.send(voice_note_envelope(None, chat_jid=CHAT))  # Evolution has no media for it
    note = platform.wait_for(voice_note_id, "failed")
    assert (note.error_reason, note.error) == (
        "media-unavailable",
        "Evolution API answered 400: Error: error:1C800064:Provider routines::bad decrypt",
    )
    assert [(s.text, s.quoted_id) for s in platform.evolution.sent] == [(FAILURE, note.message_id)]
    wait_until(lambda: asyncio.run(read_flow_run(note.flow_run_id))[0].state.type.value == "FAILED", 20, "the run to end Failed")
    with open_session(platform.store_url) as session:
        [alert] = list_alerts(session)
    assert (alert.severity, alert.key, alert.title) == (
        "warning",
        "transcription:media-unavailable",
        "[WARNING] voice note transcription failed: media-unavailable",
    )
    assert "5511987654321" not in alert.body and "5511*******21" in alert.body


def test_a_rejected_groq_key_fails_the_run_and_a_rerun_after_the_fix_replies_once(platform, clips: Clips):
    platform.groq.api_key = "gsk_rotated_key"
    voice_note_id = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
    note = platform.wait_for(voice_note_id, "failed")
    assert note.error_reason == "groq-auth"
    assert GROQ_KEY not in (note.error or "")
    asyncio.run(run_again(voice_note_id))  # still refused: the failure reply is not sent twice
    assert [s.text for s in platform.evolution.sent] == [FAILURE]
    platform.groq.api_key = GROQ_KEY
    rerun = asyncio.run(run_again(voice_note_id))
    assert rerun.is_completed()
    assert [s.text for s in platform.evolution.sent] == [FAILURE, REPLY]
    asyncio.run(run_again(voice_note_id))
    assert len(platform.evolution.sent) == 2
    assert platform.note(voice_note_id).status == "replied"


def test_a_429_whose_retry_after_does_not_fit_fails_fast_and_the_next_note_waits_it_out_in_the_queue(platform, clips: Clips):
    platform.groq.fail_next(429, {"retry-after": "30"})
    started = time.monotonic()
    note = platform.wait_for(platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)), "failed")
    assert time.monotonic() - started < 5  # the SDK would have slept 30 s
    assert note.error_reason == "groq-rate-limited" and "retry after 30 s" in note.error
    waiting = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
    time.sleep(2)  # ten polls of the queue: Groq said 30 s, so nobody takes the note to meet another 429
    assert (platform.note(waiting).status, platform.note(waiting).attempts) == ("received", 0)
    assert len([r for r in platform.groq.requests if r.path.endswith("/audio/transcriptions")]) == 1
    assert [s.text for s in platform.evolution.sent] == [FAILURE]


def test_a_429_whose_retry_after_fits_and_a_500_are_retried_within_the_budget(platform, clips: Clips):
    platform.groq.fail_next(429, {"retry-after": "1"})
    platform.groq.fail_next(500)
    platform.wait_for(platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)), "replied")
    transcription_calls = [r for r in platform.groq.requests if r.path.endswith("/audio/transcriptions")]
    assert len(transcription_calls) == 3  # 429, 500, success
    assert [s.text for s in platform.evolution.sent] == [REPLY]


def test_a_slow_groq_is_cut_at_the_budget_and_the_sender_still_hears_back_within_the_sla(platform, clips: Clips):
    save_settings(sla_seconds=4)
    platform.groq.delay_seconds = 30
    note = platform.wait_for(platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)), "failed")
    assert note.error_reason == "groq-timeout"
    first_reply = platform.evolution.sent[0]
    assert first_reply.text == FAILURE
    assert (note.run_started_at - note.received_at).total_seconds() < 3  # the queue's poll and the batch's Groq admission come first
    platform.groq.delay_seconds = 0


def test_silence_and_too_short_notes_are_skipped_without_a_reply(platform, clips: Clips):
    silent = platform.wait_for(platform.send(voice_note_envelope(clips.silence, seconds=3, chat_jid=CHAT)), "skipped")
    short = platform.wait_for(platform.send(voice_note_envelope(clips.blip, seconds=0, chat_jid=CHAT)), "skipped")
    assert (silent.error_reason, short.error_reason) == ("no-speech", "too-short")
    assert short.error == "0.5 s is under 1 s"  # measured with ffprobe: the payload said 0
    assert platform.evolution.sent == []
    assert len(platform.groq.transcriptions) == 1  # only the silent clip reached Whisper


def test_a_watched_word_raises_its_alert_once_without_the_transcript(platform, clips: Clips):
    save_settings(keywords={"delivery": "warning", "Tomorrow": "emergency"}, keep_transcripts=True)
    voice_note_id = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
    wait_until(lambda: _alerts(platform), 20, "the keyword alert")
    note = platform.note(voice_note_id)
    assert (note.transcript, Path(note.audio_path).read_bytes()) == (SPOKEN, clips.speech)  # kept on request
    [alert] = _alerts(platform)
    assert (alert.severity, alert.key) == ("emergency", f"voice-note:{voice_note_id}:keywords")
    assert alert.body == (
        f"Voice note {voice_note_id} (instance ops-bot, chat 5511*******21@s.whatsapp.net) contains "
        "'Tomorrow' (emergency), 'delivery' (warning)."
    )
    assert SPOKEN not in alert.body and "confirmed" not in alert.title


def test_audio_over_the_upload_limit_is_split_and_the_texts_joined(platform, clips: Clips):
    limit = len(clips.speech) // 2
    save_settings(max_upload_bytes=limit)
    platform.wait_for(platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT)), "replied")
    pieces = platform.groq.transcriptions
    assert len(pieces) >= 2 and all(p.size_bytes <= limit and p.filename == "voice.ogg" for p in pieces)
    assert [s.text for s in platform.evolution.sent] == ["🎙️ *Transcrição:*\n" + " ".join(["transcribed words"] * len(pieces))]


def test_a_stopped_prefect_loses_nothing(blocks, deployment, prefect_server, sqlite_store_url, tmp_path, fake_evolution, fake_groq, clips):
    proxy = SwitchableProxy(urlsplit(prefect_server).port)
    with temporary_settings(updates={PREFECT_API_URL: f"{proxy.url}/api"}):
        running, stop = start_platform(sqlite_store_url, tmp_path, fake_evolution, fake_groq)
    try:
        voice_note_id = running.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
        # No run can be created: the claim is given back and the note waits in the queue, untouched.
        wait_until(lambda: running.transcriber.transcriber.failures >= 2, 30, "two attempts to reach Prefect")
        note = running.note(voice_note_id)
        assert (note.status, note.attempts, note.flow_run_id, fake_evolution.sent) == ("received", 0, None, [])
        proxy.open()
        note = running.wait_for(voice_note_id, "replied", seconds=40)
        assert [s.text for s in fake_evolution.sent] == [REPLY]
        assert note.attempts == 1
    finally:
        stop()
        proxy.close()


def _alerts(platform: Platform) -> list:
    with open_session(platform.store_url) as session:
        return list_alerts(session)


def test_a_replied_voice_note_is_received_and_replied_events_without_the_number(platform, clips: Clips):
    from datetime import datetime, timezone

    from tests.prefect_events import wait_for_events

    started = datetime.now(timezone.utc)
    voice_note_id = platform.send(voice_note_envelope(clips.speech, chat_jid=CHAT))
    note = platform.wait_for(voice_note_id, "replied")
    asyncio.run(run_again(voice_note_id))  # a re-run replies to nobody and emits nothing new
    received, replied = wait_for_events(
        f"vigia.voice-note.{voice_note_id}", ["vigia.voice-note.received", "vigia.voice-note.replied"], started
    )
    assert received.occurred == note.received_at
    assert received.payload == {"instance": INSTANCE}
    assert 0 < replied.payload["seconds_to_reply"] < 15
    assert "5511987654321" not in received.model_dump_json() + replied.model_dump_json()
