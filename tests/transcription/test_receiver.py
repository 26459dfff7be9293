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
        "received",
        "3A7F2C9D41B8E05A6C13",
        "5511987654321@s.whatsapp.net",
        6.0,
        len(AUDIO),
    )
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
        sender = WebhookSender(
            f"{url}/webhooks/evolution", rules=RetryRules(max_attempts=3, initial_delay_seconds=0.01, max_delay_seconds=0.02)
        )
        attempts = sender.deliver(voice_note_envelope(AUDIO))
    assert [a.status for a in attempts] == [503, 503, 503]
    assert attempts[0].body["reason"] == "no webhook token is set up: set VIGIA_WEBHOOK_TOKEN or run `vigia setup`"


def test_a_token_vigia_up_generates_after_the_receiver_started_is_honoured_without_a_restart(sqlite_store_url, tmp_path, monkeypatch):
    # `vigia up` starts the receiver beside setup, which generates the token on a fresh VIGIA_HOME: the receiver
    # read the token file once, at start, and answered 503 until someone restarted it.
    from deployments.tokens import create_token_file
    from deployments.webhook import create_app_from_environment

    monkeypatch.setenv("VIGIA_HOME", str(tmp_path))
    monkeypatch.setenv("VIGIA_DATABASE_URL", sqlite_store_url)
    monkeypatch.delenv("VIGIA_WEBHOOK_TOKEN", raising=False)
    with serve_app(create_app_from_environment()) as url:
        before = WebhookSender(f"{url}/webhooks/evolution", rules=RetryRules(max_attempts=1)).deliver(voice_note_envelope(AUDIO))
        token = create_token_file(tmp_path)
        sender = WebhookSender(f"{url}/webhooks/evolution", headers={"X-Vigia-Token": token}, rules=RetryRules(max_attempts=1))
        after = sender.deliver(voice_note_envelope(AUDIO))
    assert [a.status for a in before] == [503] and [a.status for a in after] == [202]


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_audio_field(name: str, value) -> dict:
    envelope = voice_note_envelope(AUDIO)
    envelope["data"]["message"]["audioMessage"][name] = value
    return envelope


def raw_body(envelope: dict, path: tuple[str, ...], raw: str) -> bytes:
    """The envelope as JSON with the value at `path` replaced by raw JSON text (for what json.dumps cannot write)."""
    marker = "__vigia_raw_marker__"
    target = envelope
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = marker
    return json.dumps(envelope).replace(f'"{marker}"', raw).encode()


def test_a_malformed_bearer_token_is_401_never_500(receiver, store_url):
    nested_header = base64.urlsafe_b64encode(deep(1100).encode()).rstrip(b"=").decode()
    for token in (f"{nested_header}.e30.c2ln", "a.b.c", "é.é.é", "x" * 10_000, f"{nested_header}.{nested_header}.x"):
        response = post(receiver, voice_note_envelope(AUDIO), {"Authorization": f"Bearer {token}".encode()})
        assert (response.status_code, response.json()["status"]) == (401, "unauthorized")
    assert stored(store_url) == {}


