"""Whatever order and batches a chat's messages arrive in, each customer message is paired with its next answer and its previous message."""

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from store.conversations import NewMessage, insert_messages
from store.database import open_session
from store.models import ConversationMessageRow

T0 = datetime(2026, 11, 16, 12, 0, tzinfo=timezone.utc)

# (chat, direction, seconds after T0): few chats and coarse times, so ties and interleavings are common
messages = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(("customer", "customer", "bot", "agent")), st.integers(0, 40)),
    min_size=1,
    max_size=25,
)


def expected_pairing(log: list[tuple[str, str, int]]) -> dict[str, tuple[datetime | None, datetime | None]]:
    """The definition, by brute force: order each chat by (time, number); the next answer after a customer message, and the message before it."""
    pairing = {}
    for number, (chat, direction, seconds) in enumerate(log):
        if direction != "customer":
            continue
        key = (seconds, number)
        same = [(s, n, d) for n, (c, d, s) in enumerate(log) if c == chat]
        answers = [s for s, n, d in same if d != "customer" and (s, n) > key]
        before = [s for s, n, _ in same if (s, n) < key]
        pairing[f"m{number}"] = (
            T0 + timedelta(seconds=min(answers)) if answers else None,
            T0 + timedelta(seconds=max(before)) if before else None,
        )
    return pairing


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=messages, order=st.randoms(use_true_random=False), batch=st.integers(1, 6))
def test_any_arrival_order_and_batching_pairs_as_the_definition_says(sqlite_store_url, log, order, batch):
    # Ids follow arrival; the definition breaks ties of time by arrival too, so number the log in arrival order.
    arrival = list(log)
    order.shuffle(arrival)
    rows = [
        NewMessage("bot", f"m{n}", chat, direction, "text", T0 + timedelta(seconds=s), None)
        for n, (chat, direction, s) in enumerate(arrival)
    ]
    with open_session(sqlite_store_url) as session:
        session.execute(delete(ConversationMessageRow))
        for start in range(0, len(rows), batch):
            insert_messages(session, rows[start : start + batch])
        stored = {
            message_id: (answered, previous)
            for message_id, answered, previous in session.execute(
                select(ConversationMessageRow.message_id, ConversationMessageRow.answered_at, ConversationMessageRow.previous_at).where(
                    ConversationMessageRow.direction == "customer"
                )
            )
        }
    assert stored == expected_pairing(arrival)
