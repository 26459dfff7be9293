"""Parsing Evolution's webhook: both serialisations of binary fields, groups and @lid, and what is ignored or refused."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.evolution_webhook import Ignored, IncomingVoiceNote, WebhookPayloadError, canonical, parse_webhook, to_integer
from tests.fakes.evolution_webhook import text_envelope, voice_note_envelope

AUDIO = b"OggS\x00\x02fake-opus-bytes"


def parse(envelope: dict, path_event: str | None = None):
    return parse_webhook(json.dumps(envelope).encode(), path_event)


@pytest.mark.parametrize("variant", ["2.3.2", "2.3.5", "2.3.6"])
def test_a_voice_note_parses_the_same_from_both_serialisations(variant):
    envelope = voice_note_envelope(AUDIO, message_id="3A7F2C9D41B8E05A6C13", seconds=6, variant=variant, timestamp=1761230113)
    note = parse(envelope)
    assert isinstance(note, IncomingVoiceNote)
    assert (note.instance, note.message_id, note.chat_jid, note.sender_jid) == (
        "ops-bot",
        "3A7F2C9D41B8E05A6C13",
        "5511987654321@s.whatsapp.net",
        None,
    )
    assert (note.audio, note.audio_problem, note.seconds, note.mimetype) == (AUDIO, None, 6.0, "audio/ogg; codecs=opus")
    assert note.sent_at.isoformat() == "2025-10-23T14:35:13+00:00"  # messageTimestamp, not date_time's local time with a false Z
    quoted_audio = note.quoted["message"]["audioMessage"]
    original = envelope["data"]["message"]["audioMessage"]
    # 2.3.3+'s {"0": …} bytes and 2.3.6's {"low", "high"} longs come back as ≤ 2.3.2's base64 and digit strings.
    expected_key = original["mediaKey"] if variant == "2.3.2" else base64.b64encode(bytes(original["mediaKey"].values())).decode()
    assert quoted_audio["mediaKey"] == expected_key
    assert quoted_audio["fileLength"] == (len(AUDIO) if variant == "2.3.5" else str(len(AUDIO)))  # 2.3.3–2.3.5 send plain numbers
    assert "base64" not in note.quoted["message"]
    assert note.quoted["key"] == {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": False, "id": "3A7F2C9D41B8E05A6C13"}


def test_a_long_timestamp_and_digit_strings_are_integers():
    assert to_integer({"low": 1761230113, "high": 0, "unsigned": True}) == 1761230113
    assert to_integer({"low": -1, "high": 0, "unsigned": True}) == 4294967295
    assert to_integer("1761230431") == 1761230431
    with pytest.raises(ValueError, match="expected a number"):
        to_integer({"value": 3})
    assert canonical({"a": {"0": 1, "1": 255}, "b": [{"low": 5, "high": 1}], "c": {}}) == {"a": "Af8=", "b": ["4294967301"], "c": {}}


def test_a_group_note_in_lid_addressing_replies_to_the_group_and_names_the_author_by_phone():
    envelope = voice_note_envelope(
        AUDIO, chat_jid="120363041234567890@g.us", participant="204711332195863@lid", participant_alt="5531977776666@s.whatsapp.net"
    )
    note = parse(envelope)
    assert (note.chat_jid, note.sender_jid) == ("120363041234567890@g.us", "5531977776666@s.whatsapp.net")
    assert note.quoted["key"]["participant"] == "204711332195863@lid"


def test_a_lid_chat_replies_to_its_phone_jid_when_evolution_sends_it_aside():
    with_alt = parse(voice_note_envelope(AUDIO, chat_jid="204711332195863@lid", remote_jid_alt="5521998877665@s.whatsapp.net"))
    without = parse(voice_note_envelope(AUDIO, chat_jid="204711332195863@lid"))
    assert (with_alt.chat_jid, without.chat_jid) == ("5521998877665@s.whatsapp.net", "204711332195863@lid")


def test_audio_inside_an_ephemeral_wrapper_is_found_and_kept_to_fetch():
    note = parse(voice_note_envelope(AUDIO, wrapper="ephemeralMessage", seconds=4))  # Evolution inlines no base64 in a wrapper
    assert (note.audio, note.seconds) == (None, 4.0)
    assert "ephemeralMessage" in note.quoted["message"]


@pytest.mark.parametrize(
    "envelope, reason",
    [
        (voice_note_envelope(AUDIO, from_me=True), "fromMe: sent from this WhatsApp number"),
        (voice_note_envelope(AUDIO, chat_jid="status@broadcast"), "status broadcast"),
        (text_envelope("Pode transcrever o áudio de ontem?"), "not audio (conversation)"),
        ({**text_envelope("x"), "event": "connection.update", "data": {"state": "open"}}, "event connection.update is not messages.upsert"),
    ],
)
def test_what_is_not_someone_elses_voice_note_is_ignored_with_the_reason(envelope, reason):
    assert parse(envelope) == Ignored(reason)


def test_without_inline_base64_the_note_is_kept_to_fetch_its_audio_later():
    note = parse(voice_note_envelope(None, variant="2.3.2"))
    assert note.audio is None
    assert note.audio_problem.startswith("no data.message.base64")
    broken = voice_note_envelope(AUDIO)
    broken["data"]["message"]["base64"] = "not base64 at all!"
    assert parse(broken).audio_problem == "data.message.base64 is not valid base64"


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (json.dumps({"event": "messages.upsert", "data": {}}).encode(), "instance: field required"),
        (
            json.dumps({"event": "messages.upsert", "instance": "ops-bot", "data": {"key": {"remoteJid": "x"}}}).encode(),
            "data.key.id: field required",
        ),
        (json.dumps({"event": "messages.upsert", "instance": "ops-bot", "data": [1]}).encode(), "data: must be an object"),
    ],
)
def test_a_malformed_body_is_refused_naming_the_problem(body, message):
    with pytest.raises(WebhookPayloadError, match=message):
        parse_webhook(body)


def test_the_by_events_path_must_agree_with_the_body():
    envelope = voice_note_envelope(AUDIO)
    assert isinstance(parse(envelope, "messages-upsert"), IncomingVoiceNote)
    with pytest.raises(WebhookPayloadError, match="the path says event 'send-message'"):
        parse(envelope, "send-message")


def index_keyed(values: list) -> dict:
    return {str(index): value for index, value in enumerate(values)}


BYTE_LIKE = st.lists(st.one_of(st.integers(-2, 258), st.booleans(), st.just("7")), max_size=40).map(index_keyed)
OTHER_OBJECTS = st.dictionaries(st.sampled_from(["0", "1", "2", "01", "x"]), st.one_of(st.integers(0, 255), st.booleans()), max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.one_of(BYTE_LIKE, OTHER_OBJECTS))
def test_only_an_index_keyed_object_of_integers_0_to_255_is_read_as_bytes(value):
    keys_in_order = list(value) == [str(index) for index in range(len(value))]
    bytes_only = all(type(item) is int and 0 <= item <= 255 for item in value.values())
    expected = base64.b64encode(bytes(value.values())).decode() if value and keys_in_order and bytes_only else None
    found = canonical({"field": value})["field"]
    assert found == expected if expected is not None else found == {name: item for name, item in value.items()}
