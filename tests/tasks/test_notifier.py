"""The notifier against real loopback channels: what goes out, to whom, once, and what is stored."""

import asyncio
import json
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from store.alerts import list_alerts, list_deliveries
from store.database import open_session
from store.incidents import acknowledge_incident
from store.models import AlertKeyRow
from store.probes import ProbeResult
from store.silences import add_silence, remove_silence
from store.states import record_probe
from tasks.alerts import AlertSpec, deliver_alert
from tests.fakes.capture import CaptureServer
from tests.fakes.evolution import FakeEvolution
from tests.fakes.server import serve_app
from tests.fakes.smtp import smtp_sink
from tests.tasks.alerting_setup import (
    CHAT_TOKEN,
    DASHBOARD,
    EVOLUTION_KEY,
    RUN_LINK,
    SMTP_PASSWORD,
    alert_context,
    incident_of,
    notify,
    routes_yaml,
    targets,
    transition,
)


@pytest.fixture
def capture():
    server = CaptureServer(hang_seconds=30)
    with server.serving():
        yield server


def messages_at(capture: CaptureServer, channel: str) -> list[dict]:
    return [c.json for c in capture.received if c.path.endswith(f"/{channel}")]


def test_a_down_reaches_the_critical_channels_with_title_reason_since_and_links(store_url, capture):
    transition(store_url, "api", True, 20)
    transition(store_url, "api", False, 3, reason="connection refused")
    context = alert_context(store_url, routes_yaml(capture.base_url))
    [alert] = notify(context, targets(("api", True, [])))
    capture.wait_for(count=2)
    [telegram] = messages_at(capture, "telegram")
    assert telegram["title"] == "[CRITICAL] api is DOWN"
    lines = telegram["message"].splitlines()
    assert lines[0].startswith("api is DOWN since ") and lines[0].endswith("(3 min).")
    assert re.fullmatch(r"api is DOWN since \d{4}-\d\d-\d\d \d\d:\d\d -03 \(3 min\)\.", lines[0])  # VIGIA_TIMEZONE, labelled
    assert lines[1:] == ["Reason: connection refused", f"Prefect run: {RUN_LINK}", f"Dashboard: {DASHBOARD}"]
    assert [m["title"] for m in messages_at(capture, "discord")] == ["[CRITICAL] api is DOWN"]
    with open_session(store_url) as session:
        deliveries = list_deliveries(session, alert.id)
        [stored] = list_alerts(session)
    assert sorted((d.service, d.status) for d in deliveries) == [("JSON", "success"), ("JSON", "success")]
    assert (stored.kind, stored.severity, stored.status, stored.target) == ("down", "critical", "sent", "api")


def test_recovery_sends_resolved_with_the_outage_length_to_the_same_route(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("api", True, []))
    transition(store_url, "api", False, 20)
    notify(context, health)
    transition(store_url, "api", True, 0)
    notify(context, health)
    capture.wait_for(lambda c: c.path.endswith("/telegram"), count=2)
    resolved = messages_at(capture, "telegram")[1]
    assert resolved["title"] == "[RESOLVED] api is UP after 20 min"  # a recovery reads as one, not as a critical
    assert re.match(r"api RESOLVED at \d{4}-\d\d-\d\d \d\d:\d\d -03 after an outage of 20 min\.", resolved["message"])
    assert resolved["type"] == "success"


def test_a_blip_that_recovers_while_pending_sends_nothing(store_url, capture):
    now = datetime.now(timezone.utc)
    for minutes, ok in ((10, True), (5, False), (4.5, True)):
        result = ProbeResult("api", "tcp", now - timedelta(minutes=minutes), ok, "ok" if ok else "critical", reason="x")
        record_probe(store_url, result, critical=True, confirm_after=timedelta(minutes=2))
    assert notify(alert_context(store_url, routes_yaml(capture.base_url)), targets(("api", True, []))) == []
    assert capture.received == []


def test_a_non_critical_target_down_is_a_warning_for_the_team_chat_only(store_url, capture):
    transition(store_url, "disk-box", False, 1, critical=False)
    notify(alert_context(store_url, routes_yaml(capture.base_url)), targets(("disk-box", False, [])))
    [discord] = capture.wait_for(count=1)
    assert discord.path.endswith("/discord") and discord.json["title"] == "[WARNING] disk-box is DOWN"
    assert messages_at(capture, "telegram") == []


