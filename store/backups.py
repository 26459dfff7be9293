"""Backup runs, their items, and restores: one row per run, per captured source, per restore."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.models import BackupItemRow, BackupRunRow, RestoreRow

RUN_STATUSES = ("running", "failed", "uploaded", "verified")


@dataclass(frozen=True)
class BackupItem:
    """One source captured by a run: its file, size, checksum, duration and verification."""

    source: str
    kind: str
    file_name: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    seconds: float | None = None
    verified: bool | None = None
    detail: str | None = None


@dataclass(frozen=True)
class BackupRun:
    """One backup run as stored, with its items when read with them."""

    id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    verified: bool
    local_dir: str
    remote: str | None
    size_bytes: int | None
    dump_seconds: float | None
    upload_seconds: float | None
    verify_seconds: float | None
    error: str | None
    flow_run_id: str | None
    local_deleted_at: datetime | None
    remote_deleted_at: datetime | None
    items: tuple[BackupItem, ...] = field(default=())


@dataclass(frozen=True)
class Restore:
    """One restore of one item into a target (masked)."""

    id: int
    run_id: str
    source: str
    target: str
    started_at: datetime
    finished_at: datetime | None
    seconds: float | None
    status: str
    error: str | None


def start_run(session: Session, run_id: str, *, started_at: datetime, local_dir: str, remote: str | None, flow_run_id: str | None) -> None:
    """Store a new run as `running`."""
    session.add(
        BackupRunRow(
            id=run_id,
            started_at=started_at,
            status="running",
            verified=False,
            local_dir=local_dir,
            remote=remote,
            flow_run_id=flow_run_id,
        )
    )


def fail_stale_runs(session: Session, now: datetime, reason: str) -> list[str]:
    """Mark every run still `running` as failed (its process died; the caller holds the lock); return their ids."""
    stale = list(session.scalars(select(BackupRunRow.id).where(BackupRunRow.status == "running")))
    if stale:
        session.execute(update(BackupRunRow).where(BackupRunRow.id.in_(stale)).values(status="failed", finished_at=now, error=reason))
    return stale


def record_item(session: Session, run_id: str, item: BackupItem) -> None:
    """Store or replace one item of a run."""
    session.execute(delete(BackupItemRow).where(BackupItemRow.run_id == run_id, BackupItemRow.source == item.source))
    session.add(BackupItemRow(run_id=run_id, **item.__dict__))


def set_run_status(session: Session, run_id: str, status: str, **values) -> None:
    """Move a run to a status, with any other columns (sizes, durations, error, finished_at, verified)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"unknown backup status {status!r}; use one of {', '.join(RUN_STATUSES)}")
    session.execute(update(BackupRunRow).where(BackupRunRow.id == run_id).values(status=status, **values))


def list_runs(session: Session, limit: int | None = None, *, with_items: bool = False) -> list[BackupRun]:
    """Return runs newest first."""
    query = select(BackupRunRow).order_by(BackupRunRow.started_at.desc())
    if limit:
        query = query.limit(limit)
    rows = list(session.scalars(query))
    items = _items_by_run(session, [row.id for row in rows]) if with_items else {}
    return [_run(row, items.get(row.id, ())) for row in rows]


def get_run(session: Session, run_id: str) -> BackupRun | None:
    """Return one run with its items, or None."""
    row = session.get(BackupRunRow, run_id)
    return None if row is None else _run(row, _items_by_run(session, [run_id]).get(run_id, ()))


def mark_deleted(session: Session, run_ids: Iterable[str], at: datetime, *, local: bool = False, remote: bool = False) -> None:
    """Record that runs' local copies and/or remote folders were deleted by retention."""
    ids = list(run_ids)
    values = {}
    if local:
        values["local_deleted_at"] = at
    if remote:
        values["remote_deleted_at"] = at
    if ids and values:
        session.execute(update(BackupRunRow).where(BackupRunRow.id.in_(ids)).values(**values))


def start_restore(session: Session, *, run_id: str, source: str, target: str, started_at: datetime, flow_run_id: str | None) -> int:
    """Store a restore as `running` and return its id."""
    row = RestoreRow(run_id=run_id, source=source, target=target, started_at=started_at, status="running", flow_run_id=flow_run_id)
    session.add(row)
    session.flush()
    return row.id


def finish_restore(
    session: Session, restore_id: int, *, status: str, finished_at: datetime, seconds: float, error: str | None = None
) -> None:
    """Store how a restore ended: `restored` or `failed`, with its duration."""
    session.execute(
        update(RestoreRow).where(RestoreRow.id == restore_id).values(status=status, finished_at=finished_at, seconds=seconds, error=error)
    )


def list_restores(session: Session, limit: int = 50) -> list[Restore]:
    """Return restores newest first."""
    rows = session.scalars(select(RestoreRow).order_by(RestoreRow.started_at.desc()).limit(limit))
    return [Restore(r.id, r.run_id, r.source, r.target, r.started_at, r.finished_at, r.seconds, r.status, r.error) for r in rows]


def _items_by_run(session: Session, run_ids: list[str]) -> dict[str, tuple[BackupItem, ...]]:
    if not run_ids:
        return {}
    found: dict[str, list[BackupItem]] = {}
    query = select(BackupItemRow).where(BackupItemRow.run_id.in_(run_ids)).order_by(BackupItemRow.id)
    for row in session.scalars(query):
        found.setdefault(row.run_id, []).append(
            BackupItem(
                row.source,
                row.kind,
                row.file_name,
                row.size_bytes,
                row.sha256,
                row.seconds,
                row.verified,
                row.detail,
            )
        )
    return {run_id: tuple(items) for run_id, items in found.items()}


def _run(row: BackupRunRow, items: tuple[BackupItem, ...]) -> BackupRun:
    return BackupRun(
        row.id,
        row.started_at,
        row.finished_at,
        row.status,
        row.verified,
        row.local_dir,
        row.remote,
        row.size_bytes,
        row.dump_seconds,
        row.upload_seconds,
        row.verify_seconds,
        row.error,
        row.flow_run_id,
        row.local_deleted_at,
        row.remote_deleted_at,
        items,
    )
