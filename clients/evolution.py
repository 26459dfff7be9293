"""Evolution API, the WhatsApp gateway: the instance's connection state."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx

from clients.errors import ClientError

USER_AGENT = "vigia/0.1"


class EvolutionError(ClientError):
    """Evolution API refused or did not answer."""


def create_client(base_url: str, api_key: str, *, timeout: float) -> httpx.AsyncClient:
    """Return an HTTP client for one Evolution API, with its key and a timeout."""
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"), timeout=timeout, headers={"apikey": api_key, "User-Agent": USER_AGENT}
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
