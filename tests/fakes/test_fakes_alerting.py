"""The alerting fakes (webhook capture, SMTP sink, Evolution sendText) answer real clients: Apprise 2.0.x, httpx, smtplib."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import apprise
import httpx
import pytest
from apprise import AppriseResult, AppriseResultStatus, NotifyResult

from .capture import Captured, CaptureServer
from .evolution import FakeEvolution, SentText
from .server import serve_app
from .smtp import SmtpSink, smtp_sink

EVOLUTION_KEY = "global-key-for-tests"
ALERT_TITLE = "[CRITICAL] Groq API down"
ALERT_BODY = "Groq API failed 3 checks (HTTP 503) for 2m10s"


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer()
    with server.serving():
        yield server


@pytest.fixture
def capture_url(capture: CaptureServer) -> str:
    """`127.0.0.1:PORT` of the running capture server, for building `json://` URLs."""
    assert capture.base_url is not None
    return host_port(capture.base_url)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink(user="alerts", password="smtp-secret") as running:
        yield running


@pytest.fixture
def fake_evolution() -> FakeEvolution:
    return FakeEvolution(
        api_key=EVOLUTION_KEY,
        instances={"ops-bot": "open", "sales-bot": "open", "closed-bot": "close", "cold-bot": None},
        instance_tokens={"sales-bot": "SALES-TOKEN"},
    )


@pytest.fixture
def evolution_url(fake_evolution: FakeEvolution) -> Iterator[str]:
    with serve_app(fake_evolution.app) as base_url:
        yield base_url


@pytest.fixture
def evolution(evolution_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=evolution_url, headers={"apikey": EVOLUTION_KEY}, timeout=5) as client:
        yield client


def host_port(base_url: str) -> str:
    """`http://127.0.0.1:PORT` -> `127.0.0.1:PORT`."""
    return base_url.removeprefix("http://")


def notify(urls: list[str], **kwargs: object) -> AppriseResult:
    """Send one notification through a fresh Apprise instance holding `urls` (each must parse)."""
    apobj = apprise.Apprise()
    for url in urls:
        assert apobj.add(url), f"Apprise did not accept {url}"
    return apobj.notify(**kwargs)


def by_path(result: AppriseResult) -> dict[str, NotifyResult]:
    """Per-target results keyed by the URL path (`/ok/telegram`), from Apprise's privacy URL."""
    return {httpx.URL(target.url.replace("json://", "http://", 1)).path: target for target in result}


def log_lines(target: NotifyResult) -> list[str]:
    return [entry.message for entry in target.logs()]


def path_is(path: str) -> Callable[[Captured], bool]:
    """A `CaptureServer.wait_for` predicate matching one request path."""
    return lambda captured: captured.path == path


def send_text(client: httpx.Client, instance: str = "ops-bot", **body: object) -> httpx.Response:
    return client.post(f"/message/sendText/{instance}", json=body)


# --- capture server with Apprise json:// ------------------------------------------------------


def test_apprise_json_to_ok_path_delivers_title_message_and_type(capture: CaptureServer, capture_url: str) -> None:
    result = notify(
        [f"json://{capture_url}/ok/telegram"],
        title=ALERT_TITLE,
        body=ALERT_BODY,
        notify_type=apprise.NotifyType.FAILURE,
    )

    assert result.status == AppriseResultStatus.SUCCESS
    [arrived] = capture.wait_for(path_is("/ok/telegram"), count=1, timeout=5)
    assert arrived.method == "POST"
    assert arrived.headers["content-type"] == "application/json"
    assert arrived.headers["user-agent"] == "Apprise"
    assert arrived.json == {
        "version": "1.0",
        "title": ALERT_TITLE,
        "message": ALERT_BODY,
        "attachments": [],
        "type": "failure",
    }


