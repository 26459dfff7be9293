"""What Evolution API posts to the webhook: the envelope, `messages.upsert`, and both serialisations of binary fields.

Evolution ≤ 2.3.2 sends `mediaKey`, `fileSha256`, `waveform` as base64 strings and `fileLength`,
`mediaKeyTimestamp` as digit strings; 2.3.3–2.3.5 send byte objects `{"0": 12, "1": 34, …}` and
plain numbers; ≥ 2.3.6 sends byte objects and `{"low": …, "high": …, "unsigned": …}` Longs. All are
accepted and turned into the oldest form,
which every Evolution version takes back (protobufjs reads base64 strings as bytes).

Whatever the body, parsing ends in a note, an `Ignored`, or a `WebhookPayloadError` (a 400): what
is stored must fit its column and hold no control characters, and a detail that is not usable
(`seconds`, `mimetype`, a Long that holds no integers) is dropped rather than failing the note.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from clients.errors import ClientError

UPSERT_EVENT = "messages.upsert"
SEND_EVENT = "send.message"  # what Evolution posts after a message is sent through its API (the bot's replies)
# WhatsApp message types as Evolution names them (data.messageType, or the content's key), by the kind we count.
MESSAGE_KINDS = {
    "conversation": "text",
    "extendedTextMessage": "text",
    "audioMessage": "audio",
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "documentMessage": "document",
    "documentWithCaptionMessage": "document",
    "stickerMessage": "sticker",
    "reactionMessage": "reaction",
    "locationMessage": "location",
    "liveLocationMessage": "location",
    "contactMessage": "contact",
    "contactsArrayMessage": "contact",
    "pollCreationMessage": "poll",
    "pollCreationMessageV3": "poll",
    "buttonsResponseMessage": "text",
    "listResponseMessage": "text",
    "templateButtonReplyMessage": "text",
}
STATUS_BROADCAST = "status@broadcast"
# Wrappers Evolution does not unwrap in the webhook; getBase64FromMediaMessage unwraps all but viewOnceMessageV2Extension.
WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
# Real payloads nest about 12 deep; the limit keeps json.dumps, canonical() and find_audio off Python's recursion limit.
MAX_DEPTH = 64
MAX_JID_CHARS = 128  # the store's chat_jid and sender_jid columns
MAX_MIMETYPE_CHARS = 100  # the store's mimetype column
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime holds
MAX_SECONDS = 24 * 3600.0  # a voice note's `seconds` beyond a day is not a duration
UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # control characters, and lone surrogates no UTF-8 can hold
# An instance is a path segment of every Evolution call we make: `..` or a slash would change the route.
INSTANCE_NAME = re.compile(r"(?!\.{1,2}$)[\w.@ -]{1,100}")


class WebhookPayloadError(ClientError):
    """The body is not a webhook Evolution could have sent; the message says what is wrong."""


class MessageKey(BaseModel):
    """`data.key`: the chat, the author in groups, and the message id."""

    model_config = ConfigDict(extra="allow")

    remoteJid: str = Field(min_length=1, max_length=MAX_JID_CHARS)
    fromMe: bool = False
    id: str = Field(min_length=1, max_length=128)
    participant: str | None = Field(default=None, max_length=MAX_JID_CHARS)
    remoteJidAlt: str | None = Field(default=None, max_length=MAX_JID_CHARS)
    participantAlt: str | None = Field(default=None, max_length=MAX_JID_CHARS)

    @field_validator("remoteJid", "id", "participant", "remoteJidAlt", "participantAlt")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and UNSTORABLE.search(value):
            raise PydanticCustomError("unstorable", "must not hold control characters")
        return value


class UpsertData(BaseModel):
    """`data` of a `messages.upsert` event."""

    model_config = ConfigDict(extra="allow")

    key: MessageKey
    pushName: str | None = None
    message: dict[str, Any] | None = None
    messageType: str | None = None
    messageTimestamp: int | None = None

    @field_validator("messageTimestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> int | None:
        if value is None:
            return None
        seconds = to_integer(value)
        if not 0 <= seconds <= MAX_TIMESTAMP:
            raise PydanticCustomError("range", "out of range: not a Unix time in seconds before year 10000")
        return seconds


class Envelope(BaseModel):
    """Every Evolution webhook: `{event, instance, data, …}`; `date_time` is local time with a false `Z`, so unused."""

    model_config = ConfigDict(extra="allow")

    event: str = Field(min_length=1)
    instance: str = Field(min_length=1, max_length=100)
    data: Any = None

    @field_validator("instance")
    @classmethod
    def _path_segment(cls, value: str) -> str:
        if not INSTANCE_NAME.fullmatch(value) or value != value.strip():
            raise PydanticCustomError("instance", "must be a name of letters, digits, spaces and . _ @ - (not . or ..)")
        return value


@dataclass(frozen=True)
class Ignored:
    """A valid webhook with nothing to transcribe, and why."""

    reason: str


@dataclass(frozen=True)
class IncomingVoiceNote:
    """An audio message to transcribe, as the receiver stores it."""

    instance: str
    message_id: str
    chat_jid: str  # where the reply goes
    sender_jid: str | None  # the author in a group
    sent_at: datetime | None  # from data.messageTimestamp (UTC)
    mimetype: str | None
    seconds: float | None
    audio: bytes | None  # data.message.base64, decoded; None when absent or unusable
    audio_problem: str | None  # why inline audio was not usable
    quoted: dict[str, Any]  # {key, message} without the base64, for quoting and the media fallback


@dataclass(frozen=True)
class ChatMessage:
    """A message of a chat, without its content: what conversation analytics records (store/conversations.py)."""

    instance: str
    message_id: str
    chat_jid: str  # hashed before it is stored
    direction: str  # customer, bot (sent through the API: send.message), agent (typed on the bot's phone: fromMe upsert)
    kind: str  # text, audio, image, …, other
    sent_at: datetime | None
    reply_to: str | None  # the id of the message it quotes


class ParsedWebhook(NamedTuple):
    """What one webhook holds: a voice note to store or why not, and the chat message it is, if any."""

    outcome: IncomingVoiceNote | Ignored
    message: ChatMessage | None


def parse_webhook(body: bytes, path_event: str | None = None) -> IncomingVoiceNote | Ignored:
    """Parse one webhook body into a voice note to store, or the reason it is ignored.

    Raises:
        WebhookPayloadError: when the body is not JSON or lacks what every upsert carries.
    """
    return parse_event(body, path_event).outcome


def parse_event(body: bytes, path_event: str | None = None) -> ParsedWebhook:
    """Parse one webhook body: the voice note (or why none) and the chat message's metadata (upsert and send.message).

    Raises:
        WebhookPayloadError: when the body is not JSON or lacks what every upsert carries.
    """
    envelope = _validate(Envelope, read_document(body), "")
    event = normalize_event(envelope.event)
    if path_event and normalize_event(path_event) != event:
        raise WebhookPayloadError(f"the path says event {path_event!r} but the body says {envelope.event!r}")
    if event == SEND_EVENT:
        return ParsedWebhook(Ignored(f"event {envelope.event} is not messages.upsert"), _sent_message(envelope))
    if event != UPSERT_EVENT:
        return ParsedWebhook(Ignored(f"event {envelope.event} is not messages.upsert"), None)
    if not isinstance(envelope.data, dict):
        raise WebhookPayloadError("data: must be an object for messages.upsert")
    data = _validate(UpsertData, envelope.data, "data.")
    key = data.key
    if key.remoteJid == STATUS_BROADCAST:
        return ParsedWebhook(Ignored("status broadcast"), None)
    message = chat_message(envelope.instance, data, "agent" if key.fromMe else "customer")
    if key.fromMe:
        return ParsedWebhook(Ignored("fromMe: sent from this WhatsApp number"), message)
    content = data.message or {}
    audio_message = find_audio(content)
    if audio_message is None:
        return ParsedWebhook(Ignored(f"not audio ({data.messageType or 'no messageType'})"), message)
    audio, problem = _inline_audio(content.get("base64"))
    quoted = {name: value for name, value in content.items() if name not in ("base64", "mediaUrl")}
    note = IncomingVoiceNote(
        instance=envelope.instance,
        message_id=key.id,
        chat_jid=_reply_jid(key),
        sender_jid=_sender_jid(key),
        sent_at=_sent_at(data),
        mimetype=_mimetype(audio_message.get("mimetype")),
        seconds=_seconds(audio_message.get("seconds")),
        audio=audio,
        audio_problem=problem,
        quoted={"key": key.model_dump(exclude_none=True), "message": canonical(quoted)},
    )
    return ParsedWebhook(note, message)


def chat_message(instance: str, data: UpsertData, direction: str) -> ChatMessage:
    """The metadata of one message: its chat, who spoke, its kind (from messageType, else its content), what it quotes."""
    content = data.message or {}
    inner = innermost_message(content, lambda candidate: any(name in MESSAGE_KINDS for name in candidate)) or {}
    kind = MESSAGE_KINDS.get(data.messageType or "") or next((MESSAGE_KINDS[name] for name in inner if name in MESSAGE_KINDS), "other")
    return ChatMessage(
        instance=instance,
        message_id=data.key.id,
        chat_jid=_reply_jid(data.key),
        direction=direction,
        kind=kind,
        sent_at=_sent_at(data),
        reply_to=_quoted_id(inner),
    )


def _sent_message(envelope: Envelope) -> ChatMessage | None:
    # send.message: the message the bot sent through Evolution's API, shaped like an upsert's data.
    if not isinstance(envelope.data, dict):
        return None
    try:
        data = UpsertData.model_validate(envelope.data)
    except ValidationError:
        return None  # nothing to record; the event was never a voice note either
    if data.key.remoteJid == STATUS_BROADCAST:
        return None
    return chat_message(envelope.instance, data, "bot")


def _sent_at(data: UpsertData) -> datetime | None:
    return datetime.fromtimestamp(data.messageTimestamp, tz=timezone.utc) if data.messageTimestamp else None


def _quoted_id(inner: dict[str, Any]) -> str | None:
    for value in inner.values():
        if isinstance(value, dict) and isinstance(context := value.get("contextInfo"), dict):
            stanza = context.get("stanzaId")
            if isinstance(stanza, str) and 0 < len(stanza) <= 128 and not UNSTORABLE.search(stanza):
                return stanza
    return None


def read_document(body: bytes) -> dict[str, Any]:
    """Decode a body into a JSON object no deeper than MAX_DEPTH.

    Raises:
        WebhookPayloadError: when it is not JSON, not an object, or nests too deep.
    """
    try:
        document = json.loads(body)
    except RecursionError as error:
        raise WebhookPayloadError(f"body nests deeper than {MAX_DEPTH} levels") from error
    except ValueError as error:  # UnicodeDecodeError included
        raise WebhookPayloadError(f"body is not JSON: {error}") from error
    if not isinstance(document, dict):
        raise WebhookPayloadError("body is not a JSON object")
    if _nests_deeper_than(document, MAX_DEPTH):
        raise WebhookPayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    return document


def normalize_event(name: str) -> str:
    """`MESSAGES_UPSERT`, `messages-upsert` (byEvents path) and `messages.upsert` are one event."""
    return name.strip().lower().replace("_", ".").replace("-", ".")


def find_audio(message: dict[str, Any]) -> dict[str, Any] | None:
    """Return the `audioMessage` of a message, looking inside ephemeral and view-once wrappers."""
    inner = innermost_message(message, lambda candidate: isinstance(candidate.get("audioMessage"), dict))
    return inner["audioMessage"] if inner is not None else None


def innermost_message(
    message: dict[str, Any],
    holds: Callable[[dict[str, Any]], bool],
    wrappers: tuple[str, ...] = WRAPPERS,
) -> dict[str, Any] | None:
    """Return the first message, `message` itself or one inside its `wrappers`, for which `holds` is true; None if none."""
    if holds(message):
        return message
    for wrapper in wrappers:
        inner = message.get(wrapper)
        if isinstance(inner, dict) and isinstance(inner.get("message"), dict):
            found = innermost_message(inner["message"], holds, wrappers)
            if found is not None:
                return found
    return None


def to_integer(value: Any) -> int:
    """Read a 64-bit integer Evolution sent as a number, a digit string or a protobufjs Long `{low, high}`.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if _is_long(value):
        return (value["high"] << 32) | (value["low"] & 0xFFFFFFFF)
    raise ValueError(f"expected a number, a digit string or {{low, high}}, got {type(value).__name__}")