def test_a_reminder_goes_out_every_interval_until_acknowledged(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("api", True, []))
    transition(store_url, "api", False, 5)
    notify(context, health)
    incident = incident_of(store_url, "api")
    notify(context, health)  # too soon for a reminder
    assert [m["title"] for m in messages_at(capture, "telegram")] == ["[CRITICAL] api is DOWN"]
    with open_session(store_url) as session:
        session.get(AlertKeyRow, f"reminder:{incident}").last_at -= timedelta(minutes=31)
    notify(context, health)
    capture.wait_for(lambda c: c.path.endswith("/telegram"), count=2)
    reminder = messages_at(capture, "telegram")[1]
    assert reminder["title"] == "[CRITICAL] api is still DOWN"
    assert f"Acknowledge: vigia ack {incident} --reason '…'" in reminder["message"]
    with open_session(store_url) as session:
        acknowledge_incident(session, incident, "ana is on it", datetime.now(timezone.utc))
        session.get(AlertKeyRow, f"reminder:{incident}").last_at -= timedelta(minutes=31)
    notify(context, health)
    assert len(messages_at(capture, "telegram")) == 2


def test_an_unacknowledged_critical_incident_escalates_to_emergency_once(store_url, capture):
    evolution = FakeEvolution(api_key=EVOLUTION_KEY, instances={"ops": "open"})
    with serve_app(evolution.app) as evolution_url:
        context = alert_context(store_url, routes_yaml(capture.base_url, evolution_url))
        health = targets(("api", True, []), ("db", True, []))
        transition(store_url, "db", True, 40)
        transition(store_url, "api", False, 31)
        notify(context, health)
        notify(context, health)
    escalations = evolution.sent
    assert len(escalations) == 1
    assert escalations[0].number == "5511999990000"
    assert escalations[0].text.startswith("[EMERGENCY] api DOWN for 31 min, nobody has acknowledged")
    assert [m["title"] for m in messages_at(capture, "telegram")] == [
        "[CRITICAL] api is DOWN",
        "[EMERGENCY] api DOWN for 31 min, nobody has acknowledged",
    ]


def test_every_critical_target_down_raises_one_emergency(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("api", True, []), ("db", True, []), ("disk", False, []))
    transition(store_url, "disk", True, 9, critical=False)
    transition(store_url, "api", False, 2)
    transition(store_url, "db", False, 1)
    notify(context, health)
    notify(context, health)
    titles = [m["title"] for m in messages_at(capture, "telegram")]
    assert titles.count("[EMERGENCY] every critical target is DOWN") == 1
    assert sorted(titles) == ["[CRITICAL] api is DOWN", "[CRITICAL] db is DOWN", "[EMERGENCY] every critical target is DOWN"]


def test_a_child_is_held_while_its_parent_is_down_and_the_parent_names_it(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("gateway", True, []), ("bot", True, ["gateway"]), ("db", True, []))
    transition(store_url, "db", True, 9)
    transition(store_url, "gateway", False, 2, reason="instance is close")
    transition(store_url, "bot", False, 2)
    notify(context, health)
    [parent] = messages_at(capture, "telegram")
    assert parent["title"] == "[CRITICAL] gateway is DOWN"
    assert "Also affected (alerts held while gateway is DOWN): bot" in parent["message"]
    with open_session(store_url) as session:
        held = [a for a in list_alerts(session) if a.target == "bot"]
    assert [(a.kind, a.status, a.held_reason) for a in held] == [("down", "held", "inhibited: gateway is DOWN")]
    # The parent recovers, the child does not: now the child's own alert goes out, once.
    transition(store_url, "gateway", True, 0)
    notify(context, health)
    notify(context, health)
    titles = [m["title"] for m in messages_at(capture, "telegram")]
    assert titles == ["[CRITICAL] gateway is DOWN", "[RESOLVED] gateway is UP after 2 min", "[CRITICAL] bot is DOWN"]


def test_a_resolution_of_an_alert_that_went_out_is_never_held(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("gateway", True, []), ("bot", True, ["gateway"]))
    transition(store_url, "bot", False, 10)
    notify(context, health)
    transition(store_url, "gateway", False, 5)
    transition(store_url, "bot", True, 1)
    notify(context, health)
    titles = [m["title"] for m in messages_at(capture, "telegram")]
    # The last two come from one run and go out at once, in either order.
    assert titles[0] == "[CRITICAL] bot is DOWN"
    assert sorted(titles[1:]) == ["[CRITICAL] gateway is DOWN", "[RESOLVED] bot is UP after 9 min"]


