"""Alert texts: a title for the email subject and a body that names target, state, since, reason and links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from store.sla.freshness import format_local


@dataclass(frozen=True)
class Links:
    """Where a reader goes next: the Prefect run that saw it and the dashboard."""

    prefect_run: str | None
    dashboard: str | None


def format_duration(length: timedelta) -> str:
    """Return a short human duration: 45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    seconds = int(length.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def compose(severity: str, headline: str, lines: list[str], links: Links) -> tuple[str, str]:
    """Return (title, body): `[SEVERITY] headline` (`[RESOLVED]` for a recovery), then the lines and the links.

    Times in the lines are in VIGIA_TIMEZONE, labelled (`format_local`): 2026-12-05 10:45 -03.
    """
    body = [line for line in lines if line]
    if links.prefect_run:
        body.append(f"Prefect run: {links.prefect_run}")
    if links.dashboard:
        body.append(f"Dashboard: {links.dashboard}")
    return f"[{severity.upper()}] {headline}", "\n".join(body)


def down_text(
    severity: str, target: str, since: datetime, now: datetime, reason: str, children: list[str], links: Links, zone: str
) -> tuple[str, str]:
    """The DOWN alert."""
    return compose(
        severity,
        f"{target} is DOWN",
        [
            f"{target} is DOWN since {format_local(since, zone)} ({format_duration(now - since)}).",
            f"Reason: {reason}",
            f"Also affected (alerts held while {target} is DOWN): {', '.join(children)}" if children else "",
        ],
        links,
    )


def resolved_text(target: str, opened: datetime, resolved: datetime, links: Links, zone: str) -> tuple[str, str]:
    """The recovery, titled as one (`[RESOLVED] api is UP after 2 h 10 min`), with the outage length."""
    outage = format_duration(resolved - opened)
    return compose(
        "resolved",
        f"{target} is UP after {outage}",
        [f"{target} RESOLVED at {format_local(resolved, zone)} after an outage of {outage}."],
        links,
    )


def reminder_text(
    severity: str, target: str, since: datetime, now: datetime, reason: str, incident_id: int, links: Links, zone: str
) -> tuple[str, str]:
    """The reminder while a target stays DOWN unacknowledged."""
    return compose(
        severity,
        f"{target} is still DOWN",
        [
            f"{target} is still DOWN since {format_local(since, zone)} ({format_duration(now - since)}), not acknowledged.",
            f"Reason: {reason}",
            f"Acknowledge: vigia ack {incident_id} --reason '…'",
        ],
        links,
    )


def escalation_text(target: str, since: datetime, now: datetime, reason: str, incident_id: int, links: Links, zone: str) -> tuple[str, str]:
    """The emergency for a critical incident left unacknowledged past the recovery-time SLA."""
    return compose(
        "emergency",
        f"{target} DOWN for {format_duration(now - since)}, nobody has acknowledged",
        [
            f"{target} is DOWN since {format_local(since, zone)}; the 30 min recovery-time SLA is broken.",
            f"Reason: {reason}",
            f"Acknowledge: vigia ack {incident_id} --reason '…'",
        ],
        links,
    )


def total_outage_text(targets: list[str], since: datetime, now: datetime, links: Links, zone: str) -> tuple[str, str]:
    """The emergency when every critical target is DOWN at once."""
    return compose(
        "emergency",
        "every critical target is DOWN",
        [
            f"All critical targets are DOWN: {', '.join(targets)} (the first since {format_local(since, zone)}, {format_duration(now - since)}).",
        ],
        links,
    )


def level_text(severity: str, target: str, reason: str, cleared: bool, links: Links) -> tuple[str, str]:
    """A threshold warning on a target that is up, or its clearing."""
    headline = f"{target} is back within thresholds" if cleared else f"{target} warning"
    return compose(severity, headline, [reason], links)
