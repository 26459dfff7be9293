"""Masking secrets out of text before it is logged, stored or shown."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

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
