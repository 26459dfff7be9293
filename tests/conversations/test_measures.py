"""Every conversation measure on a hand-built log with exact answers, on SQLite and PostgreSQL."""

from datetime import datetime, timedelta, timezone

import pytest

from store.conversations import NewMessage, bot_silence, chat_key, chats_waiting, conversation_figures, insert_messages
from store.database import open_session

T0 = datetime(2026, 11, 16, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
KEY = b"k" * 32


def message(number: int, chat: str, direction: str, at: timedelta, kind: str = "text") -> NewMessage:
    return NewMessage("bot", f"m{number}", chat_key(chat, KEY), direction, kind, T0 + at, None)


# (chat, who, when after T0, kind)
LOG = [
    ("a@s.whatsapp.net", "customer", timedelta(hours=-30), "text"),  # before the gap: A's next message starts a conversation
    ("a@s.whatsapp.net", "customer", timedelta(0), "text"),
    ("a@s.whatsapp.net", "customer", timedelta(seconds=10), "audio"),
    ("a@s.whatsapp.net", "bot", timedelta(seconds=40), "text"),  # answers both: 40 s and 30 s
    ("a@s.whatsapp.net", "customer", timedelta(hours=1), "text"),  # same conversation (1 h of silence)
    ("a@s.whatsapp.net", "agent", timedelta(hours=1, seconds=90), "text"),  # a person answers, 90 s: over the 60 s target
    ("b@s.whatsapp.net", "customer", timedelta(hours=-2), "text"),
    ("b@s.whatsapp.net", "bot", timedelta(hours=-2, seconds=5), "text"),
    ("b@s.whatsapp.net", "customer", timedelta(hours=2), "text"),  # not new (4 h since), never answered
    ("c@s.whatsapp.net", "customer", DAY - timedelta(seconds=30), "text"),  # new, near the window's end
    ("c@s.whatsapp.net", "bot", DAY + timedelta(seconds=20), "text"),  # answered after the end, within the target: 50 s
    ("d@g.us", "bot", timedelta(hours=5), "image"),  # the bot speaks first: no response to time
]


@pytest.fixture(params=["at once", "one by one, newest first"])
def log(request, store_url):
    """The log stored in one batch, or message by message in reverse (Evolution retrying out of order): the same figures."""
    messages = [message(n, *entry) for n, entry in enumerate(LOG)]
    with open_session(store_url) as session:
        if request.param == "at once":
            assert insert_messages(session, messages) == len(LOG)
        else:
            assert sum(insert_messages(session, [one]) for one in reversed(messages)) == len(LOG)
    return store_url


def test_the_weeks_figures_are_exact(log):
    with open_session(log) as session:
        figures = conversation_figures(session, T0, T0 + DAY)
    assert (figures.messages_in, figures.messages_out, figures.by_agent) == (5, 3, 1)
    assert (figures.active_chats, figures.new_conversations, figures.voice_notes) == (3, 2, 1)
    assert (figures.response_p50, figures.response_p95) == (45.0, pytest.approx(84.0))  # of 30, 40, 50, 90 s
    assert (figures.first_response_p50, figures.first_response_p95) == (45.0, pytest.approx(49.5))  # of 40 and 50 s
    assert figures.unanswered == 2  # A's answered in 90 s, and B's never
    assert figures.unanswered_percent == 40.0 and figures.voice_note_percent == 20.0


def test_a_message_whose_target_has_not_passed_is_not_yet_unanswered(log):
    with open_session(log) as session:
        early = conversation_figures(session, T0, T0 + DAY, now=T0 + timedelta(hours=2, seconds=30))
    assert early.unanswered == 1  # B asked 30 s ago: still within the target


def test_chats_waiting_now(log):
    with open_session(log) as session:
        assert chats_waiting(session, T0 + DAY) == 1  # B; C's question is 30 s old
        assert chats_waiting(session, T0 + DAY + timedelta(seconds=40)) == 1  # C's answer came at +20 s


def test_the_bot_is_silent_only_when_customers_keep_writing_past_the_limit_unanswered(store_url):
    quarter = timedelta(minutes=15)
    episode = [
        message(1, "a@s.whatsapp.net", "bot", timedelta(0)),
        message(2, "b@s.whatsapp.net", "customer", timedelta(minutes=2)),
        message(3, "c@s.whatsapp.net", "customer", timedelta(minutes=14)),
        message(4, "d@s.whatsapp.net", "customer", timedelta(minutes=20)),
    ]
    with open_session(store_url) as session:
        insert_messages(session, episode)
        assert bot_silence(session, T0 + timedelta(minutes=16), quarter) is None  # B waits 14 min: not yet
        silent = bot_silence(session, T0 + timedelta(minutes=25), quarter)
        assert (silent.since, silent.newest, silent.waiting, silent.last_answer) == (
            T0 + timedelta(minutes=2),
            T0 + timedelta(minutes=20),
            3,
            T0,
        )
        assert bot_silence(session, T0 + timedelta(minutes=40), quarter) is None  # nobody wrote in the last 15 min
        insert_messages(session, [message(5, "b@s.whatsapp.net", "bot", timedelta(minutes=26))])
        assert bot_silence(session, T0 + timedelta(minutes=27), quarter) is None  # the bot answered


def test_a_message_delivered_again_is_stored_once(log):
    with open_session(log) as session:
        assert insert_messages(session, [message(0, *LOG[0]), message(99, "e@s.whatsapp.net", "customer", timedelta(hours=3))]) == 1


def test_a_chat_key_is_stable_per_key_and_holds_no_number():
    first, again, other = (
        chat_key("5511912345678@s.whatsapp.net", KEY),
        chat_key("5511912345678@s.whatsapp.net", KEY),
        chat_key("5511912345678@s.whatsapp.net", b"another key"),
    )
    assert first == again != other and len(first) == 32 and "5511912345678" not in first
