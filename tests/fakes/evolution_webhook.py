"""The Evolution side of the webhook: envelopes as each Evolution generation serialises them, and a sender with the real retry rules.

Serialisation (prepareMessage in whatsapp.baileys.service.ts): ≤ 2.3.2 lets protobufjs's `toJSON`
write bytes as base64 strings and 64-bit numbers as digit strings; 2.3.3–2.3.5 (`convertLongToNumber`)
write bytes as `{"0": 12, …}` objects and Longs as plain numbers; ≥ 2.3.6 (`deserializeMessageBuffers`)
write bytes as `{"0": 12, …}` objects and Longs as `{"low", "high", "unsigned"}` objects.
Inline audio (`message.base64`) is only ever added for a top-level `audioMessage` (`isMedia`): a
note inside an ephemeral or view-once wrapper always arrives without it.

Retry rules (webhook.controller.ts): 2.3.x makes up to 10 attempts, waiting min(5·2^(n-1), 300) s
±20 % jitter between them, each try timing out after 30 s, and gives up at once on 400, 401, 403,
404 and 422; 2.2.x retries everything every 30 s with no timeout. `scale` shrinks every delay and
timeout so tests run in seconds.
"""

from __future__ import annotations

import base64
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from deployments.tokens import sign_jwt

NON_RETRYABLE = (400, 401, 403, 404, 422)


@dataclass(frozen=True)
class RetryRules:
    """How an Evolution version retries a webhook delivery."""

    max_attempts: int = 10
    initial_delay_seconds: float = 5.0
    max_delay_seconds: float = 300.0
    exponential: bool = True
    jitter: float = 0.2
    timeout_seconds: float | None = 30.0
    non_retryable: tuple[int, ...] = NON_RETRYABLE

    @classmethod
    def v2_3(cls) -> RetryRules:
        """Evolution 2.3.x: exponential backoff with jitter, a 30 s timeout, no retry on 400/401/403/404/422."""
        return cls()

    @classmethod
    def v2_2(cls) -> RetryRules:
        """Evolution 2.2.1–2.2.3: every 30 s, every error retried (4xx too), no request timeout."""
        return cls(
            initial_delay_seconds=30.0, max_delay_seconds=30.0, exponential=False, jitter=0.0, timeout_seconds=None, non_retryable=()
        )

    def scaled(self, factor: float) -> RetryRules:
        """The same rules on a faster clock."""
        timeout = None if self.timeout_seconds is None else self.timeout_seconds * factor
        return replace(
            self,
            initial_delay_seconds=self.initial_delay_seconds * factor,
            max_delay_seconds=self.max_delay_seconds * factor,
            timeout_seconds=timeout,
        )

    def delay_before(self, attempt: int, rng: random.Random) -> float:
        """The wait before attempt `attempt` (2, 3, …)."""
        base = self.initial_delay_seconds * (2 ** (attempt - 2) if self.exponential else 1)
        base = min(base, self.max_delay_seconds)
        spread = base * self.jitter
        return max(base + rng.uniform(-spread, spread), self.initial_delay_seconds if self.exponential else 0.0)


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of a webhook: its status (None on a timeout or refused connection) and how long it took."""

    attempt: int
    status: int | None
    error: str | None
    seconds: float
    body: dict[str, Any] | None


@dataclass
class WebhookSender:
    """Posts envelopes to a webhook URL like Evolution: static headers, an HS256 JWT from `jwt_key`, retries."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    jwt_key: str | None = None
    rules: RetryRules = field(default_factory=RetryRules.v2_3)
    by_events: bool = False
    seed: int = 7
    literal_jwt_key: bool = False  # Evolution 2.2.x sends its `headers` verbatim: `jwt_key: <key>`, no JWT

    def deliver(self, envelope: dict[str, Any]) -> list[DeliveryAttempt]:
        """Deliver one envelope until it succeeds (2xx), hits a non-retryable status, or runs out of attempts."""
        rng = random.Random(self.seed)
        url = f"{self.url}/{envelope['event'].replace('.', '-')}" if self.by_events else self.url
        attempts: list[DeliveryAttempt] = []
        for attempt in range(1, self.rules.max_attempts + 1):
            if attempt > 1:
                time.sleep(self.rules.delay_before(attempt, rng))
            outcome = self._post(url, envelope, attempt)
            attempts.append(outcome)
            if outcome.status is not None and (200 <= outcome.status < 300 or outcome.status in self.rules.non_retryable):
                break
        return attempts

    def deliver_twice(self, envelope: dict[str, Any]) -> list[DeliveryAttempt]:
        """Deliver the same message twice (the duplicate deliveries Evolution and WhatsApp produce)."""
        return self.deliver(envelope) + self.deliver(envelope)

    def _post(self, url: str, envelope: dict[str, Any], attempt: int) -> DeliveryAttempt:
        headers = {"Content-Type": "application/json", "User-Agent": "axios/1.7.9", **self.headers}
        if self.jwt_key and self.literal_jwt_key:
            headers["jwt_key"] = self.jwt_key
        elif self.jwt_key:
            now = int(time.time())
            headers["Authorization"] = "Bearer " + sign_jwt(
                {"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"}, self.jwt_key
            )
        started = time.perf_counter()
        try:
            response = httpx.post(url, json=envelope, headers=headers, timeout=self.rules.timeout_seconds)
        except httpx.HTTPError as error:
            return DeliveryAttempt(attempt, None, type(error).__name__, time.perf_counter() - started, None)
        try:
            body = response.json()
        except ValueError:
            body = None
        return DeliveryAttempt(attempt, response.status_code, None, time.perf_counter() - started, body)


