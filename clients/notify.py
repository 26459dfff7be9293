"""Apprise: load the routing config, fan an alert out by tag, and report every channel's outcome."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import apprise

from clients.errors import ClientError

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


class NotifyConfigError(ClientError):
    """The Apprise configuration cannot be used."""


@dataclass(frozen=True)
class ChannelOutcome:
    """What happened on one channel: success, failure, timeout or skipped, with the provider's reason."""

    channel: str  # Apprise's privacy URL: secrets shortened or starred
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
        """Return the privacy URLs of the channels a tag reaches."""
        return [service.url(privacy=True) for service in self._apprise.find(tag=tag, match_always=False)]

    async def send(
        self, *, tag: str, title: str, body: str, notify_type: str, down_kinds: Collection[str] = (), timeout: float = 30,
        html: bool = False, attachments: Sequence[Path] = (),
    ) -> list[ChannelOutcome]:
        """Send to every channel the tag reaches, skipping those whose gateway is DOWN.

        With `html` the body is HTML (channels that cannot show it get it converted by Apprise);
        `attachments` go to the channels that take files (email, Discord, Telegram).
        A channel that fails or hangs never delays the others (Apprise sends in parallel) nor raises.
        """
        usable, skipped = apprise.Apprise(), []
        for service in self._apprise.find(tag=tag, match_always=False):
            gateway = CHANNEL_DEPENDS_ON.get(type(service).__name__)
            if gateway in down_kinds:
                skipped.append(ChannelOutcome(
                    service.url(privacy=True), service.service_name, "skipped", f"{gateway} is DOWN", 0, 0.0,
                ))
            else:
                usable.add(service)
        if len(usable) == 0:
            return skipped
        result = await usable.async_notify(
            body=body, title=title, tag=tag, match_always=False, notify_type=NOTIFY_TYPES.get(notify_type, apprise.NotifyType.INFO),
            timeout=timeout, body_format=apprise.NotifyFormat.HTML if html else None,
            attach=apprise.AppriseAttachment([str(path) for path in attachments]) if attachments else None,
        )
        outcomes = [
            ChannelOutcome(
                channel=item.url, service=item.name, status=STATUS_NAMES.get(item.status, "failure"),
                reason=None if item else _reason(item), attempts=len(item.attempts), elapsed_ms=item.elapsed * 1000,
            )
            for item in result.results
        ]
        return skipped + outcomes


def _reason(item: apprise.NotifyResult) -> str:
    messages = [entry.message for entry in item.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    return messages[-1] if messages else item.status.name.lower()
