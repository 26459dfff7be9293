"""Target states and their changes: the state machine of DESIGN §6, safe under overlapping runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.database import open_session
from store.incidents import open_incident, resolve_incident
from store.models import StateChangeRow, TargetStateRow
from store.probes import ProbeResult

State = Literal["UP", "PENDING", "DOWN", "MAINTENANCE"]
FAILING_STATES = ("PENDING", "DOWN")


class ConcurrentUpdate(Exception):
    """Another run changed the target between our read and our write."""


@dataclass(frozen=True)
class TargetState:
    """Where one target stands now."""

    target: str
    kind: str
    critical: bool
    state: State
    level: str
    since: datetime
    failing_since: datetime | None
    last_probe_at: datetime
    reason: str | None
    incident_id: int | None
    version: int


@dataclass(frozen=True)
class StateChange:
    """One stored change of a target's state or level (old is None for a target's first probe)."""

    id: int
    target: str
    old_state: str | None
    new_state: str
    old_level: str | None
    new_level: str
    reason: str | None
    at: datetime
    root_cause: str | None
    incident_id: int | None


def decide(current: TargetState | None, result: ProbeResult, confirm_after: timedelta) -> TargetState:
    """Return the state a probe result moves a target to (pure: no I/O).

    A failure makes an UP target PENDING; it turns DOWN once it has failed continuously for
    `confirm_after`; one success makes it UP again. MAINTENANCE is left as it is.
    """
    if current is None:
        current = TargetState(
            target=result.target,
            kind=result.kind,
            critical=False,
            state="UP",
            level="ok",
            since=result.at,
            failing_since=None,
            last_probe_at=result.at,
            reason=None,
            incident_id=None,
            version=0,
        )
        first = True
    else:
        first = False
    base = replace(current, kind=result.kind, last_probe_at=result.at, level=result.level, reason=result.reason)
    if current.state == "MAINTENANCE":
        return base
    if result.ok:
        if current.state == "UP" and not first:
            return base
        return replace(base, state="UP", since=result.at, failing_since=None)
    failing_since = current.failing_since if current.state in FAILING_STATES and not first else result.at
    if current.state == "DOWN":
        return replace(base, failing_since=failing_since)
    if result.at - failing_since >= confirm_after:
        return replace(base, state="DOWN", since=result.at, failing_since=failing_since)
    if current.state == "PENDING" and not first:
        return replace(base, failing_since=failing_since)
    return replace(base, state="PENDING", since=result.at, failing_since=failing_since)


def read_state(session: Session, target: str) -> TargetState | None:
    """Return one target's current state, or None before its first probe."""
    row = session.get(TargetStateRow, target)
    return None if row is None else _to_state(row)


def read_states(session: Session) -> list[TargetState]:
    """Return every target's current state, by name."""
    return [_to_state(row) for row in session.scalars(select(TargetStateRow).order_by(TargetStateRow.target))]


def down_kinds(session: Session) -> frozenset[str]:
    """Return the kinds of the targets DOWN now (a channel through a DOWN gateway is skipped)."""
    query = select(TargetStateRow.kind).where(TargetStateRow.state == "DOWN").distinct()
    return frozenset(session.scalars(query))


def apply_result(
    session: Session,
    result: ProbeResult,
    *,
    critical: bool,
    confirm_after: timedelta,
    ancestors: Sequence[str] = (),
    run_id: str | None = None,
) -> tuple[TargetState, StateChange | None]:
    """Move a target by one probe result, storing the change and opening or resolving its incident.

    The update is conditional on the version read, so two overlapping runs never both record the
    same transition: the loser gets ConcurrentUpdate and must re-read in a new transaction.

    Raises:
        ConcurrentUpdate: when another run updated the target first.
    """
    current = read_state(session, result.target)
    new = replace(decide(current, result, confirm_after), critical=critical)
    changed = current is None or (new.state, new.level) != (current.state, current.level)
    if new.state == "DOWN" and (current is None or current.state != "DOWN"):
        incident_id = open_incident(
            session,
            result.target,
            critical=critical,
            reason=result.reason or "failed",
            opened_at=new.failing_since or result.at,
            confirmed_at=result.at,
        )
        new = replace(new, incident_id=incident_id)
    elif new.state == "UP" and current is not None and current.incident_id is not None:
        resolve_incident(session, current.incident_id, result.at)
        new = replace(new, incident_id=None)
    new = replace(new, version=(current.version if current else 0) + 1)
    _write_state(session, current, new)
    if not changed:
        return new, None
    root_cause = _failing_ancestor(session, ancestors) if new.state in FAILING_STATES else None
    row = StateChangeRow(
        target=result.target,
        old_state=current.state if current else None,
        new_state=new.state,
        old_level=current.level if current else None,
        new_level=new.level,
        reason=_change_reason(current, new, result),
        at=result.at,
        root_cause=root_cause,
        incident_id=new.incident_id or (current.incident_id if current else None),
        run_id=run_id,
    )
    session.add(row)
    session.flush()
    return new, _to_change(row)


