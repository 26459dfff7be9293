"""Groq: the models the API key can use."""

from __future__ import annotations

import time

import groq

from clients.errors import ClientError


class GroqError(ClientError):
    """Groq refused or did not answer."""


def create_client(api_key: str, base_url: str, *, timeout: float, max_retries: int = 0) -> groq.AsyncGroq:
    """Return a Groq SDK client with a short timeout; retries are ours to budget, so none by default."""
    return groq.AsyncGroq(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries)


async def list_models(client: groq.AsyncGroq) -> tuple[list[str], float]:
    """Return the ids of the models the key may use, and the latency in ms.

    Raises:
        GroqError: on 401 (key), 429 (with retry-after), other statuses, timeouts and refused connections.
    """
    started = time.perf_counter()
    try:
        page = await client.models.list()
    except groq.AuthenticationError as error:
        raise GroqError("Groq rejected the API key (401)") from error
    except groq.RateLimitError as error:
        retry_after = error.response.headers.get("retry-after")
        raise GroqError(f"Groq rate limit (429), retry after {retry_after or '?'} s") from error
    except groq.APIStatusError as error:
        raise GroqError(f"Groq answered {error.status_code}: {_message(error)}") from error
    except groq.APITimeoutError as error:
        raise GroqError("Groq timed out") from error
    except groq.APIConnectionError as error:
        raise GroqError(f"cannot reach Groq: {error.__cause__ or error}") from error
    return [model.id for model in page.data], (time.perf_counter() - started) * 1000


def _message(error: groq.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and "message" in detail:
            return str(detail["message"])
    return str(body)[:200]
