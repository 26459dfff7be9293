"""The receiver records every chat message's metadata — who spoke, the kind, when, what it quotes — and nothing else."""

import json
import time

import httpx
import pytest
from sqlalchemy import select, text

from deployments.webhook import WebhookConfig, create_app
from store.conversations import chat_key
from store.database import open_session
from store.models import ConversationMessageRow
from tests.fakes.evolution_webhook import sent_message_envelope, text_envelope, voice_note_envelope
from tests.fakes.server import serve_app

TOKEN = "conversation-test-token"
KEY = bytes(range(32))
CUSTOMER = "5511987654321@s.whatsapp.net"
SECRET_TEXT = "meu cpf é 123.456.789-00"


def post(url: str, envelope: dict, path: str = "/webhooks/evolution") -> httpx.Response:
    return httpx.post(f"{url}{path}", content=json.dumps(envelope), headers={"x-vigia-token": TOKEN}, timeout=10)


def rows(store_url: str, expected: int = 0, seconds: float = 10) -> list[ConversationMessageRow]:
    """The recorded rows, once there are `expected` of them (a text's webhook is answered before its row is committed)."""
    deadline = time.monotonic() + seconds
    while True:
        with open_session(store_url) as session:
            found = list(session.scalars(select(ConversationMessageRow).order_by(ConversationMessageRow.id)))
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def receiver(store_url, tmp_path):
    config = WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool", conversation_key=KEY)
    with serve_app(create_app(store_url, config)) as url:
        yield url


def test_customer_bot_and_agent_messages_are_recorded_once_without_text_or_number(receiver, store_url):
    question = text_envelope(SECRET_TEXT, chat_jid=CUSTOMER)
    note = voice_note_envelope(b"OggS-fake-audio", chat_jid=CUSTOMER)
    answer = sent_message_envelope(f"🎙️ Transcrição: {SECRET_TEXT}", chat_jid=CUSTOMER, quoted_id=note["data"]["key"]["id"])
    typed = text_envelope("aqui é a Ana, do atendimento", chat_jid=CUSTOMER, from_me=True)
    assert post(receiver, question).status_code == 200
    assert post(receiver, note).status_code == 202
    assert post(receiver, answer, "/webhooks/evolution/send-message").status_code == 200
    assert post(receiver, typed).status_code == 200
    assert post(receiver, question).status_code == 200  # Evolution delivers again: still one row

    recorded = [(row.direction, row.kind, row.reply_to, row.chat) for row in rows(store_url, expected=4)]
    chat = chat_key(CUSTOMER, KEY)
    assert recorded == [
        ("customer", "text", None, chat),
        ("customer", "audio", None, chat),
        ("bot", "text", note["data"]["key"]["id"], chat),
        ("agent", "text", None, chat),
    ]
    stored = json.dumps([{column: str(getattr(row, column)) for column in row.__table__.columns.keys()} for row in rows(store_url)])
    assert "5511987654321" not in stored and "cpf" not in stored and "Ana" not in stored


def test_with_recording_off_nothing_is_recorded_and_voice_notes_still_are(store_url, tmp_path):
    config = WebhookConfig(token=TOKEN, spool_dir=tmp_path / "spool")
    with serve_app(create_app(store_url, config)) as url:
        assert post(url, text_envelope("oi")).status_code == 200
        assert post(url, voice_note_envelope(b"OggS-fake-audio")).status_code == 202
    assert rows(store_url) == []


def test_a_send_message_the_receiver_cannot_read_is_ignored_not_refused(receiver, store_url):
    odd = sent_message_envelope("oi")
    odd["data"] = {"unexpected": True}
    answer = post(receiver, odd)
    assert answer.status_code == 200 and answer.json()["status"] == "ignored"
    assert rows(store_url) == []


def test_the_conversation_key_is_generated_once_for_this_user_only_and_kept(tmp_path):
    from deployments.tokens import CONVERSATION_KEY_FILE, conversation_key

    first = conversation_key(tmp_path)
    assert conversation_key(tmp_path) == first and len(first) == 32
    assert (tmp_path / CONVERSATION_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [CONVERSATION_KEY_FILE]  # no partial file left


def test_a_text_is_answered_at_once_and_recorded_even_when_the_store_was_away_meanwhile(receiver, store_url):
    first, second = text_envelope("oi", chat_jid=CUSTOMER), text_envelope("alguém aí?", chat_jid=CUSTOMER)
    with open_session(store_url) as session:
        session.execute(text("ALTER TABLE conversation_messages RENAME TO conversation_messages_away"))
    assert post(receiver, first).status_code == 200  # answered before the write, which fails: kept, tried again
    deadline = time.monotonic() + 10
    while (answer := post(receiver, second)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)  # until the writer has seen the store fail
    assert answer.status_code == 503 and "retry later" in answer.json()["reason"]  # Evolution delivers it again
    with open_session(store_url) as session:
        session.execute(text("ALTER TABLE conversation_messages_away RENAME TO conversation_messages"))
    assert post(receiver, second).status_code == 200  # the redelivery
    ids = {row.message_id for row in rows(store_url, expected=2)}
    assert ids == {first["data"]["key"]["id"], second["data"]["key"]["id"]}  # the acknowledged one was not lost
