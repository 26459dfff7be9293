"""Run an ASGI app on a loopback port in a background thread, for tests that need a real server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake received: method, path, query string and the headers the fake cares about."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK_HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app: ASGIApp, startup_timeout_seconds: float = 10.0) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port and yield its base URL, `http://127.0.0.1:PORT`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((LOOPBACK_HOST, 0))
    port = listener.getsockname()[1]
    # A short graceful timeout: a request parked in a fake's injected delay must not stall teardown.
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name=f"fake-server-{port}", daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread, startup_timeout_seconds)
        yield f"http://{LOOPBACK_HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout_seconds)
        listener.close()


def _wait_until_started(server: uvicorn.Server, thread: threading.Thread, timeout_seconds: float) -> None:
    """Poll until uvicorn is listening, failing fast if its thread dies or the deadline passes."""
    deadline = time.monotonic() + timeout_seconds
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"fake server thread {thread.name} exited before it started listening")
        if time.monotonic() > deadline:
            raise TimeoutError(f"fake server {thread.name} did not start within {timeout_seconds} s")
        time.sleep(0.005)
