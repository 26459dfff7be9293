"""Alerts raised, their deliveries per channel, and the once-only and cooldown claims behind them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import AlertKeyRow, AlertRow, DeliveryRow


@dataclass(frozen=True)
class Alert:
    """One alert as stored."""

    id: int
    key: str
    kind: str
    severity: str
    title: str
    body: str
    target: str | None
    incident_id: int | None
    status: str
    held_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    """One delivery of an alert to one channel: success, failure, timeout or skipped."""

    channel: str
    service: str
    status: str
    reason: str | None
    attempts: int
    elapsed_ms: float


def claim_alert_key(session: Session, key: str, now: datetime, cooldown: timedelta | None, *, create: bool = True) -> bool:
    """Claim the right to fire `key` now; False when it fired within the cooldown (None: ever).

    A conditional UPDATE (or the primary key on first use) makes the claim atomic across runs.
    With `create=False` a key that never fired is not due: its clock has not started.
    """
    if cooldown is None:
        try:
            with session.begin_nested():
                session.add(AlertKeyRow(key=key, last_at=now))
        except IntegrityError:
            return False
        return True
    outcome = session.execute(
        update(AlertKeyRow)
        .where(AlertKeyRow.key == key, AlertKeyRow.last_at <= now - cooldown)
        .values(last_at=now)
        .execution_options(synchronize_session=False)
    )
    if outcome.rowcount == 1:
        return True
    if not create or session.get(AlertKeyRow, key) is not None:
        return False
    return claim_alert_key(session, key, now, None)


def record_alert(
    session: Session,
    *,
    key: str,
    kind: str,
    severity: str,
    title: str,
    body: str,
    status: str,
    created_at: datetime,
    target: str | None = None,
    incident_id: int | None = None,
    held_reason: str | None = None,
    run_id: str | None = None,
) -> Alert:
    """Store an alert and return it."""
    row = AlertRow(
        key=key,
        kind=kind,
        severity=severity,
        title=title,
        body=body,
        target=target,
        incident_id=incident_id,
        status=status,
        held_reason=held_reason,
        run_id=run_id,
        created_at=created_at,
    )
    session.add(row)
    session.flush()
    return _to_alert(row)


def record_deliveries(session: Session, alert_id: int, deliveries: Iterable[Delivery], at: datetime) -> str:
    """Store the deliveries of one alert, set its status from them (sent, partial, failed) and return it."""
    rows = [
        {
            "alert_id": alert_id,
            "channel": d.channel,
            "service": d.service,
            "status": d.status,
            "reason": d.reason,
            "attempts": d.attempts,
            "elapsed_ms": d.elapsed_ms,
            "at": at,
        }
        for d in deliveries
    ]
    if rows:
        session.execute(insert(DeliveryRow), rows)
    attempted = [row["status"] for row in rows if row["status"] != "skipped"]
    succeeded = attempted.count("success")
    status = "sent" if attempted and succeeded == len(attempted) else "partial" if succeeded else "failed"
    session.execute(update(AlertRow).where(AlertRow.id == alert_id).values(status=status))
    return status


def list_alerts(session: Session, *, since: datetime | None = None, incident_id: int | None = None) -> list[Alert]:
    """Return stored alerts, oldest first."""
    query = select(AlertRow).order_by(AlertRow.id)
    if since is not None:
        query = query.where(AlertRow.created_at >= since)
    if incident_id is not None:
        query = query.where(AlertRow.incident_id == incident_id)
    return [_to_alert(row) for row in session.scalars(query)]


def list_deliveries(session: Session, alert_id: int) -> list[Delivery]:
    """Return the deliveries of one alert."""
    rows = session.scalars(select(DeliveryRow).where(DeliveryRow.alert_id == alert_id).order_by(DeliveryRow.id))
    return [Delivery(r.channel, r.service, r.status, r.reason, r.attempts, r.elapsed_ms) for r in rows]


def down_alert_sent(session: Session, incident_id: int) -> bool:
    """Whether the DOWN alert of an incident went out (so its resolution must too)."""
    query = select(AlertRow.id).where(
        AlertRow.incident_id == incident_id, AlertRow.kind == "down", AlertRow.status.in_(("sent", "partial", "failed", "logged"))
    )
    return session.scalar(query.limit(1)) is not None


def _to_alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        key=row.key,
        kind=row.kind,
        severity=row.severity,
        title=row.title,
        body=row.body,
        target=row.target,
        incident_id=row.incident_id,
        status=row.status,
        held_reason=row.held_reason,
        created_at=row.created_at,
    )


@dataclass(frozen=True)
class ChannelDeliveries:
    """Delivery attempts to one channel in a window, by outcome."""

    service: str
    channel: str  # Apprise's privacy URL: never a secret
    success: int
    failure: int
    timeout: int
    skipped: int

    @property
    def total(self) -> int:
        """Every delivery attempt counted, skipped ones included."""
        return self.success + self.failure + self.timeout + self.skipped


@dataclass(frozen=True)
class DeliveryProblem:
    """One delivery that did not succeed: failed, timed out or skipped, with the provider's reason."""

    at: datetime
    alert_title: str
    service: str
    channel: str
    status: str
    reason: str | None
    attempts: int


def alerts_between(session: Session, start: datetime, end: datetime, *, limit: int = 500) -> list[Alert]:
    """Return the alerts raised in [start, end), newest first, at most `limit`."""
    query = (
        select(AlertRow)
        .where(AlertRow.created_at >= start, AlertRow.created_at < end)
        .order_by(AlertRow.created_at.desc(), AlertRow.id.desc())
        .limit(limit)
    )
    return [_to_alert(row) for row in session.scalars(query)]


def count_alerts_by_severity(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Return how many alerts of each severity were raised in [start, end)."""
    rows = session.execute(
        select(AlertRow.severity, func.count()).where(AlertRow.created_at >= start, AlertRow.created_at < end).group_by(AlertRow.severity)
    )
    return {severity: count for severity, count in rows}


def deliveries_by_channel(session: Session, start: datetime, end: datetime) -> list[ChannelDeliveries]:
    """Return per channel how many deliveries in [start, end) succeeded, failed, timed out or were skipped."""
    rows = session.execute(
        select(DeliveryRow.service, DeliveryRow.channel, DeliveryRow.status, func.count())
        .where(DeliveryRow.at >= start, DeliveryRow.at < end)
        .group_by(DeliveryRow.service, DeliveryRow.channel, DeliveryRow.status)
    ).all()
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for service, channel, status, count in rows:
        counts.setdefault((service, channel), {})[status] = count
    return [
        ChannelDeliveries(service, channel, by.get("success", 0), by.get("failure", 0), by.get("timeout", 0), by.get("skipped", 0))
        for (service, channel), by in sorted(counts.items())
    ]


def delivery_problems(session: Session, start: datetime, end: datetime, *, limit: int = 200) -> list[DeliveryProblem]:
    """Return the deliveries in [start, end) that did not succeed, newest first, at most `limit`."""
    rows = session.execute(
        select(DeliveryRow, AlertRow.title)
        .join(AlertRow, AlertRow.id == DeliveryRow.alert_id)
        .where(DeliveryRow.at >= start, DeliveryRow.at < end, DeliveryRow.status != "success")
        .order_by(DeliveryRow.at.desc(), DeliveryRow.id.desc())
        .limit(limit)
    ).all()
    return [DeliveryProblem(d.at, title, d.service, d.channel, d.status, d.reason, d.attempts) for d, title in rows]
