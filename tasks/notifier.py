"""The notifier: turn claimed state changes and open incidents into alerts (DESIGN §7)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.health_targets import HealthTargets
from store.alerts import Alert, claim_alert_key, down_alert_sent
from store.database import open_session
from store.incidents import Incident, list_incidents, read_incident
from store.silences import active_silences
from store.sla.freshness import format_local
from store.states import FAILING_STATES, StateChange, TargetState, claim_state_changes, read_states
from tasks import messages
from tasks.alerts import AlertContext, AlertSpec, claim_alert, run_logger, send_alert


@dataclass(frozen=True)
class Situation:
    """Everything the alert rules look at, read once per run."""

    now: datetime
    states: dict[str, TargetState]
    incidents: dict[int, Incident]
    silenced_until: dict[str, datetime]
    targets: HealthTargets
    zone: str = "UTC"

    def severity_of(self, target: str) -> str:
        """critical for a critical target, warning otherwise."""
        state = self.states.get(target)
        return "critical" if state is not None and state.critical else "warning"

    def held_reason(self, target: str) -> str | None:
        """Why the target's new alerts are held back now (a silence, a failing parent), or None."""
        if target in self.silenced_until:
            return f"silenced until {format_local(self.silenced_until[target], self.zone)}"
        for parent in self.targets.ancestors(target):
            state = self.states.get(parent)
            if state is not None and state.state in FAILING_STATES:
                return f"inhibited: {parent} is {state.state}"
        return None

    def failing_children(self, target: str) -> list[str]:
        """Targets that depend on this one and are failing now."""
        return sorted(
            name for name, state in self.states.items() if state.state in FAILING_STATES and target in self.targets.ancestors(name)
        )


@task(name="notify-changes", cache_policy=NO_CACHE)
async def notify_changes(context: AlertContext, targets: HealthTargets, claimer: str) -> list[Alert]:
    """Claim the unprocessed state changes once, alert on them, then remind, escalate and release held alerts."""
    now = datetime.now(timezone.utc)
    # One transaction claims the changes and the alerts they call for, before anything is sent.
    with open_session(context.database_url) as session:
        changes = claim_state_changes(session, claimer, now)
        situation = Situation(
            now=now,
            states={state.target: state for state in read_states(session)},
            incidents={incident.id: incident for incident in list_incidents(session, open_only=True)},
            silenced_until={silence.target: silence.ends_at for silence in active_silences(session, now)},
            targets=targets,
            zone=context.zone,
        )
        claimed = _claim_all(session, context, [a for c in changes if (a := alert_for_change(session, context, situation, c))], now)
    alerts = await _send_all(context, claimed, now)
    # Open incidents are looked at after this run's DOWN alerts went out, so what is due now goes now.
    with open_session(context.database_url) as session:
        claimed = _claim_all(session, context, incident_alerts(session, context, situation), now)
    alerts += await _send_all(context, claimed, now)
    run_logger().info("notifier: %d changes claimed, %d alerts raised", len(changes), len(alerts))
    return alerts


def _claim_all(session, context: AlertContext, specs: list[AlertSpec], now: datetime) -> list[tuple[AlertSpec, Alert]]:
    return [(spec, alert) for spec in specs if (alert := claim_alert(session, context, spec, now)) is not None]


async def _send_all(context: AlertContext, claimed: list[tuple[AlertSpec, Alert]], now: datetime) -> list[Alert]:
    # At once: a channel that hangs on one alert must not hold back the next.
    sent = await asyncio.gather(*(send_alert(context, spec, alert) for spec, alert in claimed))
    downs = [spec.incident_id for (spec, _), alert in zip(claimed, sent) if spec.kind == "down" and alert.status != "held"]
    if downs:
        # The first reminder is due one reminder interval after the DOWN alert, not at the next run.
        with open_session(context.database_url) as session:
            for incident_id in downs:
                claim_alert_key(session, f"reminder:{incident_id}", now, None)
    return list(sent)


