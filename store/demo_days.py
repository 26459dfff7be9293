"""Demo history one day at a time, for simulating a store that lives for a year (benchmarks/retention_year.py).

`store.demo.seed_history` writes a whole history into an empty store at once; here each call appends one more
day, as the health check and the receiver would have written it: the demo's twenty targets probed every
5 minutes (all UP), a health run per check, and voice notes answered as the demo's are.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from store.demo import PROBE_EVERY, TARGETS, DemoSummary, _insert, _voice_note
from store.models import HealthRunRow, ProbeResultRow, VoiceNoteRow

DAY = timedelta(days=1)


def append_day(session: Session, day: datetime, *, notes: int, rng: random.Random, summary: DemoSummary) -> None:
    """Append the day starting at `day` (UTC): every target's probes, the health runs and `notes` voice notes."""
    checks = [day + step * PROBE_EVERY for step in range(int(DAY / PROBE_EVERY))]
    for name, kind, _, _ in TARGETS:
        latency_base = {"http": 180, "groq": 320, "evolution": 140}.get(kind, 4)
        probes = [
            dict(
                target=name,
                at=at + timedelta(seconds=round(rng.uniform(0, 4), 1)),
                ok=True,
                level="ok",
                latency_ms=round(latency_base * math.exp(rng.gauss(0, 0.35)), 1),
                value=None,
                reason=None,
                run_id=None,
            )
            for at in checks
        ]
        _insert(session, ProbeResultRow, probes, summary)
    runs = [
        dict(run_id=None, started_at=at, finished_at=at + timedelta(seconds=2), targets_total=len(TARGETS), targets_down=0) for at in checks
    ]
    _insert(session, HealthRunRow, runs, summary)
    first = int(day.timestamp() // DAY.total_seconds()) * 100_000  # message ids unique across days
    received = sorted(day + timedelta(seconds=rng.uniform(0, DAY.total_seconds())) for _ in range(notes))
    _insert(session, VoiceNoteRow, [_voice_note(rng, first + index, at) for index, at in enumerate(received)], summary)
