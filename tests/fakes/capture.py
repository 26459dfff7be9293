"""A loopback HTTP capture server standing in for Telegram/Discord webhooks (Apprise's `json://host:port/path`).

Routes (any `name`, nested segments allowed):
- `POST /ok/{name}`   200 `{"ok": true}`
- `POST /fail/{name}` 500 with a plain-text body
- `POST /hang/{name}` answers 200 only after `hang_seconds`, when the client disconnects, or on `release()`
- `POST /slow/{name}?seconds=N` answers 200 after N seconds (or on `release()`)
Anything else is recorded and answered 404. Every request is recorded on arrival, before any wait.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from .server import serve_app

# How often a parked request checks for a disconnect, the deadline or a release.
PARK_POLL_SECONDS = 0.02
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


@dataclass(frozen=True)
class Captured:
    """One request the capture server received. `json` is the parsed body, or None if it was empty or not JSON."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    json: Any
    body: bytes
    received_at: float  # time.monotonic() on arrival


@dataclass(eq=False)
class CaptureServer:
    """Records every request; use `serving()` to run it and `wait_for()` to await arrivals."""

    hang_seconds: float = 30.0
    received: list[Captured] = field(default_factory=list)
    base_url: str | None = None  # `http://127.0.0.1:PORT` while `serving()`
    _arrived: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _released: threading.Event = field(default_factory=threading.Event, repr=False)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on a free loopback port and yield the base URL; parked requests are released on exit."""
        self._released.clear()
        with serve_app(self.app) as base_url:
            self.base_url = base_url
            try:
                yield base_url
            finally:
                self.release()
                self.base_url = None

    def release(self) -> None:
        """Let every parked `/hang` and `/slow` request answer now (teardown must not wait for them)."""
        self._released.set()

    def wait_for(self, predicate: Callable[[Captured], bool] | None = None, count: int = 1, timeout: float = 5.0) -> list[Captured]:
        """Block until at least `count` requests matching `predicate` arrived; return all matches so far.

        Raises TimeoutError listing what did arrive once `timeout` seconds pass.
        """
        matches = predicate or (lambda _: True)
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [captured for captured in self.received if matches(captured)]
                remaining = deadline - time.monotonic()
                if len(found) >= count:
                    return found
                if remaining <= 0:
                    arrived = [f"{c.method} {c.path}" for c in self.received]
                    raise TimeoutError(f"{len(found)} of {count} expected requests arrived within {timeout} s; got {arrived}")
                self._arrived.wait(remaining)

    async def capture(self, request: Request) -> Captured:
        """Record `request` (body included) and wake anyone in `wait_for`."""
        body = await request.body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        captured = Captured(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=dict(request.headers.items()),
            json=parsed,
            body=body,
            received_at=time.monotonic(),
        )
        with self._arrived:
            self.received.append(captured)
            self._arrived.notify_all()
        return captured

    async def park(self, request: Request, seconds: float, until_disconnect: bool) -> float:
        """Wait without blocking the event loop for `seconds`, a release, or (optionally) a client disconnect.

        Returns how long it waited.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + seconds
        while loop.time() < deadline and not self._released.is_set():
            if until_disconnect and await request.is_disconnected():
                break
            await asyncio.sleep(min(PARK_POLL_SECONDS, max(deadline - loop.time(), 0)))
        return loop.time() - started

    @cached_property
    def app(self) -> FastAPI:
        """The ASGI app recording into this server."""
        return build_app(self)


def build_app(server: CaptureServer) -> FastAPI:
    """Build the FastAPI app whose routes record into `server`."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/ok/{name:path}")
    async def ok(name: str, request: Request) -> Response:
        await server.capture(request)
        return JSONResponse({"ok": True})

    @app.post("/fail/{name:path}")
    async def fail(name: str, request: Request) -> Response:
        await server.capture(request)
        return PlainTextResponse(f"simulated failure for {name}", status_code=500)

    @app.post("/hang/{name:path}")
    async def hang(name: str, request: Request) -> Response:
        await server.capture(request)
        waited = await server.park(request, server.hang_seconds, until_disconnect=True)
        return JSONResponse({"ok": True, "waited_seconds": round(waited, 3)})

    @app.post("/slow/{name:path}")
    async def slow(name: str, request: Request, seconds: float = 1.0) -> Response:
        await server.capture(request)
        waited = await server.park(request, seconds, until_disconnect=False)
        return JSONResponse({"ok": True, "waited_seconds": round(waited, 3)})

    @app.api_route("/{rest:path}", methods=ALL_METHODS)
    async def unknown(rest: str, request: Request) -> Response:
        await server.capture(request)
        return PlainTextResponse("Not Found", status_code=404)

    return app