@pytest.mark.parametrize(
    "body, reason",
    [
        (raw_body(voice_note_envelope(AUDIO), ("data",), deep(1100)), "body nests deeper than 64 levels"),
        (
            raw_body(voice_note_envelope(AUDIO), ("data", "message", "audioMessage", "contextInfo"), deep(950)),
            "body nests deeper than 64 levels",
        ),
        (raw_body(voice_note_envelope(AUDIO), ("data", "messageTimestamp"), "1e15"), "data.messageTimestamp: out of range"),
        (
            raw_body(voice_note_envelope(AUDIO), ("data", "messageTimestamp"), '{"low": 0, "high": 2147483648}'),
            "data.messageTimestamp: out of range",
        ),
        (
            raw_body(voice_note_envelope(AUDIO), ("data", "messageTimestamp"), '{"low": null, "high": 0}'),
            "data.messageTimestamp: value error, expected a number, a digit string or {low, high}",
        ),
        (
            raw_body(voice_note_envelope(AUDIO), ("data", "key", "remoteJid"), json.dumps("5511987654321@s.whatsapp.net" * 8)),
            "data.key.remoteJid: string should have at most 128 characters",
        ),
        (
            raw_body(voice_note_envelope(AUDIO), ("data", "key", "remoteJid"), '"5511987654321\\u0000@s.whatsapp.net"'),
            "data.key.remoteJid: must not hold control characters",
        ),
        (raw_body(voice_note_envelope(AUDIO), ("data", "key", "id"), '"3A7F\\ud800"'), "data.key.id: input should be a valid string"),
        (
            raw_body(voice_note_envelope(AUDIO, participant="x"), ("data", "key", "participant"), json.dumps("1" * 200 + "@lid")),
            "data.key.participant: string should have at most 128 characters",
        ),
        (json.dumps(voice_note_envelope(AUDIO, instance="..")).encode(), "instance: must be a name"),
        (json.dumps(voice_note_envelope(AUDIO, instance="ops/../message")).encode(), "instance: must be a name"),
    ],
    ids=[
        "deep-data",
        "deep-in-message",
        "timestamp-1e15",
        "timestamp-long-high-2-31",
        "timestamp-long-null",
        "long-remote-jid",
        "nul-in-remote-jid",
        "surrogate-in-id",
        "long-participant",
        "instance-dot-dot",
        "instance-path",
    ],
)
def test_a_malformed_body_is_400_with_the_reason_on_every_store(receiver, store_url, dispatcher, body, reason):
    response = post(receiver, body, {"X-Vigia-Token": TOKEN})
    assert (response.status_code, response.json()["status"]) == (400, "rejected")
    assert response.json()["reason"].startswith(reason)
    assert stored(store_url) == {} and dispatcher.submitted == []


@pytest.mark.parametrize(
    "name, raw",
    [
        ("seconds", "1" + "0" * 400),
        ("seconds", "1e400"),
        ("seconds", '{"low": "x", "high": 1}'),
        ("waveform", '{"low": null, "high": []}'),
        ("waveform", '{"low": [], "high": "x"}'),
        ("fileLength", '{"low": "x", "high": null, "unsigned": true}'),
        ("mimetype", json.dumps("audio/ogg; codecs=opus" * 10)),
        ("mimetype", '"audio/ogg\\u0000"'),
    ],
    ids=[
        "seconds-10e400",
        "seconds-inf",
        "seconds-bad-long",
        "waveform-null-long",
        "waveform-list-long",
        "file-length-bad-long",
        "long-mimetype",
        "nul-in-mimetype",
    ],
)
def test_an_unusable_detail_of_a_usable_voice_note_is_dropped_and_the_note_stored(receiver, store_url, dispatcher, name, raw):
    body = raw_body(voice_note_envelope(AUDIO, seconds=6), ("data", "message", "audioMessage", name), raw)
    response = post(receiver, body, {"X-Vigia-Token": TOKEN})
    assert (response.status_code, response.json()["status"]) == (202, "accepted")
    with open_session(store_url) as session:
        note = get_voice_note(session, response.json()["voice_note_id"])
    assert note.audio_bytes == len(AUDIO)
    if name == "seconds":
        assert note.audio_seconds is None
    if name == "mimetype":
        assert note.mimetype is None and Path(note.audio_path).suffix == ".ogg"
    assert dispatcher.submitted == [note.id]


@pytest.mark.parametrize("version", ["2.2.3", "2.3.6"])
def test_the_jwt_key_is_accepted_as_each_evolution_version_really_sends_it(receiver, store_url, version):
    legacy = version.startswith("2.2.")  # 2.2.x posts `jwt_key: <key>` verbatim; 2.3.0+ signs a Bearer JWT with it
    rules = RetryRules.v2_2().scaled(0.001) if legacy else RetryRules.v2_3()  # 2.2 has no timeout to shrink
    sender = WebhookSender(f"{receiver}/webhooks/evolution", jwt_key=TOKEN, literal_jwt_key=legacy, rules=rules)
    [attempt] = sender.deliver(voice_note_envelope(AUDIO, variant=version))
    assert (attempt.status, attempt.body["status"]) == (202, "accepted")
    wrong = WebhookSender(f"{receiver}/webhooks/evolution", jwt_key=TOKEN[:-1] + "x", literal_jwt_key=legacy, rules=RetryRules.v2_3())
    assert [a.status for a in wrong.deliver(voice_note_envelope(AUDIO))] == [401]
    assert stored(store_url) == {"received": 1}
