"""`probe_target` against real services on 127.0.0.1: each test probes one target once and checks the result."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.health_targets import HealthTarget
from store.probes import ProbeResult
from tasks.probes import Measure, ProbeContext, grade, probe_target
from tests.conftest import POSTGRES_ADMIN
from tests.fakes.evolution import FakeEvolution
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app

LOOPBACK = "127.0.0.1"
EVOLUTION_KEY = "evolution-key-for-probe-tests"
GROQ_KEY = "gsk_probe_tests_right_key"
REDIS_PASSWORD = "s3cret-redis-pw"


def probe(target: HealthTarget, context: ProbeContext | None = None) -> ProbeResult:
    """Run one real probe, outside any Prefect run."""
    return asyncio.run(probe_target(target, context or ProbeContext()))


def free_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_until(condition, what: str, timeout_seconds: float = 10.0) -> None:
    """Poll `condition` until it holds, failing after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout_seconds} s")
        time.sleep(0.01)


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener never accepts: TCP connects (the kernel's backlog), then nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# --- servers used by several tests ---------------------------------------------------------------


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


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    with serve_app(build_site()) as base_url:
        yield base_url


@contextmanager
def serve_https(app: FastAPI, certfile: Path, keyfile: Path) -> Iterator[str]:
    """Serve `app` over HTTPS with uvicorn on a free loopback port, in a thread; yield its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1,
        ssl_certfile=str(certfile), ssl_keyfile=str(keyfile),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "HTTPS server")
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
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return certfile, keyfile


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vigia Test CA")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return LocalCa(key, certificate, path)


@contextmanager
def https_site(test_ca: LocalCa, directory: Path, valid_for: timedelta) -> Iterator[str]:
    """The test site over HTTPS with a certificate from `test_ca` expiring `valid_for` from now."""
    now = datetime.now(timezone.utc)
    not_before = min(now - timedelta(days=1), now + valid_for - timedelta(days=1))
    certfile, keyfile = test_ca.issue(directory, now + valid_for, not_before)
    with serve_https(build_site(), certfile, keyfile) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def password_redis_port() -> Iterator[int]:
    """A throwaway redis-server on a free port that wants REDIS_PASSWORD, killed after the module."""
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server", "--port", str(port), "--bind", LOOPBACK, "--requirepass", REDIS_PASSWORD,
            "--save", "", "--appendonly", "no", "--daemonize", "no",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host=LOOPBACK, port=port, password=REDIS_PASSWORD, socket_timeout=1)

    def answers() -> bool:
        assert process.poll() is None, "redis-server exited at start"
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, "throwaway redis-server")
        yield port
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


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


# --- postgres ------------------------------------------------------------------------------------


def test_postgres_probe_is_ok_with_the_share_of_connections_in_use_as_value() -> None:
    with psycopg.connect(POSTGRES_ADMIN) as connection:
        max_connections = int(connection.execute("SHOW max_connections").fetchone()[0])

    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN))

    assert (result.target, result.kind, result.ok, result.level) == ("db", "postgres", True, "ok")
    match = re.fullmatch(r"(\d+)/(\d+) connections in use", result.reason)
    assert match, result.reason
    in_use, maximum = int(match[1]), int(match[2])
    assert maximum == max_connections
    assert in_use >= 1  # the probe's own connection
    assert result.value == pytest.approx(100 * in_use / maximum)
    assert result.latency_ms is not None and result.latency_ms > 0


def test_postgres_probe_accepts_the_stores_sqlalchemy_url() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dpublic"

    result = probe(HealthTarget(name="store", kind="postgres", dsn=url))

    assert (result.ok, result.level) == (True, "ok")
    assert re.fullmatch(r"\d+/\d+ connections in use", result.reason)


def test_postgres_probe_over_the_warning_threshold_on_connections_is_a_warning() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN, warning_at=0))

    assert (result.ok, result.level) == (True, "warning")
    assert re.fullmatch(r"\d+/\d+ connections in use \(warning threshold 0\)", result.reason)


def test_postgres_probe_over_the_critical_threshold_on_connections_fails() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn=POSTGRES_ADMIN, critical_at=0))

    assert (result.ok, result.level) == (False, "critical")
    assert re.fullmatch(r"\d+/\d+ connections in use \(critical threshold 0\)", result.reason)


def test_postgres_probe_on_a_closed_port_is_down_saying_connection_refused(closed_port: int) -> None:
    dsn = f"postgresql://vigia:Pg-Passw0rd-123@127.0.0.1:{closed_port}/test"

    result = probe(HealthTarget(name="db", kind="postgres", dsn=dsn))

    assert (result.ok, result.level, result.value) == (False, "critical", None)
    # libpq: `connection to server at "127.0.0.1", port N failed: Connection refused` + a hint line.
    assert "Connection refused" in result.reason
    assert str(closed_port) in result.reason
    assert "Pg-Passw0rd-123" not in result.reason


def test_postgres_probe_with_a_wrong_password_is_down_naming_the_reason_without_the_password() -> None:
    with postgres_wanting_a_password("vigia") as (port, passwords_seen):
        dsn = f"postgresql://vigia:Wr0ng-Pg-Password@127.0.0.1:{port}/test"

        result = probe(HealthTarget(name="db", kind="postgres", dsn=dsn))

    assert passwords_seen == ["Wr0ng-Pg-Password"]  # the server really was given the wrong password
    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  password authentication failed for user "vigia"')
    assert "Wr0ng-Pg-Password" not in result.reason


def test_postgres_probe_of_a_database_that_does_not_exist_is_down_naming_it() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://postgres@127.0.0.1:5432/no_such_db"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  database "no_such_db" does not exist')


def test_postgres_probe_of_a_role_that_does_not_exist_is_down_naming_it() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://ghost:Gh0st-pw@127.0.0.1:5432/test"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.endswith('FATAL:  role "ghost" does not exist')
    assert "Gh0st-pw" not in result.reason


def test_postgres_probe_of_a_malformed_dsn_masks_the_password_libpq_echoes() -> None:
    result = probe(HealthTarget(name="db", kind="postgres", dsn="postgresql://vigia:Ech0ed-Secret@[::1/test"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == (
        'end of string reached when looking for matching "]" in IPv6 host address in URI: '
        '"postgresql://vigia:***@[::1/test"'
    )


def test_postgres_probe_against_a_server_that_never_answers_times_out(silent_port: int) -> None:
    # libpq's connect_timeout has a floor of 2 s, so this is the shortest timeout that is honoured.
    target = HealthTarget(name="db", kind="postgres", dsn=f"postgresql://postgres@127.0.0.1:{silent_port}/test", timeout_seconds=2)

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "connection timeout expired"
    assert 1900 <= result.latency_ms < 4000


# --- redis and queue -----------------------------------------------------------------------------


def test_redis_probe_without_maxmemory_is_ok_reporting_memory_used(redis_url: str) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=redis_url))

    assert (result.ok, result.level, result.value) == (True, "ok", None)
    assert re.fullmatch(r"\d+ MiB used, no maxmemory", result.reason)


def test_redis_probe_with_maxmemory_reports_memory_as_a_share_and_grades_it(password_redis_port: int) -> None:
    admin = redis.Redis(host=LOOPBACK, port=password_redis_port, password=REDIS_PASSWORD)
    admin.config_set("maxmemory", str(512 * 2**20))
    dsn = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{password_redis_port}/0"
    try:
        ok = probe(HealthTarget(name="cache", kind="redis", dsn=dsn))
        warned = probe(HealthTarget(name="cache", kind="redis", dsn=dsn, warning_at=0.01))
    finally:
        admin.config_set("maxmemory", "0")
        admin.close()

    assert (ok.ok, ok.level, ok.reason) == (True, "ok", f"memory {ok.value:.0f}% of maxmemory")
    assert 0 < ok.value < 80
    assert (warned.ok, warned.level) == (True, "warning")
    assert warned.reason == f"memory {warned.value:.0f}% of maxmemory (warning threshold 0.01)"


def test_redis_probe_on_a_closed_port_is_down_saying_it_cannot_connect(closed_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://:Rd-Passw0rd-123@127.0.0.1:{closed_port}/0"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith(f"cannot connect: Error 111 connecting to 127.0.0.1:{closed_port}.")
    assert "Rd-Passw0rd-123" not in result.reason


def test_redis_probe_against_a_server_that_never_answers_times_out(silent_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://127.0.0.1:{silent_port}/0", timeout_seconds=0.5))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"timed out: Timeout reading from 127.0.0.1:{silent_port}"


@pytest.mark.parametrize("kind", ["redis", "queue"])
def test_redis_probe_without_the_password_a_server_wants_says_it_wants_a_password(
    password_redis_port: int, kind: str
) -> None:
    target = HealthTarget(name="cache", kind=kind, dsn=f"redis://127.0.0.1:{password_redis_port}/0", queue_key="jobs")

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("Redis wants a password (NOAUTH): ")


@pytest.mark.parametrize("kind", ["redis", "queue"])
def test_redis_probe_with_a_wrong_password_says_authentication_failed_without_the_password(
    password_redis_port: int, kind: str
) -> None:
    dsn = f"redis://:Wr0ng-Redis-Password@127.0.0.1:{password_redis_port}/0"

    result = probe(HealthTarget(name="cache", kind=kind, dsn=dsn, queue_key="jobs"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "authentication failed: invalid username-password pair or user is disabled."
    assert "Wr0ng-Redis-Password" not in result.reason


def test_redis_probe_with_the_right_password_is_ok(password_redis_port: int) -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{password_redis_port}/0"))

    assert (result.ok, result.level) == (True, "ok")
    assert re.fullmatch(r"\d+ MiB used, no maxmemory", result.reason)


def test_redis_probe_of_a_malformed_url_is_down_saying_malformed_without_the_password() -> None:
    result = probe(HealthTarget(name="cache", kind="redis", dsn="redis://:Rd-Passw0rd-123@127.0.0.1:notaport/0"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "malformed Redis URL: Port could not be cast to integer value as 'notaport'"


def test_queue_probe_of_a_missing_list_is_ok_with_zero_items(redis_url: str) -> None:
    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", 0.0, "0 items in jobs")


def test_queue_probe_at_the_warning_threshold_is_still_ok(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).rpush("jobs", *range(100))

    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", 100.0, "100 items in jobs")


def test_queue_probe_over_the_warning_threshold_is_a_warning_that_stays_up(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).rpush("jobs", *range(150))

    result = probe(HealthTarget(name="jobs", kind="queue", dsn=redis_url, queue_key="jobs"))

    assert (result.ok, result.level, result.value) == (True, "warning", 150.0)
    assert result.reason == "150 items in jobs (warning threshold 100)"


# --- http ----------------------------------------------------------------------------------------


def test_http_probe_of_a_200_is_ok_with_the_status_as_reason(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health"))

    assert (result.target, result.kind, result.ok, result.level) == ("site", "http", True, "ok")
    assert (result.reason, result.value) == ("HTTP 200", None)
    assert result.latency_ms is not None and result.latency_ms > 0


def test_http_probe_of_a_redirect_is_ok_without_following_it(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/302"))

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 302")


def test_http_probe_of_a_500_fails_naming_the_status(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/500"))

    assert (result.ok, result.level, result.reason) == (False, "critical", "HTTP 500, expected 2xx or 3xx")


def test_http_probe_with_expect_status_accepts_exactly_that_status(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/status/503", expect_status=503))

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 503")


def test_http_probe_with_expect_status_fails_on_any_other_status_even_a_200(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health", expect_status=204))

    assert (result.ok, result.level, result.reason) == (False, "critical", "HTTP 200, expected 204")


@pytest.mark.parametrize(
    ("json_field", "json_value"),
    [("status", "ok"), ("db.up", "true"), ("db.pool", "4"), ("checks.0.state", "degraded")],
    ids=["top-level", "boolean-as-text", "number-as-text", "list-index"],
)
def test_http_probe_with_a_matching_json_field_is_ok(site_url: str, json_field: str, json_value: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field=json_field, json_value=json_value)

    result = probe(target)

    assert (result.ok, result.level, result.reason) == (True, "ok", "HTTP 200")


def test_http_probe_with_a_mismatching_json_field_fails_naming_both_values(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field="checks.0.state", json_value="ok")

    result = probe(target)

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "JSON checks.0.state is 'degraded', expected 'ok'"


def test_http_probe_with_a_json_field_the_reply_lacks_fails(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/health", json_field="db.replica", json_value="up")

    result = probe(target)

    assert (result.ok, result.reason) == (False, "JSON db.replica is None, expected 'up'")


def test_http_probe_with_a_json_field_on_a_page_that_is_not_json_fails(site_url: str) -> None:
    target = HealthTarget(name="site", kind="http", url=f"{site_url}/page", json_field="status", json_value="ok")

    result = probe(target)

    assert (result.ok, result.reason) == (False, "JSON status is None, expected 'ok'")


@pytest.mark.parametrize("url", ["htp:/nope", "http://", "example.com/health"])
def test_http_probe_of_a_malformed_url_fails_saying_so_whatever_the_target_is_called(url: str) -> None:
    first = probe(HealthTarget(name="site-a", kind="http", url=url))
    second = probe(HealthTarget(name="other.target", kind="http", url=url))

    assert (first.ok, first.level) == (False, "critical")
    assert first.reason.startswith("malformed URL: ")
    assert second.reason == first.reason
    assert "site-a" not in first.reason


def test_http_probe_of_a_closed_port_fails_saying_it_cannot_connect(closed_port: int) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"http://127.0.0.1:{closed_port}/"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "cannot connect: All connection attempts failed"


def test_http_probe_of_a_server_that_hangs_past_the_timeout_fails_saying_timed_out(silent_port: int) -> None:
    target = HealthTarget(name="site", kind="http", url=f"http://127.0.0.1:{silent_port}/", timeout_seconds=0.5)

    result = probe(target)

    assert (result.ok, result.level, result.reason) == (False, "critical", "timed out after 0.5 s")
    assert 450 <= result.latency_ms < 2500


def test_http_probe_slower_than_the_latency_limit_is_a_warning_naming_the_latency(site_url: str) -> None:
    result = probe(HealthTarget(name="site", kind="http", url=f"{site_url}/health", latency_warning_ms=0.001))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"slow: {result.latency_ms:.0f} ms (warning above 0.001 ms)"


@pytest.mark.parametrize(
    ("days", "ok", "level", "reason_tail"),
    [
        (30, True, "ok", ""),
        (10, True, "warning", " (warning threshold 14)"),
        (3, False, "critical", " (critical threshold 7)"),
    ],
    ids=["30-days-ok", "10-days-warning", "3-days-critical"],
)
def test_https_probe_grades_the_days_until_the_certificate_expires(
    test_ca: LocalCa, tmp_path: Path, days: int, ok: bool, level: str, reason_tail: str
) -> None:
    # An hour's margin keeps the day count from rounding across a boundary while the test runs.
    with https_site(test_ca, tmp_path, timedelta(days=days, hours=1)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health", ca_file=str(test_ca.path)))

    assert (result.ok, result.level) == (ok, level)
    assert result.value == pytest.approx(days + 1 / 24, abs=0.01)
    assert result.reason == f"HTTP 200, TLS certificate expires in {days}.0 days{reason_tail}"


def test_https_probe_of_an_expired_certificate_fails_the_handshake_saying_it_expired(
    test_ca: LocalCa, tmp_path: Path
) -> None:
    with https_site(test_ca, tmp_path, timedelta(days=-1)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health", ca_file=str(test_ca.path)))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired")


def test_https_probe_of_a_certificate_from_an_untrusted_authority_fails(test_ca: LocalCa, tmp_path: Path) -> None:
    with https_site(test_ca, tmp_path, timedelta(days=30)) as base_url:
        result = probe(HealthTarget(name="site", kind="http", url=f"{base_url}/health"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("cannot connect: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")


# --- tcp -----------------------------------------------------------------------------------------


def test_tcp_probe_of_an_open_port_is_ok(site_url: str) -> None:
    address = site_url.removeprefix("http://")

    result = probe(HealthTarget(name="port", kind="tcp", url=address))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", None, "connected")
    assert result.latency_ms is not None and result.latency_ms > 0


def test_tcp_probe_of_a_closed_port_fails_naming_the_address(closed_port: int) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=f"127.0.0.1:{closed_port}"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith(f"cannot connect to 127.0.0.1:{closed_port}: ")


@pytest.mark.parametrize("address", ["localhost", "localhost:", ":6379", "localhost:http", "localhost:0", "localhost:65536"])
def test_tcp_probe_of_a_malformed_address_fails_saying_host_port_is_expected(address: str) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=address))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"malformed address {address!r}: expected host:port"


def test_tcp_probe_slower_than_the_latency_limit_is_a_warning(site_url: str) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=site_url.removeprefix("http://"), latency_warning_ms=0.001))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"slow: {result.latency_ms:.0f} ms (warning above 0.001 ms)"


# --- disk and memory -----------------------------------------------------------------------------


def test_disk_probe_of_a_real_path_is_ok_with_free_percent_as_value(tmp_path: Path) -> None:
    # Thresholds pinned to 0 so the outcome does not depend on how full this machine's disk is.
    usage = shutil.disk_usage(tmp_path)

    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), warning_at=0, critical_at=0))

    assert (result.ok, result.level, result.latency_ms) == (True, "ok", None)
    assert result.value == pytest.approx(100 * usage.free / usage.total, abs=0.5)
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\)", result.reason)


def test_disk_probe_of_a_path_that_does_not_exist_fails_naming_it() -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url="/nonexistent/vigia-backups"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "cannot read disk usage of /nonexistent/vigia-backups: No such file or directory"


def test_disk_probe_under_the_warning_threshold_is_a_warning_because_lower_is_worse(tmp_path: Path) -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), warning_at=101, critical_at=0))

    assert (result.ok, result.level) == (True, "warning")
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\) \(warning threshold 101\)", result.reason)


def test_disk_probe_under_the_critical_threshold_fails(tmp_path: Path) -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), critical_at=101))

    assert (result.ok, result.level) == (False, "critical")
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\) \(critical threshold 101\)", result.reason)


def test_memory_probe_is_ok_with_used_percent_as_value() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", warning_at=100, critical_at=100))

    assert (result.ok, result.level, result.latency_ms) == (True, "ok", None)
    assert 0 < result.value <= 100
    assert result.reason == f"{result.value:.1f}% used"


def test_memory_probe_over_the_warning_threshold_is_a_warning() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", warning_at=0, critical_at=100))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"{result.value:.1f}% used (warning threshold 0)"


def test_memory_probe_over_the_critical_threshold_fails() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", critical_at=0))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"{result.value:.1f}% used (critical threshold 0)"


# --- evolution -----------------------------------------------------------------------------------


@pytest.fixture
def fake_evolution() -> FakeEvolution:
    return FakeEvolution(
        api_key=EVOLUTION_KEY,
        instances={"ops-bot": "open", "sales-bot": "close", "pairing-bot": "connecting", "cold-bot": None},
    )


@pytest.fixture
def evolution_url(fake_evolution: FakeEvolution) -> Iterator[str]:
    with serve_app(fake_evolution.app) as base_url:
        yield base_url


def evolution_context(url: str, instance: str = "ops-bot", api_key: str = EVOLUTION_KEY) -> ProbeContext:
    return ProbeContext(evolution=EvolutionApi(url=url, api_key=api_key, instance=instance))


EVOLUTION_TARGET = HealthTarget(name="whatsapp", kind="evolution")


def test_evolution_probe_of_an_open_instance_is_ok(evolution_url: str, fake_evolution: FakeEvolution) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url))

    assert (result.ok, result.level, result.reason) == (True, "ok", "instance ops-bot open")
    request = fake_evolution.requests[-1]
    assert (request.method, request.path, request.headers["apikey"]) == (
        "GET", "/instance/connectionState/ops-bot", EVOLUTION_KEY,
    )


@pytest.mark.parametrize(
    ("instance", "shown_state"),
    [("sales-bot", "close"), ("pairing-bot", "connecting"), ("cold-bot", "not loaded")],
)
def test_evolution_probe_of_an_instance_that_is_not_open_fails_naming_its_state(
    evolution_url: str, instance: str, shown_state: str
) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, instance))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"WhatsApp instance {instance!r} is {shown_state}, not open"


def test_evolution_probe_of_an_unknown_instance_fails_with_404(evolution_url: str) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, "ghost-bot"))

    assert (result.ok, result.reason) == (False, "Evolution API has no instance 'ghost-bot' (404)")


def test_evolution_probe_with_a_wrong_key_fails_with_401_without_the_key(evolution_url: str) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url, api_key="Wr0ng-Evolution-Key"))

    assert (result.ok, result.reason) == (False, "Evolution API rejected the API key (401)")


def test_evolution_probe_fails_while_the_api_is_down_even_though_the_manager_page_answers_200(
    evolution_url: str, fake_evolution: FakeEvolution
) -> None:
    fake_evolution.fail_with = 503  # Evolution 2.4's licence gate: every API route 503, /manager still 200

    result = probe(EVOLUTION_TARGET, evolution_context(evolution_url))

    assert httpx.get(f"{evolution_url}/manager/findInstances").status_code == 200
    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith("Evolution API answered 503: ")
    assert "service not activated" in result.reason
    assert [r.path for r in fake_evolution.requests if r.path != "/manager/findInstances"] == [
        "/instance/connectionState/ops-bot"
    ]


def test_evolution_probe_slower_than_the_timeout_fails_saying_timed_out(
    evolution_url: str, fake_evolution: FakeEvolution
) -> None:
    fake_evolution.delay_seconds = 0.8

    result = probe(HealthTarget(name="whatsapp", kind="evolution", timeout_seconds=0.3), evolution_context(evolution_url))

    assert (result.ok, result.reason) == (False, "Evolution API timed out after 0.3 s")


def test_evolution_probe_of_a_closed_port_fails_saying_it_cannot_reach_the_api(closed_port: int) -> None:
    result = probe(EVOLUTION_TARGET, evolution_context(f"http://127.0.0.1:{closed_port}"))

    assert (result.ok, result.reason) == (False, "cannot reach Evolution API: All connection attempts failed")


def test_evolution_probe_without_an_evolution_block_fails_as_not_configured() -> None:
    result = probe(EVOLUTION_TARGET, ProbeContext())

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "not configured: set EVOLUTION_API_URL, EVOLUTION_API_KEY and EVOLUTION_INSTANCE"


# --- groq ----------------------------------------------------------------------------------------


@pytest.fixture
def fake_groq() -> FakeGroq:
    return FakeGroq(api_key=GROQ_KEY)


@pytest.fixture
def groq_url(fake_groq: FakeGroq) -> Iterator[str]:
    with serve_app(fake_groq.app) as base_url:
        yield base_url


def groq_context(base_url: str, api_key: str = GROQ_KEY) -> ProbeContext:
    return ProbeContext(groq=GroqApi(api_key=api_key, base_url=base_url))


GROQ_TARGET = HealthTarget(name="groq", kind="groq")


def test_groq_probe_is_ok_when_the_transcription_model_is_listed(groq_url: str, fake_groq: FakeGroq) -> None:
    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.level, result.reason) == (True, "ok", "3 models, whisper-large-v3-turbo available")
    request = fake_groq.requests[-1]
    assert (request.method, request.path, request.headers["authorization"]) == (
        "GET", "/openai/v1/models", f"Bearer {GROQ_KEY}",
    )


def test_groq_probe_fails_when_the_transcription_model_is_not_listed(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.models = ["whisper-large-v3", "llama-3.3-70b-versatile"]

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "model 'whisper-large-v3-turbo' is not available to this key")


def test_groq_probe_with_a_wrong_key_fails_with_401_without_the_key(groq_url: str) -> None:
    result = probe(GROQ_TARGET, groq_context(groq_url, api_key="gsk_Wr0ng_Groq_Key"))

    assert (result.ok, result.level, result.reason) == (False, "critical", "Groq rejected the API key (401)")


def test_groq_probe_rate_limited_fails_giving_the_retry_after_seconds(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.fail_next(429, headers={"Retry-After": "17"})

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq rate limit (429), retry after 17 s")
    assert len(fake_groq.requests) == 1  # the probe does not retry on its own


def test_groq_probe_of_a_server_error_fails_with_the_status_and_message(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.fail_next(500)

    result = probe(GROQ_TARGET, groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq answered 500: Internal Server Error")
    assert len(fake_groq.requests) == 1


def test_groq_probe_slower_than_the_timeout_fails_saying_timed_out(groq_url: str, fake_groq: FakeGroq) -> None:
    fake_groq.delay_seconds = 0.8

    result = probe(HealthTarget(name="groq", kind="groq", timeout_seconds=0.3), groq_context(groq_url))

    assert (result.ok, result.reason) == (False, "Groq timed out")


def test_groq_probe_of_a_closed_port_fails_saying_it_cannot_reach_groq(closed_port: int) -> None:
    result = probe(GROQ_TARGET, groq_context(f"http://127.0.0.1:{closed_port}"))

    assert (result.ok, result.reason) == (False, "cannot reach Groq: All connection attempts failed")


def test_groq_probe_without_a_groq_block_fails_as_not_configured() -> None:
    result = probe(GROQ_TARGET, ProbeContext())

    assert (result.ok, result.level, result.reason) == (False, "critical", "not configured: set GROQ_API_KEY")


# --- prefect -------------------------------------------------------------------------------------


SUMMARY = re.compile(r"error rate (\d+\.\d)% of (\d+) runs in the last hour, (\d+) late")


def prefect_summary(result: ProbeResult) -> tuple[int, int]:
    """The (finished runs, late runs) a prefect probe's reason reports."""
    match = SUMMARY.fullmatch(result.reason)
    assert match, result.reason
    return int(match[2]), int(match[3])


def test_prefect_probe_of_a_healthy_server_is_ok_with_the_error_rate_summary(prefect_server: str) -> None:
    # Other tests share this server and may leave failed runs, so thresholds are set out of reach here;
    # grading of the error rate is covered by the grade tests below.
    target = HealthTarget(name="prefect", kind="prefect", warning_at=100, critical_at=100)

    result = probe(target, ProbeContext(prefect_api_url=prefect_server))

    assert (result.ok, result.level) == (True, "ok")
    match = SUMMARY.fullmatch(result.reason)
    assert match, result.reason
    assert match[1] == f"{result.value:.1f}"


def test_prefect_probe_counts_runs_that_finished_in_the_last_hour_and_late_runs(prefect_server: str) -> None:
    target = HealthTarget(name="prefect", kind="prefect", warning_at=100, critical_at=100)
    context = ProbeContext(prefect_api_url=prefect_server)
    api = httpx.Client(base_url=prefect_server, timeout=10)
    flow_id = api.post("/flows/", json={"name": "vigia-probe-test-flow"}).json()["id"]
    run_ids: list[str] = []
    try:
        before = probe(target, context)
        finished_before, late_before = prefect_summary(before)
        failed_before = round(before.value * finished_before / 100)
        for state_type, state_name in [
            ("COMPLETED", "Completed"), ("COMPLETED", "Completed"), ("FAILED", "Failed"),
            ("CRASHED", "Crashed"), ("SCHEDULED", "Late"), ("RUNNING", "Running"),
        ]:
            reply = api.post("/flow_runs/", json={"flow_id": flow_id, "state": {"type": state_type, "name": state_name}})
            assert reply.status_code == 201, reply.text
            run_ids.append(reply.json()["id"])

        after = probe(target, context)
    finally:
        for run_id in run_ids:  # keep the shared server's error rate as other tests found it
            api.delete(f"/flow_runs/{run_id}")
        api.delete(f"/flows/{flow_id}")
        api.close()

    finished_after, late_after = prefect_summary(after)
    assert (finished_after, late_after) == (finished_before + 4, late_before + 1)
    assert after.value == pytest.approx(100 * (failed_before + 2) / (finished_before + 4))


def test_prefect_probe_of_a_closed_port_fails_saying_it_cannot_reach_the_api(closed_port: int) -> None:
    api_url = f"http://127.0.0.1:{closed_port}/api"

    result = probe(HealthTarget(name="prefect", kind="prefect", url=api_url))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"cannot reach the Prefect API at {api_url}/: All connection attempts failed"


def test_prefect_probe_of_a_server_that_never_answers_fails_saying_health_timed_out(silent_port: int) -> None:
    target = HealthTarget(name="prefect", kind="prefect", url=f"http://127.0.0.1:{silent_port}/api", timeout_seconds=0.5)

    result = probe(target)

    assert (result.ok, result.reason) == (False, "Prefect API /health timed out")


def build_prefect_api(auth_string: str | None = None, healthy: bool = True) -> FastAPI:
    """A stand-in for a Prefect API behind basic auth (as PREFECT_SERVER_API_AUTH_STRING makes it), with no runs."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    expected = "Basic " + base64.b64encode(auth_string.encode()).decode() if auth_string else None

    @app.middleware("http")
    async def basic_auth(request: Request, call_next):
        if expected and request.headers.get("authorization") != expected:
            return JSONResponse({"exception_message": "Unauthorized"}, status_code=401)
        return await call_next(request)

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return JSONResponse(healthy)

    @app.post("/api/flow_runs/count")
    async def count() -> JSONResponse:
        return JSONResponse(0)

    return app


def test_prefect_probe_of_a_server_wanting_credentials_fails_saying_which_setting_to_set() -> None:
    with serve_app(build_prefect_api(auth_string="admin:Pr3fect-pass")) as base_url:
        result = probe(HealthTarget(name="prefect", kind="prefect"), ProbeContext(prefect_api_url=f"{base_url}/api"))

    assert (result.ok, result.reason) == (False, "Prefect API wants credentials (401): set PREFECT_API_AUTH_STRING")


def test_prefect_probe_sends_the_auth_string_as_basic_auth() -> None:
    with serve_app(build_prefect_api(auth_string="admin:Pr3fect-pass")) as base_url:
        context = ProbeContext(prefect_api_url=f"{base_url}/api", prefect_auth_string="admin:Pr3fect-pass")
        result = probe(HealthTarget(name="prefect", kind="prefect"), context)

    assert (result.ok, result.level, result.value) == (True, "ok", 0.0)
    assert result.reason == "error rate 0.0% of 0 runs in the last hour, 0 late"


def test_prefect_probe_of_a_server_reporting_unhealthy_fails() -> None:
    with serve_app(build_prefect_api(healthy=False)) as base_url:
        result = probe(HealthTarget(name="prefect", kind="prefect", url=f"{base_url}/api"))

    assert (result.ok, result.reason) == (False, "Prefect API health answered False")


def test_prefect_probe_without_an_api_url_fails_as_not_configured() -> None:
    result = probe(HealthTarget(name="prefect", kind="prefect"), ProbeContext())

    assert (result.ok, result.reason) == (False, "not configured: no Prefect API URL (PREFECT_API_URL)")


# --- probe errors --------------------------------------------------------------------------------


def test_probe_of_an_unknown_kind_fails_naming_the_kind_instead_of_raising() -> None:
    target = HealthTarget.model_construct(name="mystery", kind="bogus")

    result = probe(target)

    assert (result.target, result.kind, result.ok, result.level) == ("mystery", "bogus", False, "critical")
    assert result.reason == "unknown probe kind 'bogus'"


def test_probe_that_raises_an_unexpected_exception_fails_naming_it_instead_of_raising() -> None:
    # model_construct skips validation, so this postgres target has no DSN and the probe itself errs.
    target = HealthTarget.model_construct(name="broken", kind="postgres")

    result = probe(target)

    assert (result.target, result.ok, result.level) == ("broken", False, "critical")
    assert result.reason == "probe error: AttributeError: 'NoneType' object has no attribute 'get_secret_value'"
    assert result.latency_ms is not None


# --- grade: the two tiers and the latency limit ----------------------------------------------------


AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kind", "value", "level", "ok", "reason"),
    [
        ("prefect", 1.0, "ok", True, "rate"),
        ("prefect", 1.5, "warning", True, "rate (warning threshold 1)"),
        ("prefect", 5.0, "warning", True, "rate (warning threshold 1)"),
        ("prefect", 5.5, "critical", False, "rate (critical threshold 5)"),
        ("memory", 80.0, "ok", True, "rate"),
        ("memory", 85.0, "warning", True, "rate (warning threshold 80)"),
        ("memory", 90.1, "critical", False, "rate (critical threshold 90)"),
        ("disk", 15.0, "ok", True, "rate"),
        ("disk", 14.9, "warning", True, "rate (warning threshold 15)"),
        ("disk", 9.9, "critical", False, "rate (critical threshold 10)"),
        ("queue", 100_000, "warning", True, "rate (warning threshold 100)"),
        ("redis", 95.0, "critical", False, "rate (critical threshold 90)"),
    ],
    ids=lambda value: str(value),
)
def test_grade_applies_the_default_two_tier_thresholds_only_past_each_threshold(
    kind: str, value: float, level: str, ok: bool, reason: str
) -> None:
    target = HealthTarget.model_construct(name="t", kind=kind)

    result = grade(target, Measure(value, 10.0, "rate"), AT)

    assert (result.level, result.ok, result.reason, result.value, result.at) == (level, ok, reason, value, AT)


def test_grade_reports_a_crossed_threshold_rather_than_slowness() -> None:
    target = HealthTarget(name="t", kind="memory", latency_warning_ms=100)

    result = grade(target, Measure(85.0, 9000.0, "85.0% used"), AT)

    assert (result.level, result.reason) == ("warning", "85.0% used (warning threshold 80)")


def test_grade_of_a_measure_without_a_value_only_checks_latency() -> None:
    target = HealthTarget(name="t", kind="tcp", url="127.0.0.1:1", latency_warning_ms=100)

    fast = grade(target, Measure(None, 100.0, "connected"), AT)
    slow = grade(target, Measure(None, 100.4, "connected"), AT)

    assert (fast.level, fast.reason) == ("ok", "connected")
    assert (slow.level, slow.ok, slow.reason) == ("warning", True, "slow: 100 ms (warning above 100 ms)")
