"""SQLAlchemy models of the store; the schema itself changes only through migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.database import UtcDateTime

# BIGINT ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ProbeResultRow(Base):
    """One probe of one target."""

    __tablename__ = "probe_results"
    __table_args__ = (Index("ix_probe_results_target_at", "target", "at"), Index("ix_probe_results_at", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    level: Mapped[str] = mapped_column(String(10))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))


class IncidentRow(Base):
    """An outage of one target: opened at its first failure, resolved at its first success."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_target_opened", "target", "opened_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    critical: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledge_reason: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TargetStateRow(Base):
    """The current state of one target; `version` guards every update against overlapping runs."""

    __tablename__ = "target_states"

    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    critical: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime] = mapped_column(UtcDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_probe_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    version: Mapped[int] = mapped_column(Integer)


class StateChangeRow(Base):
    """A change of state or level of one target, like healthchecks' Flip; consumed by alerting."""

    __tablename__ = "state_changes"
    __table_args__ = (
        Index("ix_state_changes_target_at", "target", "at"),
        Index("ix_state_changes_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    old_state: Mapped[str | None] = mapped_column(String(12))
    new_state: Mapped[str] = mapped_column(String(12))
    old_level: Mapped[str | None] = mapped_column(String(10))
    new_level: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    root_cause: Mapped[str | None] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    run_id: Mapped[str | None] = mapped_column(String(36))
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    processed_by: Mapped[str | None] = mapped_column(String(64))


class HealthRunRow(Base):
    """A completed health-check run, for `/health` freshness and the run history."""

    __tablename__ = "health_runs"
    __table_args__ = (Index("ix_health_runs_finished_at", "finished_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime())
    targets_total: Mapped[int] = mapped_column(Integer)
    targets_down: Mapped[int] = mapped_column(Integer)


class SilenceRow(Base):
    """A maintenance window: notifications for the target are held and the time is MAINTENANCE."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_target_ends", "target", "ends_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(Text)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AlertRow(Base):
    """One alert raised: sent, held back (silence, inhibition) or only logged."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_created_at", "created_at"), Index("ix_alerts_incident", "incident_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    status: Mapped[str] = mapped_column(String(10))
    held_reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeliveryRow(Base):
    """One delivery attempt of an alert to one Apprise target (privacy URL only, never a secret)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_alert", "alert_id"), Index("ix_deliveries_at", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    channel: Mapped[str] = mapped_column(Text)
    service: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    elapsed_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertKeyRow(Base):
    """When an alert key last fired: the atomic claim behind once-only alerts and cooldowns."""

    __tablename__ = "alert_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())
