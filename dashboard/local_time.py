"""Every time the dashboard shows, in VIGIA_TIMEZONE: tables as local wall-clock text, charts as local wall-clock times.

Vega-Lite reads a time without an offset as the browser's local time and shows it unchanged, so
charts get naive local times: the axis reads as the tables do, whatever the browser's own zone.
"""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd

DEFAULT_ZONE = "America/Sao_Paulo"  # the settings' default of VIGIA_TIMEZONE


def zone() -> str:
    """The zone the dashboard shows times in: VIGIA_TIMEZONE, as `vigia dashboard` and `vigia up` pass it."""
    return os.environ.get("VIGIA_TIMEZONE") or DEFAULT_ZONE


def local(at: datetime) -> datetime:
    """A UTC time as an aware time in the zone."""
    return at.astimezone(ZoneInfo(zone()))


def shown_time(at: datetime | None) -> str:
    """A time as a table cell: 2026-12-05 10:45, in the zone (named once, in the sidebar and the window line)."""
    return "—" if at is None or at is pd.NaT else f"{local(at):%Y-%m-%d %H:%M}"


def for_chart(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """A copy of `frame` whose time columns hold naive local times, which the charts draw as they are."""
    frame = frame.copy()
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_convert(zone()).dt.tz_localize(None)
    return frame
