"""The window every page shows: the last 24 h, 7 d or 30 d, or a custom range of days in VIGIA_TIMEZONE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard.local_time import local, zone
from store.sla import WINDOWS

PRESETS = {"Last 24 h": "24h", "Last 7 d": "7d", "Last 30 d": "30d"}
CUSTOM = "Custom range"
SESSION_KEY = "vigia_window"


@dataclass(frozen=True)
class Window:
    """A half-open range [start, end) of whole minutes in UTC, and `now` for ages (backup freshness)."""

    start: datetime
    end: datetime
    now: datetime
    label: str

    @property
    def seconds(self) -> float:
        """The window's length in seconds."""
        return (self.end - self.start).total_seconds()

    def caption(self) -> str:
        """The window as the pages print it, in the zone with its offset (-03); the end-to-end test reads it back."""
        start, end = local(self.start), local(self.end)
        return f"{self.label}: {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} {end:%Z}"


def current_minute() -> datetime:
    """Return the end of the current minute in UTC: a minute's reruns share their cached queries, and what
    ended a second ago is inside the window (at most a minute of the window lies ahead, with no data yet)."""
    return datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)


def preset_window(choice: str, now: datetime) -> Window:
    """Return the window of a preset ("Last 24 h", …) ending at `now`."""
    return Window(now - WINDOWS[PRESETS[choice]], now, now, choice)


def custom_window(first: date, last: date, now: datetime) -> Window:
    """Return the whole days (in the zone) from `first` to `last`, cut at `now`."""
    first, last = min(first, last), max(first, last)
    here = ZoneInfo(zone())
    start = datetime.combine(first, time(), here).astimezone(timezone.utc)
    end = min(datetime.combine(last + timedelta(days=1), time(), here).astimezone(timezone.utc), now)
    return Window(start, max(end, start + timedelta(minutes=1)), now, f"{first:%Y-%m-%d} to {last:%Y-%m-%d}")


def pick_window() -> Window:
    """Show the window picker in the sidebar and remember the window for the page."""
    now = current_minute()
    # ?window=24h|7d|30d picks the first window shown, so a link (an alert, a bookmark) can name one.
    named = {value: label for label, value in PRESETS.items()}.get(st.query_params.get("window", ""), "Last 7 d")
    options = [*PRESETS, CUSTOM]
    choice = st.sidebar.radio("Window", options, index=options.index(named), key="window_choice")
    if choice != CUSTOM:
        window = preset_window(choice, now)
    else:
        today = local(now).date()
        picked = st.sidebar.date_input("Days", value=(today - timedelta(days=6), today), max_value=today, key="window_days")
        days = picked if isinstance(picked, (tuple, list)) else (picked,)
        window = custom_window(days[0], days[-1], now) if days else preset_window("Last 7 d", now)
    st.session_state[SESSION_KEY] = window
    return window


def chosen_window() -> Window:
    """Return the window the sidebar picked in this run (the last 7 days if the picker has not run)."""
    return st.session_state.get(SESSION_KEY) or preset_window("Last 7 d", current_minute())
