"""Completed health-check runs, for `/health` freshness."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import HealthRunRow

# The health check's schedule (`*/5 * * * *` in prefect.yaml; a test keeps the two in step).
CHECK_INTERVAL = timedelta(minutes=5)


def record_health_run(
    session: Session, *, run_id: str | None, started_at: datetime, finished_at: datetime, targets_total: int, targets_down: int
) -> None:
    """Store one completed health-check run."""
    session.add(
        HealthRunRow(
            run_id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            targets_total=targets_total,
            targets_down=targets_down,
        )
    )


def last_health_run_finished_at(session: Session) -> datetime | None:
    """Return when the newest completed health check finished, or None if none has."""
    return session.scalar(select(func.max(HealthRunRow.finished_at)))
