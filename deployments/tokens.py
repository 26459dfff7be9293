"""The webhook token: where a generated one is kept, and how a request proves it holds it.

Evolution can present it four ways: a static header (`X-Vigia-Token`, set in the webhook's
`headers`), `Authorization: Bearer <HS256 JWT>` signed with it (Evolution 2.3.0+ turns a `jwt_key`
header into that, 10-minute expiry), the literal `jwt_key` header (2.2.x sends its `headers` map
verbatim), or `?token=`. Every comparison is constant-time; a malformed token is simply not the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

TOKEN_FILE = "webhook-token"
CONVERSATION_KEY_FILE = "conversation-key"  # the key chats are hashed with (store/conversations.py chat_key)
HEADER = "x-vigia-token"
LITERAL_JWT_KEY_HEADER = "jwt_key"
# Evolution's JWT is ~190 characters; anything far longer is refused before it is decoded.
MAX_JWT_CHARS = 4096
CLOCK_SKEW_SECONDS = 60


def read_token_file(home: Path) -> str | None:
    """Return the token `vigia setup` generated under VIGIA_HOME, if any."""
    try:
        return (home / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def create_token_file(home: Path) -> str:
    """Generate a token and keep it under VIGIA_HOME, readable by this user only."""
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path = home / TOKEN_FILE
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    return token


def conversation_key(home: Path) -> bytes:
    """Return the key chats are hashed with, generating it under VIGIA_HOME (this user only) on first use.

    Kept apart from the webhook token: rotating the token must not split every chat's history in two.
    """
    path = home / CONVERSATION_KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        partial = home / f".{CONVERSATION_KEY_FILE}.{os.getpid()}"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(partial, path)  # whole or not at all; a process that lost the race reads the winner's key
        except FileExistsError:
            pass
        finally:
            partial.unlink()
    return bytes.fromhex(path.read_text().strip())


def request_holds_token(token: str, headers: Mapping[str, str], query: Mapping[str, str], now: float | None = None) -> bool:
    """Whether a request presents the token as a header, a valid HS256 JWT, Evolution 2.2's literal `jwt_key`, or `?token=`."""
    for name in (HEADER, LITERAL_JWT_KEY_HEADER):
        header = headers.get(name)
        if header is not None and _equal(header, token):
            return True
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer " and jwt_is_valid(authorization[7:].strip(), token, now):
        return True
    presented = query.get("token")
    return presented is not None and _equal(presented, token)


def jwt_is_valid(jwt: str, key: str, now: float | None = None) -> bool:
    """Whether `jwt` is an HS256 JWT signed with `key` and not expired (Evolution's `{iat, exp, app, action}`)."""
    parts = jwt.split(".")
    if len(jwt) > MAX_JWT_CHARS or len(parts) != 3:
        return False
    try:
        signature = _b64url(parts[2])
    except (ValueError, binascii.Error):
        return False
    # The signature is checked before any JSON is parsed: an unauthenticated sender never reaches json.loads.
    expected = hmac.new(key.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return False
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, RecursionError):
        return False
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return False
    now = time.time() if now is None else now
    expires = claims.get("exp")
    if not isinstance(expires, (int, float)) or isinstance(expires, bool) or expires + CLOCK_SKEW_SECONDS < now:
        return False
    not_before = claims.get("nbf")
    return not (isinstance(not_before, (int, float)) and not_before - CLOCK_SKEW_SECONDS > now)


def sign_jwt(claims: dict, key: str) -> str:
    """Sign claims as an HS256 JWT, the way Evolution does with `jwt_key` (used by the fakes and tests)."""
    head = _b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url_encode(signature)}"


def _equal(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.encode(), token.encode())


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
