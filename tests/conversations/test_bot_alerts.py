"""The health check's look at the bot itself: a warning once per silence, and when too many messages go unanswered."""

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from blocks.alert_routes import AlertRoutes
from blocks.vigia import VigiaSettings
from store.alerts import list_alerts
from store.conversations import NewMessage, insert_messages
from store.database import open_session
from tasks.bot_service import check_bot_service

pytestmark = pytest.mark.usefixtures("prefect_server")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=timezone.utc)


def said(number: int, chat: str, direction: str, minutes_ago: float) -> NewMessage:
    return NewMessage("bot", f"m{number}", chat, direction, "text", NOW - timedelta(minutes=minutes_ago), None)


def check(store_url: str, tmp_path, now: datetime = NOW) -> list[str]:
    settings = VigiaSettings(home=str(tmp_path), database_url=store_url, timezone="America/Sao_Paulo", bot_silent_minutes=15)
    settings.save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    return asyncio.run(check_bot_service.fn(settings, now))


def test_a_silent_bot_is_warned_about_once_per_silence(store_url, tmp_path):
    with open_session(store_url) as session:
        insert_messages(
            session,
            [said(1, "a", "customer", 61), said(2, "a", "bot", 60)]
            + [said(10 + n, f"c{n}", "customer", minutes) for n, minutes in enumerate((40, 25, 5))],
        )
    [title] = check(store_url, tmp_path)
    assert title == "the bot has answered nobody for 40 min"
    assert check(store_url, tmp_path, NOW + timedelta(minutes=5)) == []  # the same silence: told once
    with open_session(store_url) as session:
        [alert] = list_alerts(session)
    assert (alert.severity, alert.target) == ("warning", "bot")
    assert "3 customer messages since" in alert.body and " -03" in alert.body  # local time, labelled


def test_a_high_unanswered_share_is_warned_about_once_an_hour(store_url, tmp_path):
    log = []
    for n in range(12):  # twelve chats in the last hour; the bot answers eight within 30 s, four never
        log.append(said(2 * n, f"c{n}", "customer", 50 - 3 * n))
        if n < 8:
            log.append(said(2 * n + 1, f"c{n}", "bot", 50 - 3 * n - 0.5))
    with open_session(store_url) as session:
        insert_messages(session, log)
    titles = check(store_url, tmp_path)
    assert "33 % of the last hour's customer messages went unanswered" in titles
    with open_session(store_url) as session:
        insert_messages(session, [said(100 + n, f"c{n}", "bot", 1) for n in range(8, 12)])  # late answers, over the target
    assert check(store_url, tmp_path, NOW + timedelta(minutes=10)) == []  # within the hour's cooldown
