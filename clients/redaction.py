"""Masking secrets out of text before it is logged, stored or shown."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

# The password runs to the last @ before the path: redis-py accepts a raw @ inside it.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^/\s]+)@", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return a URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Return text with URL passwords and every given secret value replaced by ***."""
    text = _USERINFO.sub(lambda match: f"{match['scheme']}{match['user']}:***@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# Apprise's own arguments whose values are flags, numbers, modes or formats: safe to show. Every
# other query value may be a secret: a `+Header`, a `-param` or a `:field` of json://, form:// and
# xml:// (Apprise prints those in clear even in its privacy URL), a `token=`, an address.
_HARMLESS_QUERY_KEYS = frozenset(
    {
        "album",
        "avatar",
        "batch",
        "content",
        "cto",
        "detect",
        "emojis",
        "fields",
        "footer",
        "footer_logo",
        "format",
        "image",
        "mdv",
        "method",
        "mode",
        "optional",
        "overflow",
        "preview",
        "priority",
        "redirect",
        "retry",
        "rto",
        "silent",
        "store",
        "tts",
        "tz",
        "verify",
        "wait",
    }
)


def mask_channel_url(url: str) -> str:
    """Return an Apprise URL with its password, a token given as user, and every query value not known to be harmless as ***.

    Apply it to Apprise's privacy URL (`url(privacy=True)`): that one already shortens the tokens
    in the host and path, but prints custom headers and query values in clear.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # A user without a password is a token in Apprise's forms (evolution://KEY@, whatsapp://TOKEN@).
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    query = "&".join(_mask_query_argument(argument) for argument in parts.query.split("&")) if parts.query else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def channel_secrets(url: str) -> list[str]:
    """Return the values `mask_channel_url` hides in a URL: to mask them wherever else they might show."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    secrets = [unquote(password if colon else user)] if at else []
    for argument in parts.query.split("&") if parts.query else ():
        key, _, value = argument.partition("=")
        if value and not _is_harmless(key):
            secrets.append(unquote(value))
    return [secret for secret in secrets if secret]


def _mask_query_argument(argument: str) -> str:
    key, equals, value = argument.partition("=")
    return f"{key}=***" if equals and value and not _is_harmless(key) else argument


def _is_harmless(key: str) -> bool:
    return unquote(key).lower() in _HARMLESS_QUERY_KEYS


# A phone number or WhatsApp id: ten or more digits (country and area code included), maybe written
# with spaces, parentheses or dashes between them; dates and run ids have fewer digits.
_PHONE = re.compile(r"\+?\d(?:[ ()-]{0,2}\d){9,}")


def mask_phone_numbers(text: str) -> str:
    """Return text with every phone number's middle hidden, keeping its first four and last two characters."""
    return _PHONE.sub(lambda match: match[0][:4] + "*" * (len(match[0]) - 6) + match[0][-2:], text)


def mask_jid(jid: str | None) -> str:
    """Return a WhatsApp JID or phone number with its middle digits hidden: `5511*******21@s.whatsapp.net`.

    The one place phone numbers are masked before they reach a log line.
    """
    return mask_phone_numbers(jid) if jid else "?"
