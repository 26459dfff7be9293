"""Helpers for the probe tests: loopback servers to probe, certificates, and `probe`, which runs one probe."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Response
from fastapi.responses import HTMLResponse

from blocks.health_targets import HealthTarget
from store.probes import ProbeResult
from tasks.probes import ProbeContext, probe_target
from tests.polling import wait_until

LOOPBACK = "127.0.0.1"
REDIS_PASSWORD = "s3cret-redis-pw"


def probe(target: HealthTarget, context: ProbeContext | None = None) -> ProbeResult:
    """Run one real probe, outside any Prefect run."""
    return asyncio.run(probe_target(target, context or ProbeContext()))


def build_site() -> FastAPI:
    """A small web app: a JSON health page, any status on demand, and an HTML page."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "db": {"up": True, "pool": 4}, "checks": [{"name": "redis", "state": "degraded"}]}

    @app.get("/status/{code}")
    async def status(code: int) -> Response:
        return Response(status_code=code)

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<html><body>not JSON</body></html>")

    return app


@contextmanager
def serve_https(app: FastAPI, certfile: Path, keyfile: Path) -> Iterator[str]:
    """Serve `app` over HTTPS with uvicorn on a free loopback port, in a thread; yield its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="critical",
        lifespan="off",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 10, "HTTPS server", every=0.01)
        assert thread.is_alive(), "HTTPS server thread died before it listened"
        yield f"https://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@dataclass(frozen=True)
class LocalCa:
    """A certificate authority made for one test module, and its certificate on disk."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    path: Path

    def issue(self, directory: Path, not_after: datetime, not_before: datetime | None = None) -> tuple[Path, Path]:
        """Issue a server certificate for 127.0.0.1 valid until `not_after`; return (certfile, keyfile)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        certfile, keyfile = directory / "server.pem", directory / "server.key"
        certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return certfile, keyfile


@contextmanager
def https_site(local_ca: LocalCa, directory: Path, valid_for: timedelta) -> Iterator[str]:
    """The test site over HTTPS with a certificate from `local_ca` expiring `valid_for` from now."""
    now = datetime.now(timezone.utc)
    not_before = min(now - timedelta(days=1), now + valid_for - timedelta(days=1))
    certfile, keyfile = local_ca.issue(directory, now + valid_for, not_before)
    with serve_https(build_site(), certfile, keyfile) as base_url:
        yield base_url


@contextmanager
def postgres_wanting_a_password(user: str) -> Iterator[tuple[int, list[str]]]:
    """A loopback stand-in for a PostgreSQL server that asks for a password and rejects it.

    The local PostgreSQL trusts every connection (pg_hba.conf is all `trust`), so it never checks a
    password. This speaks just enough of the wire protocol for libpq: it declines SSL/GSS, asks for a
    cleartext password, records it, and answers with the FATAL 28P01 error PostgreSQL sends.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(4)
    listener.settimeout(0.05)
    stop = threading.Event()
    passwords: list[str] = []

    def read(connection: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = connection.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client hung up")
            data += chunk
        return data

    def answer(connection: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!ii", read(connection, 8))
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: not here
                connection.sendall(b"N")
                continue
            read(connection, length - 8)  # the startup parameters
            break
        connection.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        assert read(connection, 1) == b"p"
        (length,) = struct.unpack("!i", read(connection, 4))
        passwords.append(read(connection, length - 4).rstrip(b"\0").decode())
        fields = b"SFATAL\0VFATAL\0C28P01\0" + f'Mpassword authentication failed for user "{user}"\0'.encode() + b"\0"
        connection.sendall(b"E" + struct.pack("!i", 4 + len(fields)) + fields)

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                connection.settimeout(5)
                try:
                    answer(connection)
                except (ConnectionError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], passwords
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
