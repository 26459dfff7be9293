"""Alerts: what was raised, and how each channel delivered it (failures and skips with their reasons)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.config import read_config
from dashboard.panels import empty_store, empty_window, page_header, shown, table
from dashboard.window import Window, chosen_window
from store.alerts import alerts_between, count_alerts_by_severity, deliveries_by_channel, delivery_problems
from store.history import store_contents

SEVERITIES = ("emergency", "critical", "warning", "info", "report")


def render() -> None:
    """Draw the Alerts page."""
    config, window = read_config(), chosen_window()
    page_header("Alerts", window)
    if data.read(store_contents, config.store_url).alerts == 0:
        empty_store()
        return
    severities = data.read(count_alerts_by_severity, config.store_url, window.start, window.end)
    for cell, severity in zip(st.columns(len(SEVERITIES)), SEVERITIES):
        cell.metric(severity.capitalize(), severities.get(severity, 0))
    show_deliveries(config.store_url, window)
    show_history(config.store_url, window)


def show_deliveries(url: str, window: Window) -> None:
    """Per channel: successes, failures, timeouts and skips, then every delivery that did not succeed."""
    st.subheader("Deliveries per channel")
    channels = data.read(deliveries_by_channel, url, window.start, window.end)
    if not channels:
        empty_window("delivery")
        return
    frame = pd.DataFrame(
        [
            {
                "service": c.service,
                "channel": shown(c.channel),
                "success": c.success,
                "failure": c.failure,
                "timeout": c.timeout,
                "skipped": c.skipped,
                "success %": round(100.0 * c.success / c.total, 1) if c.total else None,
            }
            for c in channels
        ]
    )
    left, right = st.columns(2)
    left.altair_chart(charts.deliveries_stacked(frame), width="stretch")
    with right:
        table(frame)
    problems = data.read(delivery_problems, url, window.start, window.end)
    if problems:
        st.markdown("**Failed, timed-out and skipped deliveries**")
        table(
            pd.DataFrame(
                [
                    {
                        "at": p.at,
                        "alert": shown(p.alert_title),
                        "service": p.service,
                        "channel": shown(p.channel),
                        "outcome": p.status,
                        "reason": shown(p.reason),
                        "attempts": p.attempts,
                    }
                    for p in problems
                ]
            )
        )


def show_history(url: str, window: Window) -> None:
    """Every alert of the window, newest first."""
    st.subheader("History")
    history = data.read(alerts_between, url, window.start, window.end)
    if not history:
        empty_window("alert")
        return
    table(
        pd.DataFrame(
            [
                {
                    "raised": a.created_at,
                    "severity": a.severity,
                    "kind": a.kind,
                    "target": a.target,
                    "title": shown(a.title),
                    "status": a.status,
                    "held back": shown(a.held_reason),
                    "incident": a.incident_id,
                }
                for a in history
            ]
        )
    )


render()
