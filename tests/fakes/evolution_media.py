"""The fake Evolution's `getBase64FromMediaMessage`, step by step as whatsapp.baileys.service.ts runs it.

1. The message content from the body, or the stored message by `key.id` (else 400 "Message not found").
2. Unwrap `ephemeralMessage`, `documentWithCaptionMessage`, `viewOnceMessage`, `viewOnceMessageV2`
   in that order (`MessageSubtype` in wa.types.ts) — nothing else, `viewOnceMessageV2Extension`
   included.
3. Find a media type at the top (`TypeMediaMessage`), else 400 "The message is not of the media type".
4. Download; when that throws, 2.3.1+ waits 5 s and tries `downloadContentFromMessage` once more
   before answering 400 with the error (2.2.x and 2.3.0 answer at once).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response

MEDIA_TYPES = ("imageMessage", "documentMessage", "audioMessage", "videoMessage", "stickerMessage", "ptvMessage")
UNWRAPPED_SUBTYPES = ("ephemeralMessage", "documentWithCaptionMessage", "viewOnceMessage", "viewOnceMessageV2")
BAD_DECRYPT = "Error: error:1C800064:Provider routines::bad decrypt"
EMPTY_MEDIA_KEY = "Error: Cannot derive from empty media key"
FALLBACK_SINCE = (2, 3, 1)  # the first tag with the 5 s wait and the second download


@dataclass
class MediaStore:
    """Decrypted media the fake can serve, and how the downloads behave.

    `contents` maps a message id to (bytes, mimetype); `media_keys` optionally pins the mediaKey a
    request must carry (a wrong one is a bad decrypt); ids in `fallback_only` fail the first
    download and succeed on the fallback; `retry_wait_seconds` is the real 5 s wait, shrunk by
    tests that do not measure it; `delay_seconds` is how long any download takes.
    """

    contents: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_keys: dict[str, bytes] = field(default_factory=dict)
    fallback_only: set[str] = field(default_factory=set)
    retry_wait_seconds: float = 5.0
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    async def answer(self, body: dict[str, Any], stored_ids: set[str], version: str, error_response, json_response) -> Response:
        """Answer one getBase64FromMediaMessage body the way `version` of Evolution does."""
        self.requests.append(body)
        message = body.get("message") if isinstance(body.get("message"), dict) else {}
        key = message.get("key") if isinstance(message.get("key"), dict) else {}
        message_id = key.get("id")
        content = message.get("message")
        if not content:
            if message_id not in stored_ids:
                return error_response(400, ["Message not found"])
            content = {"audioMessage": {"mimetype": "audio/ogg; codecs=opus", "mediaKey": "stored"}}
        content = unwrap(content)
        if "messageContextInfo" in content and len(content) == 1:
            return error_response(400, ["The message is messageContextInfo"])
        media_type = next((name for name in MEDIA_TYPES if content.get(name)), None)
        if media_type is None:
            return error_response(400, ["The message is not of the media type"])
        media = content[media_type] if isinstance(content[media_type], dict) else {}
        if self.delay_seconds > 0:
            await asyncio.sleep(self.delay_seconds)
        failure = self.download_failure(message_id, media)
        if failure is not None or message_id in self.fallback_only:
            if _version(version) < FALLBACK_SINCE:
                return error_response(400, [failure or BAD_DECRYPT])
            await asyncio.sleep(self.retry_wait_seconds)  # "Download Media failed, trying to retry in 5 seconds..."
            if failure is not None:
                return error_response(400, [failure])
        data, mimetype = self.contents[message_id]
        size = media.get("fileLength", len(data))
        return json_response(
            {
                "mediaType": media_type,
                "fileName": f"{message_id}.oga",
                "size": {"fileLength": size},
                "mimetype": media.get("mimetype") or mimetype,
                "base64": base64.b64encode(data).decode(),
                "buffer": None,
            },
            status_code=201,
        )

    def download_failure(self, message_id: str | None, media: dict[str, Any]) -> str | None:
        """Why Baileys's download throws for this media, or None when it decrypts."""
        if not media.get("mediaKey"):
            return EMPTY_MEDIA_KEY
        if message_id not in self.contents:
            return BAD_DECRYPT
        expected = self.media_keys.get(message_id)
        if expected is not None and media_key_bytes(media["mediaKey"]) != expected:
            return BAD_DECRYPT
        return None


def unwrap(content: dict[str, Any]) -> dict[str, Any]:
    """Evolution's loop over `MessageSubtype`: each wrapper present at that point is replaced by its message."""
    for subtype in UNWRAPPED_SUBTYPES:
        inner = content.get(subtype)
        if isinstance(inner, dict):
            content = inner.get("message") if isinstance(inner.get("message"), dict) else {}
    return content


def media_key_bytes(value: Any) -> bytes | None:
    """A mediaKey as Evolution takes it back: a base64 string (protobufjs) or a `{"0": …}` object (`Uint8Array.from`)."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
    if isinstance(value, dict):
        return bytes(int(byte) & 0xFF for byte in value.values())
    return None


def _version(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])
