"""Conversations: the bot's own service, from the metadata of every chat message — what no uptime probe sees."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.config import read_config
from dashboard.local_time import for_chart
from dashboard.panels import page_header
from dashboard.window import chosen_window
from store.conversations import chats_waiting, conversation_figures, messages_per_hour

DIRECTIONS = {"customer": "from customers", "bot": "from the bot", "agent": "from human agents"}


def render() -> None:
    """Draw the Conversations page."""
    config, window = read_config(), chosen_window()
    page_header("Conversations", window)
    now = datetime.now(timezone.utc)
    target = config.response_target_seconds
    figures = data.read(conversation_figures, config.store_url, window.start, window.end, target=timedelta(seconds=target), now=now)
    if not figures.messages_in and not figures.messages_out:
        st.info(
            "**No chat messages in this window.** The receiver records every message's metadata (never its text or the "
            "number) when Evolution's webhook sends MESSAGES_UPSERT and SEND_MESSAGE and VIGIA_CONVERSATIONS is on; "
            "`vigia demo-data` fills a test store with synthetic conversations.",
            icon=":material/forum:",
        )
        return
    waiting = data.read(chats_waiting, config.store_url, now, target=timedelta(seconds=target))
    first, second = st.columns(4), st.columns(4)
    first[0].metric("Customer messages", f"{figures.messages_in:,}")
    first[1].metric(
        "Answers", f"{figures.messages_out:,}", delta=f"{figures.by_agent:,} by human agents", delta_arrow="off", delta_color="gray"
    )
    first[2].metric("Active chats", f"{figures.active_chats:,}")
    first[3].metric("New conversations", f"{figures.new_conversations:,}")
    meets = None if figures.response_p95 is None else figures.response_p95 <= target
    second[0].metric(
        "Reply p95",
        _seconds(figures.response_p95),
        delta=f"target ≤ {target:.0f} s",
        delta_arrow="off",
        delta_color={True: "green", False: "red", None: "gray"}[meets],
    )
    second[1].metric(
        "First response p95",
        _seconds(figures.first_response_p95),
        delta=f"p50 {_seconds(figures.first_response_p50)}",
        delta_arrow="off",
        delta_color="gray",
    )
    share = figures.unanswered_percent
    second[2].metric(
        "Unanswered",
        f"{figures.unanswered:,}",
        delta="—" if share is None else f"{share:.1f} % of customer messages",
        delta_arrow="off",
        delta_color="red" if figures.unanswered else "green",
    )
    second[3].metric(
        "Chats waiting now",
        f"{waiting:,}",
        delta=f"no answer for over {target:.0f} s",
        delta_arrow="off",
        delta_color="red" if waiting else "green",
    )
    st.subheader("Messages per hour")
    hourly = data.read(messages_per_hour, config.store_url, window.start, window.end)
    frame = pd.DataFrame(
        [
            {"hour": hour, "direction": DIRECTIONS.get(direction, direction), "messages": count}
            for (hour, direction), count in hourly.items()
        ]
    )
    st.altair_chart(charts.over_time(for_chart(frame, "hour"), "hour", "messages", color="direction"), width="stretch")


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


render()