def voice_note_envelope(
    audio: bytes | None,
    *,
    instance: str = "ops-bot",
    message_id: str | None = None,
    chat_jid: str = "5511987654321@s.whatsapp.net",
    seconds: int = 3,
    variant: str = "2.3.6",
    from_me: bool = False,
    participant: str | None = None,
    participant_alt: str | None = None,
    remote_jid_alt: str | None = None,
    mimetype: str = "audio/ogg; codecs=opus",
    timestamp: int | None = None,
    wrapper: str | None = None,
    media_keys: bool = True,
) -> dict[str, Any]:
    """A `messages.upsert` envelope for a voice note, serialised as Evolution `variant` (a version such as "2.3.2") does.

    `audio` is inlined as `message.base64` only when the note is not wrapped, as Evolution does;
    `media_keys=False` leaves out what a download needs (url, directPath, mediaKey), as WhatsApp
    does for view-once media on a linked device.
    """
    generation = payload_generation(variant)
    size = len(audio) if audio is not None else 9417
    audio_message = {
        "url": "https://mmg.whatsapp.net/v/t62.7117-24/31925718_n.enc?ccb=11-4&mms3=true",
        "mimetype": mimetype,
        "fileSha256": _binary(secrets.token_bytes(32), generation),
        "fileLength": _long(size, generation),
        "seconds": seconds,
        "ptt": True,
        "mediaKey": _binary(secrets.token_bytes(32), generation),
        "fileEncSha256": _binary(secrets.token_bytes(32), generation),
        "directPath": "/v/t62.7117-24/31925718_n.enc?ccb=11-4",
        "mediaKeyTimestamp": _long(int(time.time()), generation),
        "waveform": _binary(secrets.token_bytes(64), generation),
    }
    if not media_keys:
        for name in ("url", "directPath", "mediaKey", "fileEncSha256"):
            del audio_message[name]
    content: dict[str, Any] = {"audioMessage": audio_message}
    if wrapper:
        content = {wrapper: {"message": content}}
    content["messageContextInfo"] = {"deviceListMetadataVersion": 2, "messageSecret": _binary(secrets.token_bytes(32), generation)}
    if audio is not None and not wrapper:
        content["base64"] = base64.b64encode(audio).decode()
    key: dict[str, Any] = {"remoteJid": chat_jid, "fromMe": from_me, "id": message_id or new_incoming_id()}
    if participant:
        key["participant"] = participant
    if participant_alt:
        key.update(participantAlt=participant_alt, addressingMode="lid")
    if remote_jid_alt:
        key.update(remoteJidAlt=remote_jid_alt, addressingMode="lid")
    return _envelope(
        instance,
        {
            "key": key,
            "pushName": "Marina Souza",
            "status": "DELIVERY_ACK",
            "message": content,
            "messageType": wrapper or "audioMessage",
            "messageTimestamp": timestamp or int(time.time()),
            "instanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, instance)),
            "source": "ios",
        },
    )


