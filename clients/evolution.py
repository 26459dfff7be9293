"""Evolution API, the WhatsApp gateway: the instance's connection state, media of a message, text replies."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from clients.errors import ClientError
from clients.evolution_webhook import innermost_message
from clients.http import tls_context

USER_AGENT = "vigia/0.1"
MEDIA_TYPES = ("audioMessage", "imageMessage", "documentMessage", "videoMessage", "stickerMessage", "ptvMessage")
# getBase64FromMediaMessage unwraps only these (`MessageSubtype` in wa.types.ts, 2.2–2.3.6) and answers
# 400 "The message is not of the media type" for any other wrapper, e.g. a view-once voice note's.
UNWRAPPED_BY_EVOLUTION = ("ephemeralMessage", "documentWithCaptionMessage", "viewOnceMessage", "viewOnceMessageV2")
WRAPPERS = (*UNWRAPPED_BY_EVOLUTION, "viewOnceMessageV2Extension")
NOT_MEDIA = "The message is not of the media type"


class EvolutionError(ClientError):
    """Evolution API refused or did not answer.

    `status_code` is the HTTP status (None when there was no answer); `ambiguous` is True when a
    request may have been carried out although no answer came back (a read timeout), so it must
    not be repeated blindly.
    """

    def __init__(self, message: str, *, status_code: int | None = None, ambiguous: bool = False):
        super().__init__(message)
        self.status_code = status_code
        self.ambiguous = ambiguous


@dataclass(frozen=True)
class Media:
    """The decrypted media of one message, as getBase64FromMediaMessage returns it."""

    content: bytes
    mimetype: str | None
    file_name: str | None


def create_client(base_url: str, api_key: str, *, timeout: float) -> httpx.AsyncClient:
    """Return an HTTP client for one Evolution API, with its key and a timeout."""
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        headers={"apikey": api_key, "User-Agent": USER_AGENT},
        verify=tls_context(),  # shared: building a CA bundle costs ~25 ms of CPU per client
    )


async def read_connection_state(client: httpx.AsyncClient, instance: str) -> tuple[str | None, float]:
    """Return the instance's `state` (open, close, connecting; None when not loaded) and the latency in ms.

    Raises:
        EvolutionError: on 401 (key), 404 (instance), other statuses, timeouts and refused connections.
    """
    started = time.perf_counter()
    try:
        response = await client.get(f"/instance/connectionState/{quote(instance, safe='')}")
    except httpx.TimeoutException as error:
        raise EvolutionError(f"Evolution API timed out after {client.timeout.read:g} s") from error
    except httpx.HTTPError as error:
        raise EvolutionError(f"cannot reach Evolution API: {error}") from error
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code == 401:
        raise EvolutionError("Evolution API rejected the API key (401)")
    if response.status_code == 404:
        raise EvolutionError(f"Evolution API has no instance {instance!r} (404)")
    if response.status_code != 200:
        raise EvolutionError(f"Evolution API answered {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
    except ValueError as error:
        raise EvolutionError("Evolution API answered 200 with a body that is not JSON") from error
    instance_info = body.get("instance") if isinstance(body, dict) else None
    if not isinstance(instance_info, dict):
        raise EvolutionError("Evolution API answered without an `instance` object")
    return instance_info.get("state"), latency_ms


async def fetch_media(client: httpx.AsyncClient, instance: str, key: dict[str, Any], message: dict[str, Any] | None) -> Media:
    """Download a message's media with `POST /chat/getBase64FromMediaMessage/{instance}` (answers 201).

    Passing the message content along means Evolution needs no stored copy of the message.

    Evolution ≥ 2.3.1 waits 5 s and tries a second download before it answers 400, so a failure takes
    over 5 s: give it a timeout above that.

    Raises:
        EvolutionError: on 400 (e.g. `Message not found`, `bad decrypt`, `The message is not of the media type`),
            401, 404, other statuses, timeouts.
    """
    body: dict[str, Any] = {"message": {"key": key, **({"message": message} if message else {})}, "convertToMp4": False}
    response = await _post(client, f"/chat/getBase64FromMediaMessage/{quote(instance, safe='')}", body, instance)
    payload = _json_object(response)
    encoded = payload.get("base64")
    if not isinstance(encoded, str) or not encoded:
        raise EvolutionError("Evolution API answered getBase64FromMediaMessage without base64", status_code=response.status_code)
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise EvolutionError("Evolution API answered getBase64FromMediaMessage with invalid base64") from error
    mimetype = payload.get("mimetype")
    file_name = payload.get("fileName")
    return Media(content, mimetype if isinstance(mimetype, str) else None, file_name if isinstance(file_name, str) else None)


def media_message(message: dict[str, Any]) -> dict[str, Any] | None:
    """The message that holds the media itself, every wrapper removed, so any Evolution version can download it.

    Returns None when no wrapper chain leads to a media message.
    """
    return innermost_message(message, lambda candidate: any(isinstance(candidate.get(name), dict) for name in MEDIA_TYPES), WRAPPERS)


def missing_download_fields(message: dict[str, Any]) -> list[str]:
    """What a download needs but the media message lacks (`mediaKey`, and `directPath` or `url`).

    WhatsApp leaves them out of view-once media it sends to linked devices such as Evolution.
    """
    media = next((message[name] for name in MEDIA_TYPES if isinstance(message.get(name), dict)), {})
    missing = [] if media.get("mediaKey") else ["mediaKey"]
    if not (media.get("directPath") or media.get("url")):
        missing.append("directPath")
    return missing


async def send_text(client: httpx.AsyncClient, instance: str, *, number: str, text: str, quoted: dict[str, Any] | None) -> str:
    """Send a text with `POST /message/sendText/{instance}` (answers 201), quoting a message, no link preview; return its id.

    No `delay`: Evolution would hold the HTTP answer open for it.

    Raises:
        EvolutionError: on 400 (`Text is required`, number not on WhatsApp, `Connection Closed`), 401, 404, 500, timeouts.
    """
    body: dict[str, Any] = {"number": number, "text": text, "linkPreview": False}
    if quoted:
        body["quoted"] = quoted
    response = await _post(client, f"/message/sendText/{quote(instance, safe='')}", body, instance)
    key = _json_object(response).get("key")
    message_id = key.get("id") if isinstance(key, dict) else None
    if not isinstance(message_id, str) or not message_id:
        raise EvolutionError("Evolution API answered sendText without key.id", status_code=response.status_code)
    return message_id


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any], instance: str) -> httpx.Response:
    try:
        response = await client.post(path, json=body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as error:
        raise EvolutionError(f"cannot reach Evolution API: {error}") from error
    except httpx.TimeoutException as error:
        raise EvolutionError(f"Evolution API timed out after {client.timeout.read:g} s", ambiguous=True) from error
    except httpx.HTTPError as error:
        raise EvolutionError(f"Evolution API request failed: {error}", ambiguous=True) from error
    if response.status_code in (200, 201):
        return response
    if response.status_code == 401:
        raise EvolutionError("Evolution API rejected the API key (401)", status_code=401)
    if response.status_code == 404:
        raise EvolutionError(f"Evolution API: {_reason(response)} (404, instance {instance!r})", status_code=404)
    raise EvolutionError(f"Evolution API answered {response.status_code}: {_reason(response)}", status_code=response.status_code)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as error:
        raise EvolutionError(f"Evolution API answered {response.status_code} with a body that is not JSON") from error
    if not isinstance(payload, dict):
        raise EvolutionError(f"Evolution API answered {response.status_code} with a body that is not an object")
    return payload


def _reason(response: httpx.Response) -> str:
    """Evolution's `{"response": {"message": …}}`, flattened to one line."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    message = (
        payload.get("response", {}).get("message") if isinstance(payload, dict) and isinstance(payload.get("response"), dict) else payload
    )
    if isinstance(payload, dict) and message is None:
        message = payload.get("message", payload)
    while isinstance(message, list) and len(message) == 1:
        message = message[0]
    return (message if isinstance(message, str) else json.dumps(message))[:200]