def test_apprise_json_adds_headers_fields_query_and_renames_title(capture: CaptureServer, capture_url: str) -> None:
    url = f"json://{capture_url}/ok/discord?+X-Token=hook-secret&:severity=critical&:title=subject&-q=1"

    result = notify([url], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.SUCCESS
    [arrived] = capture.wait_for(path_is("/ok/discord"), count=1, timeout=5)
    assert arrived.query == "q=1"
    assert arrived.headers["x-token"] == "hook-secret"
    assert arrived.json["subject"] == ALERT_TITLE
    assert "title" not in arrived.json
    assert arrived.json["severity"] == "critical"


def test_apprise_reports_the_500_target_as_failure_and_the_ok_target_as_success(capture: CaptureServer, capture_url: str) -> None:
    result = notify([f"json://{capture_url}/ok/telegram", f"json://{capture_url}/fail/discord"], title=ALERT_TITLE, body=ALERT_BODY)

    targets = by_path(result)
    assert result.status == AppriseResultStatus.PARTIAL
    assert targets["/ok/telegram"].status == AppriseResultStatus.SUCCESS
    assert targets["/fail/discord"].status == AppriseResultStatus.FAILURE
    assert any("error=500" in line for line in log_lines(targets["/fail/discord"]))
    # Both targets were really contacted.
    assert {c.path for c in capture.wait_for(count=2, timeout=5)} == {"/ok/telegram", "/fail/discord"}


def test_hanging_target_fails_on_its_read_timeout_while_the_ok_target_arrives_within_a_second(
    capture: CaptureServer, capture_url: str
) -> None:
    apobj = apprise.Apprise()
    assert apobj.add([f"json://{capture_url}/hang/discord?rto=1", f"json://{capture_url}/ok/telegram"])
    started = time.monotonic()  # after add(): the first add() also loads Apprise's plugins

    result = apobj.notify(title=ALERT_TITLE, body=ALERT_BODY)

    targets = by_path(result)
    [ok_arrival] = capture.wait_for(path_is("/ok/telegram"), count=1, timeout=5)
    capture.wait_for(path_is("/hang/discord"), count=1, timeout=5)
    assert ok_arrival.received_at - started < 1.0
    assert targets["/ok/telegram"].status == AppriseResultStatus.SUCCESS
    # Apprise 2.0.1 reports a read timeout as a connection error, i.e. FAILURE (not TIMEOUT).
    assert targets["/hang/discord"].status == AppriseResultStatus.FAILURE
    assert any("Connection error" in line for line in log_lines(targets["/hang/discord"]))
    assert result.status == AppriseResultStatus.PARTIAL


def test_notify_deadline_marks_a_hanging_target_as_timeout(capture: CaptureServer, capture_url: str) -> None:
    result = notify(
        [f"json://{capture_url}/hang/discord?rto=30", f"json://{capture_url}/ok/telegram"],
        title=ALERT_TITLE,
        body=ALERT_BODY,
        timeout=1,
    )

    targets = by_path(result)
    assert targets["/hang/discord"].status == AppriseResultStatus.TIMEOUT
    assert targets["/ok/telegram"].status == AppriseResultStatus.SUCCESS
    assert result.elapsed < 5
    assert len(capture.wait_for(path_is("/ok/telegram"), count=1, timeout=5)) == 1


def test_fail_route_answers_500_with_a_text_body(capture: CaptureServer, capture_url: str) -> None:
    response = httpx.post(f"http://{capture_url}/fail/discord", json={"content": "x"}, timeout=5)

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "simulated failure for discord"
    assert capture.received[0].json == {"content": "x"}


def test_slow_route_answers_after_the_requested_seconds(capture: CaptureServer, capture_url: str) -> None:
    started = time.monotonic()

    response = httpx.post(f"http://{capture_url}/slow/telegram?seconds=0.3", json={}, timeout=5)

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert response.json()["waited_seconds"] >= 0.3


def test_hang_ends_after_hang_seconds_and_does_not_block_other_requests() -> None:
    server = CaptureServer(hang_seconds=1.0)
    with server.serving() as base_url:
        results: dict[str, httpx.Response] = {}
        hanging = threading.Thread(target=lambda: results.update(hang=httpx.post(f"{base_url}/hang/discord", json={}, timeout=5)))
        hanging.start()
        server.wait_for(path_is("/hang/discord"), count=1, timeout=5)

        ok = httpx.post(f"{base_url}/ok/telegram", json={}, timeout=5)

        assert ok.status_code == 200
        assert "hang" not in results  # the hang is still parked while /ok answered
        hanging.join(timeout=5)
    assert results["hang"].status_code == 200
    assert 1.0 <= results["hang"].json()["waited_seconds"] < 3


def test_leaving_serving_releases_a_parked_hang_promptly() -> None:
    server = CaptureServer()  # default hang of 30 s
    results: dict[str, httpx.Response] = {}
    with server.serving() as base_url:
        hanging = threading.Thread(target=lambda: results.update(hang=httpx.post(f"{base_url}/hang/discord", json={}, timeout=10)))
        hanging.start()
        server.wait_for(path_is("/hang/discord"), count=1, timeout=5)
        leaving = time.monotonic()
    hanging.join(timeout=5)

    assert time.monotonic() - leaving < 3
    assert results["hang"].status_code == 200
    assert results["hang"].json()["waited_seconds"] < 3


def test_wait_for_times_out_naming_what_did_arrive(capture: CaptureServer, capture_url: str) -> None:
    httpx.post(f"http://{capture_url}/ok/telegram", json={}, timeout=5)

    with pytest.raises(TimeoutError, match="0 of 1 .*POST /ok/telegram"):
        capture.wait_for(path_is("/ok/discord"), count=1, timeout=0.2)


def test_unknown_path_is_recorded_and_answered_404(capture: CaptureServer, capture_url: str) -> None:
    response = httpx.get(f"http://{capture_url}/nowhere", timeout=5)

    assert response.status_code == 404
    assert [(c.method, c.path) for c in capture.received] == [("GET", "/nowhere")]


# --- SMTP sink with Apprise mailto:// ---------------------------------------------------------


def mailto_url(sink: SmtpSink, password: str = "smtp-secret", extra: str = "&mode=insecure") -> str:
    return f"mailto://{sink.user}:{password}@{sink.host}:{sink.port}?from=alerts@ops.local&to=oncall@ops.local{extra}"


def test_apprise_mailto_delivers_subject_body_and_attachment_to_the_sink(sink: SmtpSink, tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("disk report line 1\n")

    result = notify([mailto_url(sink)], title=ALERT_TITLE, body=ALERT_BODY, attach=str(report))

    assert result.status == AppriseResultStatus.SUCCESS
    [mail] = sink.wait_for(count=1, timeout=5)
    assert mail.mail_from == "alerts@ops.local"
    assert mail.rcpt_tos == ("oncall@ops.local",)
    assert mail.login == "alerts"
    message = mail.message
    assert message["Subject"] == ALERT_TITLE
    assert message["From"] == "alerts@ops.local"
    assert message["To"] == "oncall@ops.local"
    assert message["X-Application"] == "Apprise"
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None and ALERT_BODY in plain.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "report.txt"
    assert attachment.get_content_type() == "text/plain"
    assert attachment.get_payload(decode=True) == b"disk report line 1\n"


def test_apprise_mailto_without_mode_is_plain_smtp_and_without_attach_has_no_attachment(sink: SmtpSink) -> None:
    result = notify([mailto_url(sink, extra="")], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.SUCCESS
    [mail] = sink.wait_for(count=1, timeout=5)
    assert mail.message["Subject"] == ALERT_TITLE
    assert mail.message.get_content_type() == "multipart/alternative"
    assert list(mail.message.iter_attachments()) == []


def test_apprise_mailto_with_a_wrong_password_fails_and_delivers_nothing(sink: SmtpSink) -> None:
    result = notify([mailto_url(sink, password="wrong-secret")], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.FAILURE
    assert sink.messages == []
    assert sink.login_attempts
    assert all(not attempt.accepted and attempt.login == "alerts" for attempt in sink.login_attempts)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_sink_accepts_each_auth_mechanism_over_plain_smtp(sink: SmtpSink, mechanism: str) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        client.ehlo()
        client.user, client.password = sink.user, sink.password
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == 235
        client.sendmail("alerts@ops.local", ["oncall@ops.local"], f"Subject: via {mechanism}\r\n\r\nbody\r\n")

    [mail] = sink.wait_for(count=1, timeout=5)
    assert mail.message["Subject"] == f"via {mechanism}"
    assert sink.login_attempts[-1].mechanism == mechanism


def test_sink_refuses_mail_from_an_unauthenticated_client(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("alerts@ops.local", ["oncall@ops.local"], "Subject: x\r\n\r\nbody\r\n")

    assert refused.value.smtp_code == 530
    assert sink.messages == []


# --- FakeEvolution sendText with Apprise evolution:// -----------------------------------------


def test_apprise_evolution_sends_title_and_body_to_the_number_without_plus(fake_evolution: FakeEvolution, evolution_url: str) -> None:
    url = f"evolution://{EVOLUTION_KEY}@{host_port(evolution_url)}/ops-bot/+5511999990000"

    result = notify([url], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.SUCCESS
    [sent] = fake_evolution.sent
    assert (sent.instance, sent.number, sent.text) == ("ops-bot", "5511999990000", f"{ALERT_TITLE}\r\n{ALERT_BODY}")
    assert sent.remote_jid == "5511999990000@s.whatsapp.net"
    assert (sent.quoted_id, sent.link_preview, sent.delay_ms) == (None, True, 0)
    request = fake_evolution.requests[-1]
    assert (request.method, request.path) == ("POST", "/message/sendText/ops-bot")
    assert request.headers["apikey"] == EVOLUTION_KEY


def test_apprise_evolution_with_a_wrong_apikey_is_failure(fake_evolution: FakeEvolution, evolution_url: str) -> None:
    url = f"evolution://wrong-key@{host_port(evolution_url)}/ops-bot/+5511999990000"

    result = notify([url], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.FAILURE
    [target] = list(result)
    assert any("error=401" in line for line in log_lines(target))
    assert fake_evolution.sent == []


def test_apprise_evolution_fails_when_the_whatsapp_connection_is_closed(fake_evolution: FakeEvolution, evolution_url: str) -> None:
    fake_evolution.send_fails_with = 500
    url = f"evolution://{EVOLUTION_KEY}@{host_port(evolution_url)}/ops-bot/+5511999990000"

    result = notify([url], title=ALERT_TITLE, body=ALERT_BODY)

    assert result.status == AppriseResultStatus.FAILURE
    assert fake_evolution.sent == []


# --- FakeEvolution sendText contract (httpx) --------------------------------------------------


def test_send_text_answers_201_with_a_pending_message_sent_by_us(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    response = send_text(evolution, number="5511987654321", text="Oi, tudo bem?", linkPreview=False)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    record = response.json()
    key = record["key"]
    assert key["remoteJid"] == "5511987654321@s.whatsapp.net"
    assert key["fromMe"] is True
    assert key["id"].startswith("3EB0") and len(key["id"]) == 22
    assert record["status"] == "PENDING"
    assert record["message"] == {"conversation": "Oi, tudo bem?"}
    assert record["messageType"] == "conversation"
    assert abs(record["messageTimestamp"] - time.time()) < 60
    assert fake_evolution.sent == [
        SentText(
            instance="ops-bot",
            number="5511987654321",
            text="Oi, tudo bem?",
            quoted_id=None,
            link_preview=False,
            delay_ms=0,
            remote_jid="5511987654321@s.whatsapp.net",
            message_id=key["id"],
        )
    ]


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        ({"text": "hi"}, ['instance requires property "number"']),
        ({"number": "5511987654321"}, ['instance requires property "text"']),
        ({}, ['instance requires property "number"', 'instance requires property "text"']),
        ({"number": 5511987654321, "text": "hi"}, ["Invalid format"]),
        ({"number": "5511987654321", "text": "hi", "delay": "soon"}, ["Enter a value in milliseconds"]),
    ],
)
def test_send_text_schema_errors_are_400_with_the_messages_nested_in_an_array(
    evolution: httpx.Client, fake_evolution: FakeEvolution, body: dict[str, object], messages: list[str]
) -> None:
    response = evolution.post("/message/sendText/ops-bot", json=body)

    assert response.status_code == 400
    assert response.json() == {"status": 400, "error": "Bad Request", "response": {"message": [messages]}}
    assert fake_evolution.sent == []


def test_send_text_with_blank_text_is_400_text_is_required(evolution: httpx.Client) -> None:
    response = send_text(evolution, number="5511987654321", text="   ")

    assert response.status_code == 400
    assert response.json()["response"] == {"message": ["Text is required"]}


def test_send_text_to_an_unknown_instance_is_404_even_without_apikey(evolution_url: str) -> None:
    response = httpx.post(f"{evolution_url}/message/sendText/ghost", json={"number": "1", "text": "x"}, timeout=5)

    assert response.status_code == 404
    assert response.json()["response"] == {"message": ['The "ghost" instance does not exist']}


@pytest.mark.parametrize("headers", [{}, {"apikey": "wrong-key"}, {"apikey": "SALES-TOKEN"}])
def test_send_text_without_a_valid_key_is_401(evolution_url: str, fake_evolution: FakeEvolution, headers: dict[str, str]) -> None:
    response = httpx.post(
        f"{evolution_url}/message/sendText/ops-bot",
        json={"number": "5511987654321", "text": "x"},
        headers=headers,
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}
    assert fake_evolution.sent == []


def test_send_text_accepts_the_instance_token_on_its_own_instance(evolution_url: str, fake_evolution: FakeEvolution) -> None:
    response = httpx.post(
        f"{evolution_url}/message/sendText/sales-bot",
        json={"number": "5511987654321", "text": "x"},
        headers={"apikey": "SALES-TOKEN"},
        timeout=5,
    )

    assert response.status_code == 201
    assert [sent.instance for sent in fake_evolution.sent] == ["sales-bot"]


def test_send_text_delay_holds_the_response_for_that_many_ms(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    started = time.monotonic()

    response = send_text(evolution, number="5511987654321", text="typing first", delay=400)

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.4
    assert fake_evolution.sent[0].delay_ms == 400


def test_send_text_delay_longer_than_the_client_timeout_times_out(evolution_url: str) -> None:
    with httpx.Client(base_url=evolution_url, headers={"apikey": EVOLUTION_KEY}, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            send_text(client, number="5511987654321", text="slow", delay=3000)


def test_send_text_quotes_a_known_message_and_sends_an_unknown_one_unquoted(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.stored_message_ids.add("3A7F2C9D41B8E05A6C13")
    known = {"key": {"id": "3A7F2C9D41B8E05A6C13", "remoteJid": "5511987654321@s.whatsapp.net", "fromMe": False}}
    unknown = {"key": {"id": "NOT-IN-THE-STORE"}}

    quoting = send_text(evolution, number="5511987654321", text="reply", linkPreview=False, quoted=known)
    unquoted = send_text(evolution, number="5511987654321", text="reply", linkPreview=False, quoted=unknown)

    assert quoting.status_code == unquoted.status_code == 201
    assert quoting.json()["message"]["extendedTextMessage"]["contextInfo"]["stanzaId"] == "3A7F2C9D41B8E05A6C13"
    assert unquoted.json()["message"] == {"conversation": "reply"}
    assert [sent.quoted_id for sent in fake_evolution.sent] == ["3A7F2C9D41B8E05A6C13", None]


def test_send_text_can_quote_a_message_it_sent_earlier(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    first = send_text(evolution, number="5511987654321", text="first").json()["key"]["id"]

    send_text(evolution, number="5511987654321", text="second", quoted={"key": {"id": first}})

    assert fake_evolution.sent[1].quoted_id == first


def test_send_text_previews_links_unless_link_preview_is_false(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    text = "status page: https://status.example.test/groq"

    previewed = send_text(evolution, number="5511987654321", text=text)
    plain = send_text(evolution, number="5511987654321", text=text, linkPreview=False)

    assert previewed.json()["message"]["extendedTextMessage"]["matchedText"] == "https://status.example.test/groq"
    assert plain.json()["message"] == {"conversation": text}
    assert [sent.link_preview for sent in fake_evolution.sent] == [True, False]


@pytest.mark.parametrize(("status", "message"), [(500, "Connection Closed"), (400, ["Error: Connection Closed"])])
def test_send_fails_with_reproduces_the_connection_closed_errors(
    evolution: httpx.Client, fake_evolution: FakeEvolution, status: int, message: object
) -> None:
    fake_evolution.send_fails_with = status

    response = send_text(evolution, number="5511987654321", text="x")

    assert response.status_code == status
    assert response.json()["response"] == {"message": message}
    assert fake_evolution.sent == []


@pytest.mark.parametrize(
    ("instance", "message"),
    [("closed-bot", "Connection Closed"), ("cold-bot", "Cannot read properties of undefined (reading 'textMessage')")],
)
def test_send_text_on_a_closed_or_unloaded_instance_is_500(
    evolution: httpx.Client, fake_evolution: FakeEvolution, instance: str, message: str
) -> None:
    response = send_text(evolution, instance, number="5511987654321", text="x")

    assert response.status_code == 500
    assert response.json() == {"status": 500, "error": "Internal Server Error", "response": {"message": message}}
    assert fake_evolution.sent == []


def test_send_text_to_a_number_not_on_whatsapp_is_400_exists_false(evolution: httpx.Client, fake_evolution: FakeEvolution) -> None:
    fake_evolution.unregistered_numbers.add("5511900000000")

    response = send_text(evolution, number="+55 11 90000-0000", text="x")

    assert response.status_code == 400
    assert response.json()["response"] == {
        "message": [{"jid": "5511900000000@s.whatsapp.net", "exists": False, "number": "+55 11 90000-0000"}]
    }


@pytest.mark.parametrize(
    ("number", "remote_jid"),
    [
        ("+55 (11) 98765-4321", "5511987654321@s.whatsapp.net"),  # punctuation stripped, DDD < 31 keeps the 9
        ("5531987654321", "553187654321@s.whatsapp.net"),  # BR DDD >= 31: the extra 9 is dropped
        ("120363025555555555@g.us", "120363025555555555@g.us"),  # JIDs pass through
    ],
)
def test_send_text_normalises_the_number_like_create_jid(evolution: httpx.Client, number: str, remote_jid: str) -> None:
    response = send_text(evolution, number=number, text="x", linkPreview=False)

    assert response.status_code == 201
    assert response.json()["key"]["remoteJid"] == remote_jid
