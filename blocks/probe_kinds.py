"""The probe registry's rows: what each probe kind measures, its thresholds and what a target of it must name.

A new kind is one row here and one measure in `tasks.probe_measures.MEASURES`; a test fails when either is
missing. Thresholds are DESIGN §6's two tiers, on the one number the kind's probe measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Gateway = Literal["evolution", "groq"]


@dataclass(frozen=True)
class ProbeKindRow:
    """One probe kind: the number it measures, its default thresholds and the fields a target needs."""

    measures: str  # the number the probe grades, with its unit; "" when it only answers or not
    warning_at: float | None = None
    critical_at: float | None = None
    lower_is_worse: bool = False
    needs_url: bool = False
    needs_dsn: bool = False
    needs_queue_key: bool = False
    gateway: Gateway | None = None  # the gateway Block the probe reads (its URL and key)


PROBE_KINDS: dict[str, ProbeKindRow] = {
    "http": ProbeKindRow("days until the TLS certificate expires", 14.0, 7.0, lower_is_worse=True, needs_url=True),
    "tcp": ProbeKindRow("", needs_url=True),
    "postgres": ProbeKindRow("connections in use, % of max_connections", 80.0, 95.0, needs_dsn=True),
    "redis": ProbeKindRow("memory used, % of maxmemory (when maxmemory is set)", 80.0, 90.0, needs_dsn=True),
    "queue": ProbeKindRow(
        "items waiting (a Redis list or stream, or the store's voice notes)", 100.0, None, needs_dsn=True, needs_queue_key=True
    ),
    "disk": ProbeKindRow("free %", 15.0, 10.0, lower_is_worse=True),
    "memory": ProbeKindRow("used %", 80.0, 90.0),
    "cpu": ProbeKindRow("busy %, since the previous probe", 80.0, 90.0),
    "prefect": ProbeKindRow("workflow error rate % over the last hour", 1.0, 5.0),
    "evolution": ProbeKindRow("", gateway="evolution"),
    "groq": ProbeKindRow("", gateway="groq"),
    "backup": ProbeKindRow("hours since the newest verified backup (the freshness SLA)", None, 26.0, needs_dsn=True),
}
