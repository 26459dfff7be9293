"""Shared arrangements for the alerting tests: loopback channels, a routes config, and stored transitions."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from prefect.logging import disable_run_logger

from blocks.alert_routes import AlertRoutes
from blocks.health_targets import HealthTarget, HealthTargets
from clients.notify import Router
from store.database import open_session
from store.probes import ProbeResult
from store.states import read_state, record_probe
from tasks.alerts import AlertContext
from tasks.messages import Links
from tasks.notifier import notify_changes

EVOLUTION_KEY = "evo-apikey-7f3c9"
CHAT_TOKEN = "chat-token-b81d2e"
SMTP_PASSWORD = "smtp-secret-4c1a"
RUN_LINK = "http://127.0.0.1:4200/runs/flow-run/run-1"
DASHBOARD = "http://127.0.0.1:8501"


def routes_yaml(capture: str, evolution: str | None = None, smtp_port: int | None = None, chat: str = "ok") -> str:
    """An Apprise YAML like alerts.example.yaml, every channel on loopback."""
    host = capture.removeprefix("http://")
    lines = [
        "urls:",
        f"  - json://bot:{CHAT_TOKEN}@{host}/{chat}/telegram:",
        "      - tag: critical, emergency",
        f"  - json://{host}/ok/discord:",
        "      - tag: info, warning, critical, emergency",
    ]
    if evolution:
        lines += [f"  - evolution://{EVOLUTION_KEY}@{evolution.removeprefix('http://')}/ops/+5511999990000:", "      - tag: 0:emergency"]
    if smtp_port:
        lines += [
            f"  - mailto://alerts:{SMTP_PASSWORD}@127.0.0.1:{smtp_port}?from=vigia@ops.local&to=oncall@ops.local&mode=insecure:",
            "      - tag: report",
        ]
    return "\n".join(lines) + "\n"


def alert_context(store_url: str, config: str | None, down_kinds=(), zone: str = "America/Sao_Paulo", **routes) -> AlertContext:
    """An alert context on the store, with the given Apprise config (None: log only), showing times in `zone`."""
    router = Router(config, "test routes", "yaml") if config else None
    return AlertContext(
        store_url,
        router,
        AlertRoutes(config=config, config_format="yaml" if config else None, **routes),
        Links(RUN_LINK, DASHBOARD),
        "run-1",
        frozenset(down_kinds),
        zone,
    )


def targets(*specs: tuple[str, bool, list[str]]) -> HealthTargets:
    """HealthTargets from (name, critical, depends_on) triples, all tcp."""
    return HealthTargets(
        targets=[
            HealthTarget(name=name, kind="tcp", url="127.0.0.1:9", critical=critical, depends_on=parents)
            for name, critical, parents in specs
        ]
    )


def transition(
    store_url: str, target: str, ok: bool, minutes_ago: float, reason: str | None = None, kind: str = "tcp", critical: bool = True
):
    """Store one probe result that moves `target` (DOWN at once on failure)."""
    at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    result = ProbeResult(target, kind, at, ok, "ok" if ok else "critical", reason=reason or ("connected" if ok else "connection refused"))
    return record_probe(store_url, result, critical=critical, confirm_after=timedelta(0))


def notify(context: AlertContext, health_targets: HealthTargets, claimer: str = "run-1"):
    """Run the notifier task's body once, as the health check does."""
    with disable_run_logger():
        return asyncio.run(notify_changes.fn(context, health_targets, claimer))


def incident_of(store_url: str, target: str) -> int:
    """The open incident of a target."""
    with open_session(store_url) as session:
        return read_state(session, target).incident_id