def test_a_silenced_target_alerts_nobody_until_the_silence_ends(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(("db", True, []))
    now = datetime.now(timezone.utc)
    with open_session(store_url) as session:
        silence = add_silence(session, "db", now - timedelta(minutes=5), now + timedelta(hours=2), "major upgrade")
    transition(store_url, "db", False, 1)
    notify(context, health)
    assert capture.received == []
    with open_session(store_url) as session:
        remove_silence(session, silence.id, datetime.now(timezone.utc))
    notify(context, health)
    assert [m["title"] for m in messages_at(capture, "telegram")] == ["[CRITICAL] db is DOWN"]


def test_overlapping_notifiers_send_each_transition_exactly_once(store_url, capture):
    context = alert_context(store_url, routes_yaml(capture.base_url))
    health = targets(*((f"svc{n}", n == 0, []) for n in range(6)))
    for n in range(6):
        transition(store_url, f"svc{n}", n % 2 == 0, 2, critical=n == 0)
    barrier, errors = threading.Barrier(3), []

    def run(name: str) -> None:
        try:
            barrier.wait()
            notify(context, health, claimer=name)
        except Exception as error:  # noqa: BLE001 — surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    titles = sorted(m["title"] for m in messages_at(capture, "discord"))
    assert titles == ["[WARNING] svc1 is DOWN", "[WARNING] svc3 is DOWN", "[WARNING] svc5 is DOWN"]


def test_whatsapp_through_a_down_evolution_is_skipped_and_the_next_priority_takes_it(store_url, capture):
    host = capture.base_url.removeprefix("http://")
    config = (
        "urls:\n"
        f"  - evolution://evo-apikey-7f3c9@{host}/ops/+5511999990000:\n      - tag: 0:emergency\n"
        f"  - json://{host}/ok/fallback:\n      - tag: 1:emergency\n"
    )
    context = alert_context(store_url, config, down_kinds={"evolution"})
    alert = asyncio.run(deliver_alert(context, AlertSpec(key="e1", kind="custom", severity="emergency", title="[EMERGENCY] t", body="b")))
    with open_session(store_url) as session:
        deliveries = list_deliveries(session, alert.id)
    assert [(d.service, d.status, d.reason) for d in deliveries] == [
        ("Evolution API", "skipped", "evolution is DOWN"),
        ("JSON", "success", None),
    ]
    assert [c.path for c in capture.received] == ["/ok/fallback"]


def test_a_hanging_channel_delays_no_other_and_is_recorded_as_a_timeout_beside_a_failing_one(store_url, capture):
    host = capture.base_url.removeprefix("http://")
    config = (
        "urls:\n"
        f"  - json://{host}/hang/slowchat?rto=3:\n      - tag: critical\n"
        f"  - json://{host}/fail/brokenchat:\n      - tag: critical\n"
        f"  - json://{host}/ok/goodchat:\n      - tag: critical\n"
    )
    transition(store_url, "api", False, 1)
    started = time.monotonic()
    [alert] = notify(alert_context(store_url, config), targets(("api", True, [])))
    [good] = capture.wait_for(lambda c: c.path == "/ok/goodchat", count=1)
    assert good.received_at - started < 1.0
    with open_session(store_url) as session:
        deliveries = {re.search(r"/(\w+chat)", d.channel).group(1): d for d in list_deliveries(session, alert.id)}
        [stored] = list_alerts(session)
    assert deliveries["goodchat"].status == "success"
    assert deliveries["brokenchat"].status == "failure" and "500" in deliveries["brokenchat"].reason
    assert (deliveries["slowchat"].status, deliveries["slowchat"].elapsed_ms >= 3000) == ("timeout", True)
    assert re.fullmatch(r"no answer in 3\.\d s", deliveries["slowchat"].reason)
    assert stored.status == "partial"


def test_no_secret_reaches_logs_stored_records_or_messages(store_url, capture, caplog):
    caplog.set_level(logging.DEBUG)
    evolution = FakeEvolution(api_key=EVOLUTION_KEY, instances={"ops": "open"})
    with serve_app(evolution.app) as evolution_url, smtp_sink(password=SMTP_PASSWORD) as smtp:
        context = alert_context(store_url, routes_yaml(capture.base_url, evolution_url, smtp.port))
        transition(store_url, "api", False, 40)
        notify(context, targets(("api", True, [])))
        asyncio.run(deliver_alert(context, AlertSpec(key="r", kind="custom", severity="report", title="[REPORT] weekly", body="numbers")))
        [mail] = smtp.wait_for(1)
    assert mail.message["Subject"] == "[REPORT] weekly"
    with open_session(store_url) as session:
        stored = json.dumps(
            [
                [a.__dict__ for a in list_alerts(session)],
                [[d.__dict__ for d in list_deliveries(session, a.id)] for a in list_alerts(session)],
            ],
            default=str,
        )
    sent = json.dumps([c.json for c in capture.received]) + json.dumps([s.text for s in evolution.sent]) + mail.message.as_string()
    for secret in (EVOLUTION_KEY, CHAT_TOKEN, SMTP_PASSWORD):
        assert secret not in caplog.text
        assert secret not in stored
        assert secret not in sent
    assert len(evolution.sent) == 1  # the emergency went out through Evolution, so the key was used