def canonical(value: Any) -> Any:
    """Return a message with the byte and Long objects of ≥ 2.3.3 turned into ≤ 2.3.2's base64 and digit strings."""
    if isinstance(value, dict):
        if (content := _byte_object_content(value)) is not None:
            return base64.b64encode(content).decode()
        if _is_long(value):
            return str(to_integer(value))
        return {name: canonical(item) for name, item in value.items()}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def _validate(model: type[BaseModel], document: dict[str, Any], prefix: str) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = prefix + ".".join(str(part) for part in first["loc"])
        raise WebhookPayloadError(f"{location}: {first['msg'].lower()}") from error


def _byte_object_content(value: dict[str, Any]) -> bytes | None:
    """The bytes of a Buffer serialised as {"0": 12, "1": 255, …} (keys in order, ints 0–255, no booleans), else None.

    Built-ins do the per-byte work: a voice note carries several such objects (keys, hashes, waveform)
    and the receiver parses every webhook of a burst.
    """
    if not value or "0" not in value or list(value) != list(map(str, range(len(value)))):
        return None
    if set(map(type, value.values())) != {int}:
        return None
    try:
        return bytes(value.values())
    except ValueError:  # an int outside 0–255
        return None


def _is_long(value: Any) -> bool:
    """A protobufjs Long: 32-bit `low` and `high` (signed or not); `{low: null, …}` is just an object."""
    return (
        isinstance(value, dict)
        and {"low", "high"} <= set(value) <= {"low", "high", "unsigned"}
        and all(_is_int32(value[name]) for name in ("low", "high"))
    )


