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
from datetime import datetime, timedelta, timezone

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, literal_column, or_, select, union, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.database import UtcDateTime
from store.models import ConversationMessageRow
from store.sla.transcriptions import percentile
from store.timearith import seconds_between

DIRECTIONS = ("customer", "bot", "agent")
ANSWERS = ("bot", "agent")
RESPONSE_TARGET = timedelta(seconds=60)
CONVERSATION_GAP = timedelta(hours=24)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
    """Store messages, skipping any (instance, message id) already stored (Evolution retries), and pair their chats; return how many were new."""
    if not messages:
        return 0
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # One statement for any number of rows (SQLAlchemy batches the rows itself): compiled once, not once per batch size.
    statement = (
        insert(ConversationMessageRow.__table__)
        .on_conflict_do_nothing(index_elements=["instance", "message_id"])
        .returning(ConversationMessageRow.__table__.c.id)
    )
    stored = [new_id for (new_id,) in session.execute(statement, [vars(message) for message in messages])]
    if stored:
        _pair(session, _touched_by(stored))
    return len(stored)


def pair_messages(session: Session, since: datetime) -> None:
    """Pair the customer messages of every chat that messages from `since` on may have changed (after a bulk load)."""
    row = ConversationMessageRow.__table__
    _pair(session, or_(row.c.at >= since, row.c.answered_at.is_(None), row.c.answered_at >= since))


def _touched_by(new_ids: list[int]) -> ColumnElement[bool]:
    """The customer messages whose pairing new messages may change, found from those messages by the (instance, chat, at) index.

    - the new customer messages themselves;
    - for a new answer, the customer messages from the chat's answer before it up to it (it may be their next answer);
    - for any new message, the message right after it, if it is a customer's (the new one arrived late: it is now its previous).
    """
    table = ConversationMessageRow.__table__
    new, other, answer = table.alias("new"), table.alias("other"), table.alias("answer")
    chat = and_(other.c.instance == new.c.instance, other.c.chat == new.c.chat)
    answer_before = (
        select(answer.c.at)
        .where(answer.c.instance == new.c.instance, answer.c.chat == new.c.chat, _is_answer(answer), answer.c.at < new.c.at)
        .order_by(answer.c.at.desc())
        .limit(1)
        .scalar_subquery()
    )
    themselves = select(new.c.id).where(new.c.id.in_(new_ids), new.c.direction == "customer")
    answered = (
        select(other.c.id)
        .join(new, chat)
        .where(
            new.c.id.in_(new_ids),
            new.c.direction != "customer",
            other.c.direction == "customer",
            other.c.at <= new.c.at,
            other.c.at >= func.coalesce(answer_before, literal(EPOCH, UtcDateTime())),  # a bound the index can use
        )
    )
    successor = (  # the message right after a new one: only it can have the new one as its previous message
        select(other.c.id).where(chat, *_after(other, new)).order_by(other.c.at, other.c.id).limit(1).scalar_subquery()
    )
    following = select(successor).where(new.c.id.in_(new_ids))
    return table.c.id.in_(union(themselves, answered, following))


