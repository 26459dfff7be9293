"""Apprise: load the routing config, fan an alert out by tag, and report every channel's outcome."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import apprise

from clients.errors import ClientError
from clients.redaction import channel_secrets, mask_channel_url, mask_phone_numbers, mask_secrets

# Apprise writes Telegram and Discord tokens in its DEBUG lines; never let it go below INFO.
logging.getLogger("apprise").setLevel(logging.INFO)

SEVERITIES = ("info", "warning", "critical", "emergency", "report")

# Channels that travel through a target Vigia watches: while that target is DOWN they are skipped,
# and Apprise's next priority for the tag takes over.
CHANNEL_DEPENDS_ON = {"NotifyEvolution": "evolution"}
NOTIFY_TYPES = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
    "emergency": apprise.NotifyType.FAILURE,
    "report": apprise.NotifyType.INFO,
    "resolved": apprise.NotifyType.SUCCESS,
}
STATUS_NAMES = {
    apprise.AppriseResultStatus.SUCCESS: "success",
    apprise.AppriseResultStatus.TIMEOUT: "timeout",
}
_PROBLEM_LEVELS = ("WARNING", "ERROR", "CRITICAL")


class NotifyConfigError(ClientError):
    """The Apprise configuration cannot be used."""


@dataclass(frozen=True)
class ChannelOutcome:
    """What happened on one channel: success, failure, timeout or skipped, with the provider's reason."""

    channel: str  # Apprise's privacy URL masked again (shown_channel): no password, header or query secret
    service: str
    status: str
    reason: str | None
    attempts: int
    elapsed_ms: float


def read_config(path: Path) -> tuple[str, str | None]:
    """Return an Apprise config file's text and format: yaml by its suffix, else detected from the text."""
    return path.read_text(), "yaml" if path.suffix in (".yaml", ".yml") else None


class Router:
    """An Apprise configuration whose tags route alerts; loaded once, used for many alerts."""

    def __init__(self, config_text: str, source: str, config_format: str | None = None):
        """Load the config text.

        Raises:
            NotifyConfigError: when Apprise finds no notification target in it.
        """
        config = apprise.AppriseConfig()
        config.add_config(config_text, format=config_format)
        self._apprise = apprise.Apprise()
        self._apprise.add(config)
        if len(self._apprise) == 0:
            raise NotifyConfigError(
                f"{source}: Apprise loaded no notification target from it; check its format "
                "(one malformed line in Apprise's text format can drop the whole file)"
            )

    def __len__(self) -> int:
        return len(self._apprise)

    def channels(self, tag: str) -> list[str]:
        """Return the channels a tag reaches, as `shown_channel` writes them."""
        return [shown_channel(service) for service in self._apprise.find(tag=tag, match_always=False)]

    async def send(
        self,
        *,
        tag: str,
        title: str,
        body: str,
        notify_type: str,
        down_kinds: Collection[str] = (),
        timeout: float = 30,
        html: bool = False,
        attachments: Sequence[Path] = (),
    ) -> list[ChannelOutcome]:
        """Send to every channel the tag reaches, skipping those whose gateway is DOWN.

        With `html` the body is HTML (channels that cannot show it get it converted by Apprise);
        `attachments` go to the channels that take files (email, Discord, Telegram); an HTML body's
        `cid:<file name>` images are shown inside the email rather than attached.
        A channel that fails or hangs never delays the others (Apprise sends in parallel) nor raises.
        """
        usable, skipped = apprise.Apprise(), []
        for service in self._apprise.find(tag=tag, match_always=False):
            gateway = CHANNEL_DEPENDS_ON.get(type(service).__name__)
            if gateway in down_kinds:
                skipped.append(
                    ChannelOutcome(
                        shown_channel(service),
                        service.service_name,
                        "skipped",
                        f"{gateway} is DOWN",
                        0,
                        0.0,
                    )
                )
            else:
                if html and "cid:" in body and hasattr(service, "inline"):
                    service.inline = True  # email: images the HTML names by cid: travel as inline parts (RFC 2387)
                usable.add(service)
        if len(usable) == 0:
            return skipped
        result = await usable.async_notify(
            body=body,
            title=title,
            tag=tag,
            match_always=False,
            notify_type=NOTIFY_TYPES.get(notify_type, apprise.NotifyType.INFO),
            timeout=timeout,
            body_format=apprise.NotifyFormat.HTML if html else None,
            attach=apprise.AppriseAttachment([str(path) for path in attachments]) if attachments else None,
        )
        # A result names its channel by the privacy URL only; that finds the service it came from.
        services = {service.url(privacy=True): service for service in reversed(list(usable))}
        return skipped + [_outcome(item, services.get(item.url)) for item in result.results]


def shown_channel(service) -> str:
    """Return a channel's URL as it may be printed, stored and logged.

    Apprise's privacy URL shortens tokens but keeps custom headers and query values in clear,
    so it is masked again, and every secret value of the real URL is masked wherever it shows; the
    phone numbers of WhatsApp channels are masked too.
    """
    shown = mask_secrets(mask_channel_url(service.url(privacy=True)), channel_secrets(service.url(privacy=False)))
    return mask_phone_numbers(shown)


def _outcome(item: apprise.NotifyResult, service) -> ChannelOutcome:
    status, reason = STATUS_NAMES.get(item.status, "failure"), None
    if not item:
        waited = _waited_out(item, service)
        status, reason = ("timeout", f"no answer in {waited:.1f} s") if waited is not None else (status, _reason(item))
    secrets = channel_secrets(service.url(privacy=False)) if service is not None else []
    channel = shown_channel(service) if service is not None else mask_channel_url(item.url)
    return ChannelOutcome(
        channel=channel,
        service=item.name,
        status=status,
        reason=reason and mask_secrets(reason, secrets),
        attempts=len(item.attempts),
        elapsed_ms=item.elapsed * 1000,
    )


def _waited_out(item: apprise.NotifyResult, service) -> float | None:
    """Seconds the last attempt waited before a socket timeout ended it; None when it failed another way."""
    # Apprise reports requests' connect and read timeouts as "A Connection error occurred" (FAILURE) and
    # names the exception only at DEBUG, where tokens show too. A connection error that came only after
    # the channel's whole socket timeout is a timeout; a refused port or a reset fails well before it.
    if service is None or not item.attempts or item.status == apprise.AppriseResultStatus.TIMEOUT:
        return None
    last = item.attempts[-1]
    connection_error = any("connection error" in entry.message.lower() for entry in last.logs if entry.level in _PROBLEM_LEVELS)
    limit = min(service.socket_connect_timeout, service.socket_read_timeout)
    return last.elapsed if connection_error and last.elapsed >= limit else None


def _reason(item: apprise.NotifyResult) -> str:
    messages = [entry.message for entry in item.logs() if entry.level in _PROBLEM_LEVELS]
    return messages[-1] if messages else item.status.name.lower()
