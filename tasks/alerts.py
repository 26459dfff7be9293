"""Raising alerts: claim, hold or send through Apprise, and store every delivery; never fails a flow."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prefect import get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from blocks.alert_routes import AlertRoutes
from blocks.vigia import VigiaSettings
from clients.notify import SEVERITIES, Router
from clients.redaction import mask_secrets
from store.alerts import Alert, Delivery, claim_alert_key, record_alert, record_deliveries
from store.database import Session, open_session
from store.states import down_kinds
from tasks.messages import Links

_warned_no_channels = False
_OUTCOME_WORDS = {"success": "sent", "timeout": "timed out"}


@dataclass(frozen=True)
class AlertContext:
    """What sending alerts needs: the store, the routes, where links point, and which gateways are DOWN."""

    database_url: str
    router: Router | None
    routes: AlertRoutes
    links: Links
    run_id: str | None = None
    down_kinds: frozenset[str] = field(default_factory=frozenset)
    zone: str = "UTC"  # VIGIA_TIMEZONE: the times alerts show


@dataclass(frozen=True)
class AlertSpec:
    """One alert to raise: its once-only key (with cooldown), texts, and what it is about."""

    key: str
    kind: str
    severity: str
    title: str
    body: str
    cooldown: timedelta | None = None  # None: once ever for this key
    clock_started: bool = False  # True: the key is due only once something started its clock
    target: str | None = None
    incident_id: int | None = None
    held_reason: str | None = None
    html: bool = False  # the body is HTML (reports)
    attachments: tuple[Path, ...] = ()  # files for the channels that take them (charts, CSVs)


async def load_alert_context(run_id: str | None = None, settings: VigiaSettings | None = None) -> AlertContext:
    """Build the context from the `default` Blocks (or the settings a flow already loaded) and the store."""
    settings = settings or await VigiaSettings.aload("default")
    routes = await _load_routes()
    database_url = settings.database_url.get_secret_value()
    router = build_router(routes)
    run_link = f"{settings.prefect_ui_url}/runs/flow-run/{run_id}" if run_id else None
    with open_session(database_url) as session:
        down = down_kinds(session)
    return AlertContext(database_url, router, routes, Links(run_link, settings.dashboard_url), run_id, down, settings.timezone)


def build_router(routes: AlertRoutes) -> Router | None:
    """Return the Apprise router of the routes, or None when no channel is configured."""
    if routes.config is None:
        return None
    return Router(routes.config.get_secret_value(), routes.source, routes.config_format)


async def deliver_alert(context: AlertContext, spec: AlertSpec, now: datetime | None = None) -> Alert | None:
    """Raise one alert: None when its key is cooling down; held, logged or sent otherwise.

    A channel failure is stored and logged, never raised.
    """
    with open_session(context.database_url) as session:
        alert = claim_alert(session, context, spec, now or datetime.now(timezone.utc))
    return None if alert is None else await send_alert(context, spec, alert)


def claim_alert(session: Session, context: AlertContext, spec: AlertSpec, now: datetime) -> Alert | None:
    """Claim the alert's key and store it (held, logged or sending) in the caller's transaction; None when cooling down."""
    if spec.severity not in SEVERITIES:
        raise ValueError(f"unknown severity {spec.severity!r}; use one of {', '.join(SEVERITIES)}")
    if spec.held_reason is None and not claim_alert_key(session, spec.key, now, spec.cooldown, create=not spec.clock_started):
        return None
    status = "held" if spec.held_reason else "logged" if context.router is None else "sending"
    return record_alert(
        session,
        key=spec.key,
        kind=spec.kind,
        severity=spec.severity,
        title=spec.title,
        body=spec.body,
        status=status,
        created_at=now,
        target=spec.target,
        incident_id=spec.incident_id,
        held_reason=spec.held_reason,
        run_id=context.run_id,
    )


async def send_alert(context: AlertContext, spec: AlertSpec, alert: Alert) -> Alert:
    """Send a claimed alert through its route (unless held or log-only) and store every delivery."""
    logger = run_logger()
    if spec.held_reason:
        logger.info("%s alert held: %s (%s)", spec.severity, spec.title, spec.held_reason)
        return alert
    if context.router is None:
        _warn_no_channels(logger)
        logger.warning("%s\n%s", spec.title, spec.body)
        return alert
    try:
        outcomes = await context.router.send(
            tag=spec.severity,
            title=spec.title,
            body=spec.body,
            notify_type="resolved" if spec.kind == "resolved" else spec.severity,
            down_kinds=context.down_kinds,
            timeout=context.routes.send_timeout_seconds,
            html=spec.html,
            attachments=spec.attachments,
        )
        deliveries = [Delivery(o.channel, o.service, o.status, o.reason, o.attempts, o.elapsed_ms) for o in outcomes]
    except Exception as error:  # a notification problem must never fail the flow that found the problem
        deliveries = [Delivery("apprise", "Apprise", "failure", mask_secrets(f"{type(error).__name__}: {error}"), 1, 0.0)]
    with open_session(context.database_url) as session:
        alert = replace(alert, status=record_deliveries(session, alert.id, deliveries, datetime.now(timezone.utc)))
    if not deliveries:
        logger.warning("%s alert %r reached no channel: no Apprise target has the tag %r", spec.severity, spec.title, spec.severity)
    for delivery in deliveries:
        detail = f": {delivery.reason}" if delivery.reason else ""
        outcome = _OUTCOME_WORDS.get(delivery.status, delivery.status)
        logger.info("%s %s alert %s in %.1f s%s", delivery.service, spec.severity, outcome, delivery.elapsed_ms / 1000, detail)
    return alert


@task(name="raise-alert", cache_policy=NO_CACHE)
async def raise_alert(
    severity: str,
    title: str,
    body: str,
    *,
    key: str,
    cooldown: timedelta | None = timedelta(minutes=30),
    target: str | None = None,
    html: bool = False,
    attachments: Sequence[Path] = (),
) -> Alert | None:
    """Raise an alert from any flow, at most once per `key` per cooldown; never raises on delivery trouble.

    `html` marks the body as HTML; `attachments` are files sent along where the channel takes them.
    """
    run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    context = await load_alert_context(run_id)
    spec = AlertSpec(
        key=key,
        kind="custom",
        severity=severity,
        title=f"[{severity.upper()}] {title}",
        body=body,
        cooldown=cooldown,
        target=target,
        html=html,
        attachments=tuple(Path(path) for path in attachments),
    )
    return await deliver_alert(context, spec)


async def _load_routes() -> AlertRoutes:
    try:
        return await AlertRoutes.aload("default")
    except ValueError:
        return AlertRoutes()  # not set up yet: alerts go to the log


def _warn_no_channels(logger) -> None:
    global _warned_no_channels
    if not _warned_no_channels:
        logger.warning("NO ALERT CHANNEL IS CONFIGURED: set VIGIA_APPRISE_CONFIG; until then alerts only go to this log")
        _warned_no_channels = True


def run_logger():
    """The run logger inside a flow or task run, this module's logger outside one (the CLI)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
