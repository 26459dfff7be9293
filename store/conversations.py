"""How the bot itself is doing, from the metadata of every chat message: volume, its reply time, unanswered customers.

One definition each, used by the report, the dashboard, the CLI and the alert rule:
- A **customer message** is answered by the next message the bot or a human agent sends in that chat;
  its **response time** runs from the customer's message to that answer.
- A **conversation** starts at a customer message after `gap` (default 24 h) without any message in
  the chat; its **first-response time** runs to the first answer after that start (however late).
- A customer message is **unanswered** when no answer came within the target (default 60 s).
- A chat is **waiting** when its last message is the customer's and older than the target.

Chats are keyed hashes (`chat_key`): the same chat always gives the same key, and a key gives no number back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.models import ConversationMessageRow
from store.sla.transcriptions import percentile
from store.timearith import epoch_seconds

DIRECTIONS = ("customer", "bot", "agent")
ANSWERS = ("bot", "agent")
RESPONSE_TARGET = timedelta(seconds=60)
CONVERSATION_GAP = timedelta(hours=24)


@dataclass(frozen=True)
class NewMessage:
    """A message as the receiver records it: no text, no number."""

    instance: str
    message_id: str
    chat: str  # chat_key(jid)
    direction: str
    kind: str
    at: datetime
    reply_to: str | None


@dataclass(frozen=True)
class ConversationFigures:
    """The bot's service over a window."""

    messages_in: int  # from customers
    messages_out: int  # from the bot and human agents
    by_agent: int  # of messages_out, typed by a person on the bot's phone
    active_chats: int  # chats with a customer message
    new_conversations: int
    first_response_p50: float | None  # seconds, per conversation
    first_response_p95: float | None
    response_p50: float | None  # seconds, per customer message answered
    response_p95: float | None
    unanswered: int  # customer messages with no answer within the target
    voice_notes: int  # customer messages that are audio
    target_seconds: float

    @property
    def unanswered_percent(self) -> float | None:
        """Share of customer messages left without an answer within the target."""
        return 100 * self.unanswered / self.messages_in if self.messages_in else None

    @property
    def voice_note_percent(self) -> float | None:
        """Share of customer messages that are voice notes."""
        return 100 * self.voice_notes / self.messages_in if self.messages_in else None


def chat_key(jid: str, key: bytes) -> str:
    """Return the keyed hash a chat is stored under (32 hex characters): stable per key, no way back to the number."""
    return hmac.new(key, jid.encode(), hashlib.sha256).hexdigest()[:32]


def insert_messages(session: Session, messages: list[NewMessage]) -> int:
    """Store messages, skipping any (instance, message id) already stored (Evolution retries); return how many were new."""
    if not messages:
        return 0
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(ConversationMessageRow)
        .values([vars(message) for message in messages])
        .on_conflict_do_nothing(index_elements=["instance", "message_id"])
        .returning(ConversationMessageRow.id)
    )
    return len(session.execute(statement).all())


def conversation_figures(
    session: Session,
    start: datetime,
    end: datetime,
    *,
    target: timedelta = RESPONSE_TARGET,
    gap: timedelta = CONVERSATION_GAP,
    now: datetime | None = None,
) -> ConversationFigures:
    """Return the bot's service in [start, end): volume, new conversations, reply times and unanswered messages.

    Answers up to `target` after `end` still count for messages near the end; a message whose target
    has not passed by `now` is not yet unanswered. The database pairs each customer message with the
    next answer in its chat and the message before it (window functions), so only the customer
    messages of the window travel, as three numbers each.
    """
    now = now or end
    row = ConversationMessageRow
    chat = (row.instance, row.chat)
    order = (row.at, row.id)
    paired = (
        select(
            row.at,
            row.direction,
            row.kind,
            func.min(case((row.direction != "customer", row.at))).over(partition_by=chat, order_by=order, rows=(1, None)).label("answer"),
            func.lag(row.at).over(partition_by=chat, order_by=order).label("previous"),
        )
        .where(row.at >= start - gap, row.at < end + target)
        .subquery()
    )
    asked = session.execute(
        select(
            epoch_seconds(paired.c.answer) - epoch_seconds(paired.c.at),
            epoch_seconds(paired.c.at) - epoch_seconds(paired.c.previous),
            epoch_seconds(paired.c.at),
            paired.c.kind == "audio",
        ).where(paired.c.direction == "customer", paired.c.at >= start, paired.c.at < end)
    ).all()
    inside = (row.at >= start, row.at < end)
    outbound, by_agent = session.execute(
        select(func.count(), func.coalesce(func.sum(case((row.direction == "agent", 1), else_=0)), 0)).where(
            row.direction.in_(ANSWERS), *inside
        )
    ).one()
    active = session.scalar(select(func.count(func.distinct(row.instance + "/" + row.chat))).where(row.direction == "customer", *inside))
    limit, silence, deadline = target.total_seconds(), gap.total_seconds(), now.timestamp() - target.total_seconds()
    responses = sorted(response for response, _, _, _ in asked if response is not None)
    first_responses = sorted(response for response, since, _, _ in asked if response is not None and (since is None or since >= silence))
    unanswered = sum(1 for response, _, at, _ in asked if (response > limit if response is not None else at <= deadline))
    return ConversationFigures(
        messages_in=len(asked),
        messages_out=outbound,
        by_agent=int(by_agent),
        active_chats=active or 0,
        new_conversations=sum(1 for _, since, _, _ in asked if since is None or since >= silence),
        first_response_p50=_quantile(first_responses, 0.50),
        first_response_p95=_quantile(first_responses, 0.95),
        response_p50=_quantile(responses, 0.50),
        response_p95=_quantile(responses, 0.95),
        unanswered=unanswered,
        voice_notes=sum(1 for _, _, _, audio in asked if audio),
        target_seconds=limit,
    )