def payload_generation(version: str) -> str:
    """Which serialisation an Evolution version uses: "strings" (≤ 2.3.2), "numbers" (2.3.3–2.3.5) or "longs" (≥ 2.3.6)."""
    parts = tuple(int(part) for part in version.split(".")[:3])
    if parts <= (2, 3, 2):
        return "strings"
    return "numbers" if parts <= (2, 3, 5) else "longs"


def media_key_of(envelope: dict[str, Any]) -> bytes:
    """The raw `mediaKey` bytes of an envelope's voice note, whichever generation wrote it and whatever wraps it."""
    message = envelope["data"]["message"]
    while "audioMessage" not in message:
        message = next(value["message"] for value in message.values() if isinstance(value, dict) and "message" in value)
    media_key = message["audioMessage"]["mediaKey"]
    return base64.b64decode(media_key) if isinstance(media_key, str) else bytes(media_key[str(i)] for i in range(len(media_key)))


def text_envelope(
    text: str, *, instance: str = "ops-bot", chat_jid: str = "5511987654321@s.whatsapp.net", from_me: bool = False
) -> dict[str, Any]:
    """A `messages.upsert` envelope for a text message."""
    return _envelope(
        instance,
        {
            "key": {"remoteJid": chat_jid, "fromMe": from_me, "id": new_incoming_id()},
            "pushName": "Marina Souza",
            "status": "DELIVERY_ACK",
            "message": {"conversation": text},
            "messageType": "conversation",
            "messageTimestamp": int(time.time()),
            "instanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, instance)),
            "source": "web",
        },
    )


def sent_message_envelope(
    text: str, *, instance: str = "ops-bot", chat_jid: str = "5511987654321@s.whatsapp.net", quoted_id: str | None = None
) -> dict[str, Any]:
    """A `send.message` envelope: what Evolution posts after `sendText` (it never posts an upsert for it).

    `data` is the sent message as `sendText` returns it; quoting a message makes it an extendedTextMessage
    whose contextInfo names the quoted id (stanzaId).
    """
    if quoted_id:
        message: dict[str, Any] = {
            "extendedTextMessage": {
                "text": text,
                "contextInfo": {"stanzaId": quoted_id, "participant": chat_jid, "quotedMessage": {"conversation": ""}},
            }
        }
        kind = "extendedTextMessage"
    else:
        message, kind = {"conversation": text}, "conversation"
    envelope = _envelope(
        instance,
        {
            "key": {"remoteJid": chat_jid, "fromMe": True, "id": "3EB0" + secrets.token_hex(8).upper()},
            "pushName": "",
            "status": "PENDING",
            "message": message,
            "messageType": kind,
            "messageTimestamp": int(time.time()),
            "instanceId": str(uuid.uuid5(uuid.NAMESPACE_URL, instance)),
            "source": "unknown",
        },
    )
    envelope["event"] = "send.message"
    return envelope


def new_incoming_id() -> str:
    """An incoming WhatsApp message id: 20 upper-case hex digits."""
    return secrets.token_hex(10).upper()


def _envelope(instance: str, data: dict[str, Any]) -> dict[str, Any]:
    # date_time is the container's local time with a false Z, as Evolution sends it.
    local = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.localtime(time.time() - 3 * 3600))
    return {
        "event": "messages.upsert",
        "instance": instance,
        "data": data,
        "destination": "http://vigia:8787/webhooks/evolution",
        "date_time": local,
        "sender": "5511912345678@s.whatsapp.net",
        "server_url": "http://evolution-api:8080",
        "apikey": "B3E1F7A2-9C4D-4E6B-8F10-2A7D5C9E1B33",
    }


def _binary(data: bytes, generation: str) -> Any:
    return base64.b64encode(data).decode() if generation == "strings" else {str(index): byte for index, byte in enumerate(data)}


def _long(value: int, generation: str) -> Any:
    if generation == "strings":
        return str(value)
    return value if generation == "numbers" else {"low": value & 0xFFFFFFFF, "high": value >> 32, "unsigned": True}