def _is_int32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**32


def _nests_deeper_than(document: Any, limit: int) -> bool:
    # Level by level, so the check itself cannot hit the recursion limit it guards.
    level = [document]
    for _ in range(limit):
        below = []
        for value in level:
            below += [item for item in (value.values() if isinstance(value, dict) else value) if isinstance(item, (dict, list))]
        if not below:
            return False
        level = below
    return True


def _inline_audio(value: Any) -> tuple[bytes | None, str | None]:
    if value is None:
        return None, "no data.message.base64 (webhook base64 off, or Evolution's download failed)"
    if not isinstance(value, str) or not value.strip():
        return None, "data.message.base64 is empty or not a string"
    text = value.partition(",")[2] if value.startswith("data:") else value
    try:
        audio = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None, "data.message.base64 is not valid base64"
    return (audio, None) if audio else (None, "data.message.base64 decodes to nothing")


def _reply_jid(key: MessageKey) -> str:
    # Evolution ≥ 2.3.7 already puts the phone JID in remoteJid for @lid chats; 2.3.x sends it aside.
    if key.remoteJid.endswith("@lid") and key.remoteJidAlt:
        return key.remoteJidAlt
    return key.remoteJid


def _sender_jid(key: MessageKey) -> str | None:
    if key.participant and key.participant.endswith("@lid") and key.participantAlt:
        return key.participantAlt
    return key.participant or None


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value if isinstance(value, float) else to_integer(value))
    except (ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS else None


def _mimetype(value: Any) -> str | None:
    usable = isinstance(value, str) and len(value) <= MAX_MIMETYPE_CHARS and not UNSTORABLE.search(value)
    return value if usable else None