def chats_waiting(session: Session, now: datetime, *, target: timedelta = RESPONSE_TARGET, gap: timedelta = CONVERSATION_GAP) -> int:
    """Return how many chats wait for an answer now: their last message (within `gap`) is the customer's, older than `target`."""
    last: dict[tuple[str, str], tuple[datetime, str]] = {}
    for chat, messages in _chats(session, now - gap, now).items():
        last[chat] = messages[-1][:2]
    return sum(1 for at, direction in last.values() if direction == "customer" and at + target <= now)


def messages_per_hour(session: Session, start: datetime, end: datetime) -> dict[tuple[datetime, str], int]:
    """Return messages of [start, end) counted per UTC hour and direction (the caller turns hours into local time)."""
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    rows = session.execute(
        select(ConversationMessageRow.at, ConversationMessageRow.direction).where(
            ConversationMessageRow.at >= start, ConversationMessageRow.at < end
        )
    )
    for at, direction in rows:
        counts[(at.replace(minute=0, second=0, microsecond=0), direction)] += 1
    return dict(counts)


def _chats(session: Session, start: datetime, end: datetime) -> dict[tuple[str, str], list[tuple[datetime, str, str]]]:
    rows = session.execute(
        select(
            ConversationMessageRow.instance,
            ConversationMessageRow.chat,
            ConversationMessageRow.at,
            ConversationMessageRow.direction,
            ConversationMessageRow.kind,
        )
        .where(ConversationMessageRow.at >= start, ConversationMessageRow.at < end)
        .order_by(ConversationMessageRow.instance, ConversationMessageRow.chat, ConversationMessageRow.at, ConversationMessageRow.id)
    )
    chats: dict[tuple[str, str], list[tuple[datetime, str, str]]] = defaultdict(list)
    for instance, chat, at, direction, kind in rows:
        chats[(instance, chat)].append((at, direction, kind))
    return chats


def _quantile(ordered: list[float], q: float) -> float | None:
    return percentile(ordered, q) if ordered else None


@dataclass(frozen=True)
class BotSilence:
    """Customers wait while the bot says nothing: since `since`, `waiting` messages are unanswered, the newest at `newest`."""

    since: datetime  # the oldest customer message after the bot's last answer
    newest: datetime
    waiting: int
    last_answer: datetime | None


def bot_silence(session: Session, now: datetime, silent_after: timedelta) -> BotSilence | None:
    """Return the silence when the bot (nor any agent) has answered nobody for `silent_after` while customers keep writing.

    Silent means: the oldest customer message after the last answer anywhere is older than
    `silent_after`, and another arrived within it (one old question in a quiet night is the
    unanswered count's business, not an outage). None otherwise.
    """
    last_answer = session.scalar(
        select(ConversationMessageRow.at)
        .where(ConversationMessageRow.direction.in_(ANSWERS), ConversationMessageRow.at <= now)
        .order_by(ConversationMessageRow.at.desc())
        .limit(1)
    )
    asked = select(ConversationMessageRow.at).where(
        ConversationMessageRow.direction == "customer",
        ConversationMessageRow.at <= now,
        ConversationMessageRow.at > (last_answer or now - 2 * silent_after),
    )
    times = sorted(session.scalars(asked))
    if not times or times[0] > now - silent_after or times[-1] < now - silent_after:
        return None
    return BotSilence(times[0], times[-1], len(times), last_answer)
