"""HTTP(S) GETs with latency, an optional JSON field and the TLS certificate's expiry."""

from __future__ import annotations

import functools
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import certifi
import httpx

from clients.errors import ClientError

USER_AGENT = "vigia-health-check/0.1"


class HttpError(ClientError):
    """A URL could not be fetched."""


@dataclass(frozen=True)
class HttpReply:
    """What one GET answered."""

    status_code: int
    latency_ms: float
    json_value: str | None
    certificate_expires_at: datetime | None


async def fetch(
    url: str, *, timeout: float, json_field: str | None = None, ca_file: str | None = None, headers: dict[str, str] | None = None
) -> HttpReply:
    """GET a URL and report its status, latency, an optional JSON field and TLS expiry.

    Raises:
        HttpError: when the URL is malformed or the request fails; the message says why.
    """
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout, verify=tls_context(ca_file), headers={"User-Agent": USER_AGENT}) as client:
            async with client.stream("GET", url, headers=headers) as response:
                expires_at = _certificate_expiry(response)
                body = await response.aread()
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        raise HttpError(f"malformed URL: {error}") from error
    except httpx.TimeoutException as error:
        raise HttpError(f"timed out after {timeout:g} s") from error
    except httpx.ConnectError as error:
        raise HttpError(f"cannot connect: {_reason(error)}") from error
    except httpx.HTTPError as error:
        raise HttpError(f"request failed: {_reason(error)}") from error
    latency_ms = (time.perf_counter() - started) * 1000
    value = _json_field(body, json_field) if json_field else None
    return HttpReply(response.status_code, latency_ms, value, expires_at)


async def ping(url: str, *, timeout: float = 10) -> int:
    """GET a URL (a heartbeat) and return its status code.

    Raises:
        HttpError: when the request fails.
    """
    reply = await fetch(url, timeout=timeout)
    return reply.status_code


@functools.lru_cache(maxsize=16)
def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """Return a shared TLS context trusting certifi's bundle, or `ca_file`.

    Loading a CA bundle costs ~60 ms of CPU on the event loop; built once, every probe reuses it.
    """
    return ssl.create_default_context(cafile=ca_file or certifi.where())


def _certificate_expiry(response: httpx.Response) -> datetime | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None
    certificate = ssl_object.getpeercert()
    if not certificate or "notAfter" not in certificate:
        return None
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(certificate["notAfter"]), tz=timezone.utc)


def _json_field(body: bytes, path: str) -> str | None:
    try:
        node: Any = httpx.Response(200, content=body).json()
    except ValueError:
        return None
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return None if node is None else str(node)


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__
