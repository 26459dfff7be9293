"""Targets: uptime per target (unknown time apart), probe latency, and the incident timeline."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.config import read_config
from dashboard.local_time import for_chart
from dashboard.panels import empty_store, empty_window, hours, page_header, table
from dashboard.window import Window, chosen_window
from store.history import store_contents
from store.probes import latency_series
from store.sla import format_duration, recovery_times, uptime

MAX_POINTS = 200  # per latency line: a month of five-minute probes becomes four-hour buckets
BUCKETS_SECONDS = (300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)


def render() -> None:
    """Draw the Targets page."""
    config, window = read_config(), chosen_window()
    page_header("Targets", window)
    if data.read(store_contents, config.store_url).targets == 0:
        empty_store()
        return
    show_uptime(config.store_url, window)
    show_latency(config.store_url, window)
    show_incidents(config.store_url, window)


def show_uptime(url: str, window: Window) -> None:
    """Uptime bars of the measured targets; targets with no probe in the window listed apart."""
    st.subheader("Uptime")
    report = data.read(uptime, url, window.start, window.end)
    measured = [item for item in report if item.percent is not None]
    unmeasured = [item.target for item in report if item.percent is None]
    if measured:
        frame = pd.DataFrame(
            [
                {
                    "target": item.target,
                    "critical": item.critical,
                    "uptime %": round(item.percent, 3),
                    "meets 99.5 %": "met" if item.meets_target else "missed",
                    "up": hours(item.up_seconds),
                    "down": hours(item.down_seconds),
                    "maintenance": hours(item.maintenance_seconds),
                    "unknown": hours(item.unknown_seconds),
                }
                for item in measured
            ]
        )
        left, right = st.columns(2)
        left.altair_chart(charts.uptime_percent(frame), width="stretch")
        right.altair_chart(charts.uptime_hours(frame), width="stretch")
        table(frame, yes={"critical": "critical"})
        st.caption("Hours per state. *Unknown* is time no probe covered: it never counts as up, nor as down.")
    if unmeasured:
        st.warning(f"**No data** in this window (unknown, not counted): {', '.join(unmeasured)}", icon=":material/help:")


def show_latency(url: str, window: Window) -> None:
    """Mean probe latency per target, a few targets at a time."""
    st.subheader("Latency")
    bucket = next((b for b in BUCKETS_SECONDS if window.seconds / b <= MAX_POINTS), BUCKETS_SECONDS[-1])
    points = data.read(latency_series, url, window.start, window.end, bucket)
    if not points:
        empty_window("probe latency")
        return
    frame = pd.DataFrame([{"target": p.target, "at": p.at, "mean ms": p.mean_ms, "max ms": p.max_ms} for p in points])
    targets = sorted(frame["target"].unique())
    chosen = st.multiselect("Targets", targets, default=targets[:5], key="latency_targets")
    st.altair_chart(charts.latency_lines(for_chart(frame[frame["target"].isin(chosen)], "at")), width="stretch")
    st.caption(f"Mean latency per {format_duration(bucket)}.")


def show_incidents(url: str, window: Window) -> None:
    """Incidents opened in the window on a timeline, each against the 30-minute recovery target."""
    st.subheader("Incidents")
    recoveries = data.read(recovery_times, url, window.start, window.end, window.now)
    if not recoveries.incidents:
        empty_window("incident")
        return
    frame = pd.DataFrame(
        [
            {
                "incident": item.incident_id,
                "target": item.target,
                "critical": item.critical,
                "opened": item.opened_at,
                "until": item.resolved_at or window.now,
                "duration": format_duration(item.seconds),
                "outcome": "open" if item.is_open else "under 30 min" if item.meets_target else "30 min or more",
            }
            for item in recoveries.incidents
        ]
    )
    st.altair_chart(charts.incident_timeline(for_chart(frame, "opened", "until")), width="stretch")
    st.caption(
        f"{len(frame)} incidents · MTTR {format_duration(recoveries.mttr_seconds)} · worst {format_duration(recoveries.worst_seconds)}"
    )
    table(frame, yes={"critical": "critical"})


render()
