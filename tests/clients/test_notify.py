"""The Apprise router against real loopback channels: what it reports per channel, and what it never shows."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.notify import SEVERITIES, ChannelOutcome, Router
from tests.fakes.capture import CaptureServer
from tests.fakes.server import LOOPBACK_HOST, free_port

EXAMPLE_CONFIG = Path(__file__).parents[2] / "alerts.example.yaml"
# The placeholders alerts.example.yaml puts where each channel's secret goes.
EXAMPLE_SECRETS = ("AAE-bot-token-here", "webhook_token", "app-password", "EVOLUTION_API_KEY")
HEADER_SECRET = "SuperSecretHeader"
QUERY_SECRET = "QuerySecret42"
FIELD_SECRET = "PayloadSecret7"


@pytest.fixture
def mute_port() -> Iterator[int]:
    """A loopback port that accepts every TCP connection and never sends a byte back."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK_HOST, 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept_forever() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the test is over
            accepted.append(connection)

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
        thread.join(timeout=5)


def send(router: Router, tag: str = "critical") -> list[ChannelOutcome]:
    return asyncio.run(router.send(tag=tag, title="[CRITICAL] api is DOWN", body="connection refused", notify_type=tag))


def single_channel(url: str) -> Router:
    return Router(f"urls:\n  - {url}:\n      - tag: critical\n", "test routes", "yaml")


def test_every_channel_of_the_example_config_is_shown_without_its_secret() -> None:
    router = Router(EXAMPLE_CONFIG.read_text(), str(EXAMPLE_CONFIG), "yaml")

    shown = "\n".join(channel for tag in SEVERITIES for channel in router.channels(tag))

    assert {channel.split("://")[0] for channel in shown.splitlines()} == {"tgram", "discord", "mailtos", "evolutions"}
    for secret in EXAMPLE_SECRETS:
        assert secret not in shown


def test_the_commented_whatsapp_form_of_the_example_is_shown_without_its_token() -> None:
    router = single_channel("whatsapp://EAAGm0PX4ZCpsBA@109876543210987/+5511999990000")

    [shown] = router.channels("critical")

    assert shown.startswith("whatsapp://") and "EAAGm0PX4ZCpsBA" not in shown


@pytest.mark.parametrize("scheme", ["json", "form", "xml"])
def test_custom_headers_query_params_and_fields_never_show_in_a_channel_url(scheme: str) -> None:
    router = single_channel(f"{scheme}://127.0.0.1:9/hook?+X-Token={HEADER_SECRET}&-token={QUERY_SECRET}&:apikey={FIELD_SECRET}")

    [shown] = router.channels("critical")

    assert shown.startswith(f"{scheme}://127.0.0.1:9/hook?")
    assert "X-Token=***" in shown
    for secret in (HEADER_SECRET, QUERY_SECRET, FIELD_SECRET):
        assert secret not in shown


def test_a_delivery_outcome_names_its_channel_without_header_or_query_secrets_and_still_sends_them() -> None:
    capture = CaptureServer()
    with capture.serving() as base:
        host = base.removeprefix("http://")
        router = single_channel(f"json://{host}/ok/chat?+X-Token={HEADER_SECRET}&-token={QUERY_SECRET}")
        [outcome] = send(router)
        [arrived] = capture.wait_for(count=1)

    assert (outcome.status, outcome.reason) == ("success", None)
    assert HEADER_SECRET not in outcome.channel and QUERY_SECRET not in outcome.channel
    assert arrived.headers["x-token"] == HEADER_SECRET and arrived.query == f"token={QUERY_SECRET}"


def test_a_channel_that_accepts_and_never_answers_is_a_timeout_with_the_time_waited(mute_port: int) -> None:
    router = single_channel(f"json://{LOOPBACK_HOST}:{mute_port}/hook?rto=1")

    [outcome] = send(router)

    assert (outcome.service, outcome.status) == ("JSON", "timeout")
    assert 1000 <= outcome.elapsed_ms < 3000
    assert re.fullmatch(r"no answer in 1\.\d s", outcome.reason)


def test_a_refused_channel_stays_a_failure_with_apprise_reason() -> None:
    router = single_channel(f"json://{LOOPBACK_HOST}:{free_port()}/hook?rto=1")

    [outcome] = send(router)

    assert outcome.status == "failure"
    assert outcome.reason == f"A Connection error occurred sending JSON notification to {LOOPBACK_HOST}."


def test_a_channel_that_answers_500_stays_a_failure_not_a_timeout() -> None:
    capture = CaptureServer()
    with capture.serving() as base:
        router = single_channel(f"json://{base.removeprefix('http://')}/fail/chat?rto=2")
        [outcome] = send(router)

    assert outcome.status == "failure" and "500" in outcome.reason


def test_the_phone_number_a_whatsapp_channel_sends_to_is_masked_where_the_channel_is_shown() -> None:
    router = single_channel("evolution://KEY123@127.0.0.1:8080/bot/5511987654321")

    [shown] = router.channels("critical")

    assert "5511987654321" not in shown and "5511*******21" in shown and "KEY123" not in shown
