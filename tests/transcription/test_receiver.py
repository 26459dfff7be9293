"""The Evolution webhook on the receiver: the token, the answers Evolution acts on, and nothing stored unless accepted."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.webhook import WebhookConfig, create_app
from store.database import open_session
from store.voice_notes import count_by_status, get_voice_note
from tests.fakes.evolution_webhook import RetryRules, WebhookSender, text_envelope, voice_note_envelope
from tests.fakes.server import serve_app

from .conftest import TOKEN

AUDIO = b"OggS\x00\x02" + bytes(range(256)) * 8


class RecordingDispatcher:
    """Stands in for the run dispatcher: records which stored notes it was asked to start."""

    def __init__(self):
        self.submitted: list[int] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def submit(self, voice_note_id: int) -> None:
        self.submitted.append(voice_note_id)


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def receiver(store_url, tmp_path, dispatcher) -> Iterator[str]:
    config = WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool", max_body_bytes=64 * 1024)
    with serve_app(create_app(store_url, config, dispatcher)) as url:
        yield url


def post(url: str, envelope, headers=None, path: str = "/webhooks/evolution", **kwargs) -> httpx.Response:
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return httpx.post(f"{url}{path}", content=body, headers={"content-type": "application/json", **(headers or {})}, timeout=10, **kwargs)


def stored(url: str) -> dict[str, int]:
    with open_session(url) as session:
        return count_by_status(session)


def test_an_accepted_voice_note_is_stored_with_its_audio_spooled_before_the_202(receiver, store_url, dispatcher, tmp_path):
    response = post(receiver, voice_note_envelope(AUDIO, message_id="3A7F2C9D41B8E05A6C13", seconds=6), {"X-Vigia-Token": TOKEN})
    assert response.status_code == 202
    voice_note_id = response.json()["voice_note_id"]
    assert response.json() == {"status": "accepted", "voice_note_id": voice_note_id}
    with open_session(store_url) as session:
        note = get_voice_note(session, voice_note_id)
    assert (note.status, note.message_id, note.chat_jid, note.audio_seconds, note.audio_bytes) == (
        "received", "3A7F2C9D41B8E05A6C13", "5511987654321@s.whatsapp.net", 6.0, len(AUDIO))
    assert Path(note.audio_path).read_bytes() == AUDIO and Path(note.audio_path).parent == tmp_path / "spool"
    assert Path(note.audio_path).suffix == ".ogg"
    assert "base64" not in json.loads(note.quoted)["message"]
    assert dispatcher.submitted == [voice_note_id]


def test_without_the_token_the_answer_is_401_and_nothing_is_stored(receiver, store_url, dispatcher):
    for headers in ({}, {"X-Vigia-Token": "wrong-token-wrong-token"}, {"Authorization": "Bearer nope"}):
        response = post(receiver, voice_note_envelope(AUDIO), headers)
        assert (response.status_code, response.json()["status"]) == (401, "unauthorized")
    assert stored(store_url) == {} and dispatcher.submitted == []


def test_duplicates_and_evolution_retries_are_stored_once(receiver, store_url, dispatcher):
    sender = WebhookSender(f"{receiver}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN})
    envelope = voice_note_envelope(AUDIO)
    attempts = sender.deliver_twice(envelope) + sender.deliver(envelope)
    assert [(a.status, a.body["status"]) for a in attempts] == [(202, "accepted"), (200, "duplicate"), (200, "duplicate")]
    assert stored(store_url) == {"received": 1} and len(dispatcher.submitted) == 1


def test_the_jwt_mode_and_the_by_events_path_are_accepted(receiver, store_url):
    sender = WebhookSender(f"{receiver}/webhooks/evolution", jwt_key=TOKEN, by_events=True)
    [attempt] = sender.deliver(voice_note_envelope(AUDIO))
    assert attempt.status == 202
    assert post(receiver, voice_note_envelope(AUDIO), params={"token": TOKEN}).status_code == 202
    assert stored(store_url) == {"received": 2}


@pytest.mark.parametrize(
    "envelope, reason",
    [
        (voice_note_envelope(AUDIO, from_me=True), "fromMe: sent from this WhatsApp number"),
        (voice_note_envelope(AUDIO, chat_jid="status@broadcast"), "status broadcast"),
        (text_envelope("oi"), "not audio (conversation)"),
    ],
)
def test_ignored_events_get_200_with_the_reason_and_store_nothing(receiver, store_url, envelope, reason):
    response = post(receiver, envelope, {"X-Vigia-Token": TOKEN})
    assert (response.status_code, response.json()) == (200, {"status": "ignored", "reason": reason})
    assert stored(store_url) == {}


def test_a_malformed_body_gets_400_with_the_reason_and_evolution_does_not_retry_it(receiver, store_url):
    response = post(receiver, b'{"event": "messages.upsert", "instance": "ops-bot"', {"X-Vigia-Token": TOKEN})
    assert response.status_code == 400 and response.json()["reason"].startswith("body is not JSON")
    sender = WebhookSender(f"{receiver}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN}, rules=RetryRules.v2_3().scaled(0.001))
    attempts = sender.deliver({"event": "messages.upsert", "instance": "ops-bot", "data": {"key": {"remoteJid": "x@s.whatsapp.net"}}})
    assert [(a.status, a.body["reason"]) for a in attempts] == [(400, "data.key.id: field required")]
    assert stored(store_url) == {}


def test_a_body_over_the_limit_gets_413(receiver, store_url):
    big = voice_note_envelope(bytes(70 * 1024))
    response = post(receiver, big, {"X-Vigia-Token": TOKEN})
    assert (response.status_code, response.json()["status"]) == (413, "too-large")
    assert stored(store_url) == {}


def test_evolution_2_2_retries_even_a_401_every_interval_and_2_3_gives_up_at_once(receiver):
    envelope = voice_note_envelope(AUDIO)
    legacy = WebhookSender(f"{receiver}/webhooks/evolution", rules=RetryRules.v2_2().scaled(0.001))
    assert [a.status for a in legacy.deliver(envelope)] == [401] * 10
    current = WebhookSender(f"{receiver}/webhooks/evolution", rules=RetryRules.v2_3().scaled(0.001))
    assert [a.status for a in current.deliver(envelope)] == [401]


def test_a_receiver_without_a_token_answers_503_so_evolution_keeps_the_message_for_later(sqlite_store_url, tmp_path):
    config = WebhookConfig(token=None, spool_dir=tmp_path)
    with serve_app(create_app(sqlite_store_url, config)) as url:
        sender = WebhookSender(f"{url}/webhooks/evolution", rules=RetryRules(max_attempts=3, initial_delay_seconds=0.01, max_delay_seconds=0.02))
        attempts = sender.deliver(voice_note_envelope(AUDIO))
    assert [a.status for a in attempts] == [503, 503, 503]
    assert attempts[0].body["reason"] == "no webhook token is set up: set VIGIA_WEBHOOK_TOKEN or run `vigia setup`"
