"""Altair charts of the pages, built from small DataFrames (the store aggregates before anything is drawn)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from store.sla import RESPONSE_TARGET_SECONDS, UPTIME_TARGET_PERCENT

STATE_COLORS = alt.Scale(domain=["up", "down", "maintenance", "unknown"], range=["#2e7d32", "#c62828", "#1565c0", "#9e9e9e"])


def uptime_hours(frame: pd.DataFrame) -> alt.Chart:
    """Stacked bars per target: hours up, down, in maintenance and unknown (no probe)."""
    long = frame.melt(id_vars=["target"], value_vars=["up", "down", "maintenance", "unknown"], var_name="time", value_name="hours")
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("target:N", sort=None, title=None),
            x=alt.X("hours:Q", stack="zero", title="hours in the window"),
            color=alt.Color("time:N", scale=STATE_COLORS, title=None),
            tooltip=["target", "time", alt.Tooltip("hours:Q", format=".2f")],
        )
    )


def uptime_percent(frame: pd.DataFrame) -> alt.LayerChart:
    """Uptime per measured target with the 99.5 % target as a line; red where it is missed."""
    low = min(99.0, float(frame["uptime %"].min()) - 0.2)
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("target:N", sort=None, title=None),
            x=alt.X("uptime %:Q", scale=alt.Scale(domain=[low, 100], clamp=True), title="uptime %"),
            color=alt.condition(f"datum['uptime %'] >= {UPTIME_TARGET_PERCENT}", alt.value("#2e7d32"), alt.value("#c62828")),
            tooltip=["target", alt.Tooltip("uptime %:Q", format=".3f"), "critical"],
        )
    )
    rule = alt.Chart(pd.DataFrame({"x": [UPTIME_TARGET_PERCENT]})).mark_rule(strokeDash=[4, 3]).encode(x="x:Q")
    return bars + rule


# Times read as dates and hours, never as seconds or milliseconds (":37 :39", ".790") when points sit close together.
TIME_AXIS = alt.Axis(format="%d %b %H:%M", labelOverlap=True, labelAngle=0, tickMinStep=60_000)


def latency_lines(frame: pd.DataFrame) -> alt.Chart:
    """Mean probe latency per target over time."""
    return (
        alt.Chart(frame)
        .mark_line(point=True)  # a window of one bucket still shows its point
        .encode(
            x=alt.X("at:T", title=None, axis=TIME_AXIS),
            y=alt.Y("mean ms:Q", title="mean latency (ms)"),
            color=alt.Color("target:N", title=None),
            tooltip=[
                "target",
                alt.Tooltip("at:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("mean ms:Q", format=".0f"),
                alt.Tooltip("max ms:Q", format=".0f"),
            ],
        )
    )


def incident_timeline(frame: pd.DataFrame) -> alt.LayerChart:
    """One bar per incident from opened to resolved (or now), red when it took 30 minutes or more.

    A ten-minute incident on a week's axis is under a pixel wide: a mark at its start keeps it in sight.
    """
    base = alt.Chart(frame).encode(
        y=alt.Y("target:N", title=None),
        x=alt.X("opened:T", title=None, axis=TIME_AXIS),
        color=alt.Color(
            "outcome:N",
            scale=alt.Scale(domain=["under 30 min", "30 min or more", "open"], range=["#2e7d32", "#c62828", "#ef6c00"]),
            title=None,
        ),
        tooltip=["incident", "target", alt.Tooltip("opened:T", format="%Y-%m-%d %H:%M"), "duration", "outcome"],
    )
    return base.mark_bar(size=14).encode(x2="until:T") + base.mark_point(shape="diamond", filled=True, size=90, opacity=1)


def response_histogram(frame: pd.DataFrame) -> alt.LayerChart:
    """Counts of replies per half-second bin with the 15 s SLA line."""
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("from s:Q", bin="binned", title="seconds from webhook to reply"),
            x2="to s:Q",
            y=alt.Y("replies:Q", title="replies"),
            tooltip=["from s", "to s", "replies"],
        )
    )
    rule = (
        alt.Chart(pd.DataFrame({"x": [RESPONSE_TARGET_SECONDS], "label": ["15 s SLA"]}))
        .mark_rule(color="#c62828", strokeWidth=2)
        .encode(x="x:Q", tooltip=["label"])
    )
    return bars + rule


def p95_trend(frame: pd.DataFrame) -> alt.LayerChart:
    """p95 response time per bucket with the 15 s SLA line."""
    line = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("at:T", title=None, axis=TIME_AXIS),
            y=alt.Y("p95 s:Q", title="p95 seconds"),
            tooltip=[alt.Tooltip("at:T", format="%Y-%m-%d %H:%M"), alt.Tooltip("p95 s:Q", format=".2f"), "replies"],
        )
    )
    rule = alt.Chart(pd.DataFrame({"y": [RESPONSE_TARGET_SECONDS]})).mark_rule(color="#c62828", strokeDash=[4, 3]).encode(y="y:Q")
    return line + rule


def bars(frame: pd.DataFrame, category: str, value: str, color: str | None = None) -> alt.Chart:
    """Horizontal bars of a value per category, optionally coloured by another column."""
    encoding = {
        "y": alt.Y(f"{category}:N", sort="-x", title=None),
        "x": alt.X(f"{value}:Q", title=value),
        "tooltip": list(frame.columns),
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
    return alt.Chart(frame).mark_bar().encode(**encoding)


def over_time(frame: pd.DataFrame, at: str, value: str, color: str | None = None) -> alt.Chart:
    """Bars of a value per point in time (backup sizes, restore times, messages per hour), the axis in days and hours."""
    encoding = {
        "x": alt.X(f"{at}:T", title=None, axis=TIME_AXIS),
        "y": alt.Y(f"{value}:Q", title=value, axis=alt.Axis(format="~s")),
        "tooltip": [alt.Tooltip(f"{at}:T", format="%Y-%m-%d %H:%M"), *(column for column in frame.columns if column != at)],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None)
    return alt.Chart(frame).mark_bar(size=8).encode(**encoding)


def deliveries_stacked(frame: pd.DataFrame) -> alt.Chart:
    """Deliveries per channel stacked by outcome."""
    long = frame.melt(
        id_vars=["channel"], value_vars=["success", "failure", "timeout", "skipped"], var_name="outcome", value_name="deliveries"
    )
    scale = alt.Scale(domain=["success", "failure", "timeout", "skipped"], range=["#2e7d32", "#c62828", "#ef6c00", "#9e9e9e"])
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("channel:N", title=None),
            x=alt.X("deliveries:Q", stack="zero"),
            color=alt.Color("outcome:N", scale=scale, title=None),
            tooltip=["channel", "outcome", "deliveries"],
        )
    )
