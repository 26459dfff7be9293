"""A real SMTP sink on loopback (aiosmtpd) that requires AUTH PLAIN/LOGIN without TLS, like a plain submission relay."""

from __future__ import annotations

import email
import email.policy
import hmac
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .server import LOOPBACK_HOST, free_port

# The name the sink greets with; a fixed one keeps aiosmtpd from resolving the machine's FQDN.
SINK_HOSTNAME = "smtp-sink.vigia.test"
BIND_ATTEMPTS = 3
LOGIN_DATA_DEPRECATION = "Session.login_data is deprecated"


def _drop_login_data_deprecation(record: logging.LogRecord) -> bool:
    """aiosmtpd 1.4 logs this on every successful AUTH through its own code path; it says nothing about the test."""
    return not record.getMessage().startswith(LOGIN_DATA_DEPRECATION)


if _drop_login_data_deprecation not in logging.getLogger("mail.log").filters:
    logging.getLogger("mail.log").addFilter(_drop_login_data_deprecation)


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted: the SMTP envelope, the AUTH login used, and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    login: str | None
    message: EmailMessage


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange: the mechanism, the login offered and whether the sink accepted it."""

    mechanism: str
    login: str
    accepted: bool


@dataclass(eq=False)
class SmtpSink:
    """The sink's state. `host`/`port` are set once it listens; `messages` fills as mail arrives."""

    user: str
    password: str
    require_auth: bool = True
    host: str = LOOPBACK_HOST
    port: int = 0
    messages: list[ReceivedMail] = field(default_factory=list)
    login_attempts: list[AuthAttempt] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        """aiosmtpd authenticator: accept only the configured user and password."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode(errors="replace")
        accepted = hmac.compare_digest(auth_data.login, self.user.encode()) and hmac.compare_digest(
            auth_data.password, self.password.encode()
        )
        self.login_attempts.append(AuthAttempt(mechanism=mechanism, login=login, accepted=accepted))
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:
        """Refuse a sender until the session authenticated (when `require_auth`)."""
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse and store the message, then wake anyone in `wait_for`."""
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))
        auth_data = session.auth_data
        login = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else None
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            login=login,
            message=parsed,
        )
        with self._arrived:
            self.messages.append(mail)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; return them all. TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.messages)} of {count} messages arrived within {timeout} s")
                self._arrived.wait(remaining)
            return list(self.messages)


@contextmanager
def smtp_sink(user: str = "alerts", password: str = "smtp-secret", require_auth: bool = True) -> Iterator[SmtpSink]:
    """Run an SMTP sink on a free loopback port for the duration of the block."""
    sink = SmtpSink(user=user, password=password, require_auth=require_auth)
    controller = _start_controller(sink)
    try:
        yield sink
    finally:
        controller.stop()


def _start_controller(sink: SmtpSink) -> Controller:
    """Start aiosmtpd on a free port, retrying if another process grabbed the port in between."""
    last_error: OSError | None = None
    for _ in range(BIND_ATTEMPTS):
        port = free_port()
        controller = Controller(
            sink,
            hostname=LOOPBACK_HOST,
            port=port,
            server_hostname=SINK_HOSTNAME,
            ready_timeout=5.0,
            authenticator=sink.authenticate,
            auth_require_tls=False,
        )
        try:
            controller.start()
        except OSError as error:
            last_error = error
            continue
        sink.port = port
        return controller
    raise RuntimeError(f"SMTP sink could not bind a loopback port in {BIND_ATTEMPTS} attempts") from last_error