def record_probe(
    url: str,
    result: ProbeResult,
    *,
    critical: bool,
    confirm_after: timedelta,
    ancestors: Sequence[str] = (),
    run_id: str | None = None,
    attempts: int = 5,
) -> tuple[TargetState, StateChange | None]:
    """Apply one probe result in a transaction of its own, re-reading when another run got there first.

    Raises:
        ConcurrentUpdate: when every attempt lost the race (a target updated many times at once).
    """
    for attempt in range(1, attempts + 1):
        try:
            with open_session(url) as session:
                return apply_result(session, result, critical=critical, confirm_after=confirm_after, ancestors=ancestors, run_id=run_id)
        except ConcurrentUpdate:
            if attempt == attempts:
                raise
    raise ValueError("attempts must be at least 1")


def claim_state_changes(session: Session, claimer: str, now: datetime, limit: int = 500) -> list[StateChange]:
    """Claim unprocessed state changes for one consumer; each change is claimed exactly once.

    One conditional UPDATE … RETURNING, like healthchecks' sendalerts: a change another consumer
    claimed first no longer matches `processed_at IS NULL`, so overlapping consumers never
    process the same change twice.
    """
    candidates = select(StateChangeRow.id).where(StateChangeRow.processed_at.is_(None)).order_by(StateChangeRow.id).limit(limit)
    claimed = (
        session.execute(
            update(StateChangeRow)
            .where(StateChangeRow.id.in_(candidates.scalar_subquery()), StateChangeRow.processed_at.is_(None))
            .values(processed_at=now, processed_by=claimer)
            .returning(StateChangeRow)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    return sorted((_to_change(row) for row in claimed), key=lambda change: change.id)


def list_state_changes(session: Session, *, target: str | None = None, since: datetime | None = None) -> list[StateChange]:
    """Return stored state changes, oldest first."""
    query = select(StateChangeRow).order_by(StateChangeRow.at, StateChangeRow.id)
    if target is not None:
        query = query.where(StateChangeRow.target == target)
    if since is not None:
        query = query.where(StateChangeRow.at >= since)
    return [_to_change(row) for row in session.scalars(query)]


def _write_state(session: Session, current: TargetState | None, new: TargetState) -> None:
    values = {
        "kind": new.kind,
        "critical": new.critical,
        "state": new.state,
        "level": new.level,
        "since": new.since,
        "failing_since": new.failing_since,
        "last_probe_at": new.last_probe_at,
        "reason": new.reason,
        "incident_id": new.incident_id,
        "version": new.version,
    }
    if current is None:
        try:
            with session.begin_nested():
                session.add(TargetStateRow(target=new.target, **values))
        except IntegrityError as error:
            raise ConcurrentUpdate(new.target) from error
        return
    outcome = session.execute(
        update(TargetStateRow)
        .where(TargetStateRow.target == new.target, TargetStateRow.version == current.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if outcome.rowcount != 1:
        raise ConcurrentUpdate(new.target)


def _failing_ancestor(session: Session, ancestors: Sequence[str]) -> str | None:
    for name in ancestors:
        state = read_state(session, name)
        if state is not None and state.state in FAILING_STATES:
            return name
    return None


def _change_reason(current: TargetState | None, new: TargetState, result: ProbeResult) -> str | None:
    if new.state == "UP" and current is not None and current.state in FAILING_STATES:
        return f"recovered: {result.reason}" if result.reason else "recovered"
    return result.reason


def _to_state(row: TargetStateRow) -> TargetState:
    return TargetState(
        target=row.target,
        kind=row.kind,
        critical=row.critical,
        state=row.state,
        level=row.level,
        since=row.since,
        failing_since=row.failing_since,
        last_probe_at=row.last_probe_at,
        reason=row.reason,
        incident_id=row.incident_id,
        version=row.version,
    )


def _to_change(row: StateChangeRow) -> StateChange:
    return StateChange(
        id=row.id,
        target=row.target,
        old_state=row.old_state,
        new_state=row.new_state,
        old_level=row.old_level,
        new_level=row.new_level,
        reason=row.reason,
        at=row.at,
        root_cause=row.root_cause,
        incident_id=row.incident_id,
    )