def _pair(session: Session, which: ColumnElement[bool]) -> None:
    """Pair the customer messages `which` selects with the next answer in their chat and the message before them."""
    row = ConversationMessageRow.__table__
    later, earlier = row.alias("later"), row.alias("earlier")

    def same_chat(other):
        return and_(other.c.instance == row.c.instance, other.c.chat == row.c.chat)

    # Each is the first row in index order: a chat's history (or a second's worth of messages) is not scanned.
    answer = (
        select(later.c.at)
        .where(same_chat(later), _is_answer(later), *_after(later, row))
        .order_by(later.c.at, later.c.id)
        .limit(1)
        .scalar_subquery()
    )
    previous = (
        select(earlier.c.at)
        .where(same_chat(earlier), *_after(row, earlier))
        .order_by(earlier.c.at.desc(), earlier.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    session.execute(update(row).where(row.c.direction == "customer", which).values(answered_at=answer, previous_at=previous))


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

    Answers up to `target` after `end` (or up to `now`, if later) count; a message whose target has
    not passed by `now` is not yet unanswered. Each customer message carries its pairing (stored by
    `insert_messages`), so only the window's customer messages are read, by the index on time.
    """
    now = now or end
    row = ConversationMessageRow
    horizon = max(now, end + target)  # an answer later than this has not come yet, as far as this window knows
    limit, silence = target.total_seconds(), gap.total_seconds()
    response = case((row.answered_at < horizon, seconds_between(row.answered_at, row.at)))
    new = or_(row.previous_at.is_(None), seconds_between(row.at, row.previous_at) >= silence)
    late = or_(response > limit, and_(response.is_(None), row.at <= now - target))
    customer = row.direction == "customer"
    asked = (customer, row.at >= start, row.at < end)
    measures = [_count(customer), _count(row.direction != "customer"), _count(row.direction == "agent")]
    measures += [_count(and_(customer, condition)) for condition in (new, late, row.kind == "audio")]
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # percentile_cont is the same linear interpolation as store.sla's percentile; one sort gives both
        both = func.percentile_cont(postgresql.array([0.5, 0.95])).within_group(response)
        measures += [both.filter(customer), both.filter(and_(customer, new))]
    figures = session.execute(select(*measures).where(row.at >= start, row.at < end)).one()
    messages_in, messages_out, by_agent, new_conversations, unanswered, voice_notes = (int(value or 0) for value in figures[:6])
    if postgres:
        (response_p50, response_p95), (first_p50, first_p95) = (quantiles or (None, None) for quantiles in figures[6:])
    else:
        answered = session.execute(select(response, new).where(*asked, response.is_not(None))).all()
        responses = sorted(seconds for seconds, _ in answered)
        firsts = sorted(seconds for seconds, first in answered if first)
        response_p50, response_p95, first_p50, first_p95 = (_quantile(values, q) for values in (responses, firsts) for q in (0.5, 0.95))
    active = session.scalar(select(func.count()).select_from(select(row.instance, row.chat).where(*asked).distinct().subquery()))
    return ConversationFigures(
        messages_in=messages_in,
        messages_out=messages_out,
        by_agent=by_agent,
        active_chats=active or 0,
        new_conversations=new_conversations,
        first_response_p50=first_p50,
        first_response_p95=first_p95,
        response_p50=response_p50,
        response_p95=response_p95,
        unanswered=unanswered,
        voice_notes=voice_notes,
        target_seconds=limit,
    )


def _count(condition) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def chats_waiting(session: Session, now: datetime, *, target: timedelta = RESPONSE_TARGET, gap: timedelta = CONVERSATION_GAP) -> int:
    """Return how many chats wait for an answer now: their last message (within `gap`) is the customer's, older than `target`."""
    row, later = ConversationMessageRow.__table__, ConversationMessageRow.__table__.alias("later")
    newer = select(later.c.id).where(later.c.instance == row.c.instance, later.c.chat == row.c.chat, *_after(later, row), later.c.at < now)
    return session.scalar(
        select(func.count()).where(
            row.c.direction == "customer",
            row.c.at >= now - gap,
            row.c.at <= now - target,
            or_(row.c.answered_at.is_(None), row.c.answered_at >= now),  # no answer before now: a cheap first cut
            ~exists(newer),
        )
    )


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


def _is_answer(message) -> ColumnElement[bool]:
    """A message from the bot or a human agent; written as the partial index on answers says it, so the index serves it."""
    return message.c.direction != literal_column("'customer'")


def _after(one, other) -> tuple[ColumnElement[bool], ...]:
    """`one` comes after `other` in their chat (by time, then by id); the first term lets the index on (chat, at) bound the search."""
    return one.c.at >= other.c.at, or_(one.c.at > other.c.at, one.c.id > other.c.id)


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
