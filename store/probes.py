"""Probe results: one row per probe of a target."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import insert
from sqlalchemy.orm import Session

from store.models import ProbeResultRow

Level = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of probing one target once; `ok` is False when it failed or crossed a critical threshold."""

    target: str
    kind: str
    at: datetime
    ok: bool
    level: Level
    latency_ms: float | None = None
    value: float | None = None
    reason: str | None = None


def insert_probe_results(session: Session, results: Iterable[ProbeResult], run_id: str | None) -> int:
    """Store a batch of probe results and return how many were stored."""
    rows = [
        {
            "target": result.target,
            "at": result.at,
            "ok": result.ok,
            "level": result.level,
            "latency_ms": result.latency_ms,
            "value": result.value,
            "reason": result.reason,
            "run_id": run_id,
        }
        for result in results
    ]
    if rows:
        session.execute(insert(ProbeResultRow), rows)
    return len(rows)
