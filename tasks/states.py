"""Tasks that store probe results, move target states and record completed runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.health_targets import HealthTargets
from store.database import open_session
from store.health_runs import record_health_run
from store.probe_hours import roll_up_pending_hours
from store.probes import ProbeResult, insert_probe_results
from store.states import StateChange, TargetState, record_probe
from tasks.events import emit_target_change


@dataclass(frozen=True)
class RoundOutcome:
    """The states after one probe round and the changes it stored."""

    states: dict[str, TargetState]
    changes: list[StateChange]


@task(name="record-results", cache_policy=NO_CACHE)
def record_results(
    database_url: str,
    results: Sequence[ProbeResult],
    targets: HealthTargets,
    confirm_after: timedelta,
    run_id: str | None,
) -> RoundOutcome:
    """Store a round of probe results and apply each to its target's state, parents first."""
    logger = get_run_logger()
    with open_session(database_url) as session:
        insert_probe_results(session, results, run_id)
    by_target = {result.target: result for result in results}
    states, changes = {}, []
    for target in targets.ordered():
        result = by_target.get(target.name)
        if result is None:
            continue
        state, change = record_probe(
            database_url,
            result,
            critical=target.critical,
            confirm_after=confirm_after,
            ancestors=targets.ancestors(target.name),
            run_id=run_id,
        )
        states[target.name] = state
        if change is not None:
            changes.append(change)
            emit_target_change(change)
            cause = f" (root cause: {change.root_cause})" if change.root_cause else ""
            logger.info(
                "%s %s → %s%s: %s",
                change.target,
                _label(change.old_state, change.old_level),
                _label(change.new_state, change.new_level),
                cause,
                change.reason or "ok",
            )
    return RoundOutcome(states, changes)


@task(name="record-health-run", cache_policy=NO_CACHE)
def record_run(database_url: str, run_id: str | None, started_at: datetime, finished_at: datetime, states: dict[str, TargetState]) -> None:
    """Record that a health check completed, for `/health` freshness."""
    with open_session(database_url) as session:
        record_health_run(
            session,
            run_id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            targets_total=len(states),
            targets_down=sum(state.state == "DOWN" for state in states.values()),
        )


@task(name="roll-up-hours", cache_policy=NO_CACHE)
def roll_up_probe_hours(database_url: str, now: datetime, max_days: int = 7) -> int:
    """Roll up the complete hours not rolled up yet, a day per transaction, at most `max_days` per call; return how many."""
    total = roll_up_pending_hours(database_url, now, max_days=max_days)
    if total:
        get_run_logger().info("rolled up %d hours of probes", total)
    return total


def _label(state: str | None, level: str | None) -> str:
    if state is None:
        return "new"
    return state if level in (None, "ok", "critical") else f"{state} ({level})"
