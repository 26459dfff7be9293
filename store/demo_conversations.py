"""Synthetic chats for `vigia demo-data`: a working day's rhythm, bursts, human agents, late and missing answers, and
one episode where the bot goes silent, so the Conversations figures, alerts and pages can be seen without a live bot."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from store.conversations import chat_key

# Customers by hour of day (local time is near enough for a demo), the voice notes' curve.
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.6, 1.8, 1.8, 1.7, 1.5, 1.6, 1.7, 1.7, 1.6, 1.5, 1.4, 1.3, 1.1, 0.9, 0.6, 0.4]
KINDS = (("text", 0.74), ("audio", 0.16), ("image", 0.07), ("sticker", 0.03))
DEMO_KEY = b"vigia-demo-conversations"
SILENT_MINUTES = 50


def conversation_rows(rng: random.Random, start: datetime, end: datetime, chats_per_day: int) -> list[dict]:
    """Return `conversation_messages` rows for [start, end): about `chats_per_day` conversations a day."""
    if chats_per_day <= 0:
        return []
    silent_start = (start + (end - start) * 0.7).replace(hour=14, minute=0, second=0, microsecond=0)
    silent = (silent_start, silent_start + timedelta(minutes=SILENT_MINUTES))
    customers = [chat_key(f"demo-customer-{n}", DEMO_KEY) for n in range(chats_per_day * 8)]
    rows: list[dict] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        burst_hour = rng.randrange(8, 20) if rng.random() < 0.15 else None  # a campaign: three times the hour's chats
        for _ in range(chats_per_day):
            hour = rng.choices(range(24), weights=HOURLY)[0]
            opened = day + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            _conversation(rng, rows, rng.choice(customers), opened, start, end, silent)
        if burst_hour is not None:
            for _ in range(chats_per_day // 8):
                opened = day + timedelta(hours=burst_hour, seconds=rng.uniform(0, 1200))
                _conversation(rng, rows, rng.choice(customers), opened, start, end, silent)
        day += timedelta(days=1)
    rows.sort(key=lambda row: row["at"])
    for number, row in enumerate(rows):
        row["message_id"] = f"DEMOC{number:010X}"
    return rows


def _conversation(rng, rows, chat, at, start, end, silent) -> None:
    for _ in range(rng.choice((1, 1, 2, 2, 3))):  # turns
        for _ in range(rng.choice((1, 1, 1, 2, 3))):  # the customer's messages in a turn
            _add(rows, chat, "customer", rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0], at, start, end)
            at += timedelta(seconds=rng.uniform(2, 12))
        answer, direction = _answer_delay(rng), "bot"
        if answer is None:
            return  # left unanswered: the customer gives up
        if rng.random() < 0.03:
            answer, direction = rng.uniform(120, 600), "agent"  # a person takes over from the bot
        at += timedelta(seconds=answer)
        if direction == "bot" and silent[0] <= at < silent[1]:
            at = silent[1] + timedelta(seconds=rng.uniform(5, 120))  # the bot's process hung: answers come after it is restarted
        _add(rows, chat, direction, "text", at, start, end)
        at += timedelta(seconds=rng.uniform(20, 600))


def _answer_delay(rng) -> float | None:
    roll = rng.random()
    if roll < 0.02:
        return None
    if roll < 0.05:
        return rng.uniform(90, 300)  # slow: Groq busy, a long tool call
    return min(rng.lognormvariate(math.log(4), 0.7), 45)


def _add(rows, chat, direction, kind, at, start, end) -> None:
    if start <= at < end:
        rows.append(dict(instance="main", message_id="", chat=chat, direction=direction, kind=kind, at=at, reply_to=None))