def alert_for_change(session, context: AlertContext, situation: Situation, change: StateChange) -> AlertSpec | None:
    """Return the alert a state change calls for: DOWN, RESOLVED, a warning or its clearing; None for the rest."""
    severity = situation.severity_of(change.target)
    links = context.links
    if change.new_state == "DOWN" and change.old_state != "DOWN" and change.incident_id is not None:
        incident = situation.incidents.get(change.incident_id)
        since = incident.opened_at if incident else change.at
        title, body = messages.down_text(
            severity,
            change.target,
            since,
            situation.now,
            change.reason or "failed",
            situation.failing_children(change.target),
            links,
            context.zone,
        )
        return AlertSpec(
            key=f"down:{change.incident_id}",
            kind="down",
            severity=severity,
            title=title,
            body=body,
            target=change.target,
            incident_id=change.incident_id,
            held_reason=situation.held_reason(change.target),
        )
    if change.new_state == "UP" and change.old_state == "DOWN" and change.incident_id is not None:
        if not down_alert_sent(session, change.incident_id):
            return None  # nobody was told it was down: a held alert needs no resolution
        incident = read_incident(session, change.incident_id)
        opened = incident.opened_at if incident else change.at
        title, body = messages.resolved_text(change.target, opened, change.at, links, context.zone)
        # A resolution for an alert that went out is never held back, whatever silences or parents say.
        return AlertSpec(
            key=f"resolved:{change.incident_id}",
            kind="resolved",
            severity=severity,
            title=title,
            body=body,
            target=change.target,
            incident_id=change.incident_id,
        )
    if change.old_state == change.new_state == "UP" and change.old_level != change.new_level:
        cleared = change.new_level == "ok"
        title, body = messages.level_text("info" if cleared else "warning", change.target, change.reason or "", cleared, links)
        return AlertSpec(
            key=f"{'cleared' if cleared else 'warning'}:{change.target}",
            kind="cleared" if cleared else "warning",
            severity="info" if cleared else "warning",
            title=title,
            body=body,
            cooldown=timedelta(minutes=30),
            target=change.target,
            held_reason=situation.held_reason(change.target),
        )
    return None


def incident_alerts(session, context: AlertContext, situation: Situation) -> list[AlertSpec]:
    """Alerts due on open incidents: held DOWNs now free to go, reminders, escalations, total outage."""
    specs = []
    routes, links, now = context.routes, context.links, situation.now
    sent = {incident_id for incident_id in situation.incidents if down_alert_sent(session, incident_id)}
    for incident in situation.incidents.values():
        state = situation.states.get(incident.target)
        if state is None or state.state != "DOWN" or situation.held_reason(incident.target):
            continue
        severity = situation.severity_of(incident.target)
        if incident.id not in sent:
            title, body = messages.down_text(
                severity,
                incident.target,
                incident.opened_at,
                now,
                state.reason or incident.reason,
                situation.failing_children(incident.target),
                links,
                situation.zone,
            )
            specs.append(
                AlertSpec(
                    key=f"down:{incident.id}",
                    kind="down",
                    severity=severity,
                    title=title,
                    body=body,
                    target=incident.target,
                    incident_id=incident.id,
                )
            )
            continue
        if incident.acknowledged_at is not None:
            continue
        title, body = messages.reminder_text(
            severity, incident.target, incident.opened_at, now, state.reason or incident.reason, incident.id, links, situation.zone
        )
        specs.append(
            AlertSpec(
                key=f"reminder:{incident.id}",
                kind="reminder",
                severity=severity,
                title=title,
                body=body,
                cooldown=timedelta(minutes=routes.reminder_minutes),
                clock_started=True,
                target=incident.target,
                incident_id=incident.id,
            )
        )
        if incident.critical and now - incident.opened_at >= timedelta(minutes=routes.escalate_after_minutes):
            title, body = messages.escalation_text(
                incident.target, incident.opened_at, now, state.reason or incident.reason, incident.id, links, situation.zone
            )
            specs.append(
                AlertSpec(
                    key=f"escalation:{incident.id}",
                    kind="escalation",
                    severity="emergency",
                    title=title,
                    body=body,
                    target=incident.target,
                    incident_id=incident.id,
                )
            )
    specs += _total_outage(situation, links)
    return specs


def _total_outage(situation: Situation, links: messages.Links) -> list[AlertSpec]:
    critical = [state for state in situation.states.values() if state.critical]
    # With a single critical target its DOWN alert already says it all; "every" needs two or more.
    if len(critical) < 2 or any(state.state != "DOWN" for state in critical):
        return []
    first = min(critical, key=lambda state: state.failing_since or state.since)
    since = first.failing_since or first.since
    title, body = messages.total_outage_text(sorted(state.target for state in critical), since, situation.now, links, situation.zone)
    # One emergency per outage: the key names the incidents, so a new outage gets a new key.
    incidents = "-".join(str(state.incident_id) for state in sorted(critical, key=lambda s: s.target))
    return [AlertSpec(key=f"all-critical-down:{incidents}", kind="escalation", severity="emergency", title=title, body=body)]
