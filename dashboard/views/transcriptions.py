"""Transcriptions: webhook-to-reply latency against the 15 s target, its p95 trend, failures by reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.config import read_config
from dashboard.local_time import for_chart
from dashboard.panels import empty_store, empty_window, page_header, table
from dashboard.window import Window, chosen_window
from store.history import store_contents, transcription_failures
from store.sla import RESPONSE_TARGET_SECONDS, percentile, response_time_samples, response_times

BIN_SECONDS = 0.5
HISTOGRAM_CAP_SECONDS = 60.0  # slower replies share the last bin


def render() -> None:
    """Draw the Transcriptions page."""
    config, window = read_config(), chosen_window()
    page_header("Transcriptions", window)
    if data.read(store_contents, config.store_url).voice_notes == 0:
        empty_store()
        return
    times = data.read(response_times, config.store_url, window.start, window.end)
    if times.count == 0:
        empty_window("voice note")
        return
    cells = st.columns(6)
    cells[0].metric("Voice notes", f"{times.count:,}")
    cells[1].metric("Replied", f"{times.replied:,}")
    cells[2].metric("p50", _seconds(times.p50_seconds))
    cells[3].metric(
        "p95",
        _seconds(times.p95_seconds),
        delta=f"target < {RESPONSE_TARGET_SECONDS:.0f} s",
        delta_arrow="off",
        delta_color={True: "green", False: "red", None: "gray"}[times.meets_target],
    )
    cells[4].metric("Max", _seconds(times.max_seconds))
    cells[5].metric("Under 15 s", "—" if times.under_target_percent is None else f"{times.under_target_percent:.1f} %")
    samples = data.read(response_time_samples, config.store_url, window.start, window.end)
    if samples:
        left, right = st.columns(2)
        left.markdown("**Response time** (webhook received → reply sent)")
        left.altair_chart(charts.response_histogram(histogram(samples)), width="stretch")
        right.markdown("**p95 trend**")
        right.altair_chart(charts.p95_trend(for_chart(p95_by_bucket(samples, window), "at")), width="stretch")
    show_failures(config.store_url, window)


def histogram(samples: list[tuple[object, float]]) -> pd.DataFrame:
    """Replies per half-second bin, the slowest folded into the last bin."""
    seconds = np.minimum(np.fromiter((s for _, s in samples), float, len(samples)), HISTOGRAM_CAP_SECONDS - 1e-9)
    top = max(BIN_SECONDS, np.ceil(seconds.max() / BIN_SECONDS) * BIN_SECONDS)
    counts, edges = np.histogram(seconds, bins=np.arange(0.0, top + BIN_SECONDS, BIN_SECONDS))
    return pd.DataFrame({"from s": edges[:-1], "to s": edges[1:], "replies": counts})


def p95_by_bucket(samples: list[tuple[object, float]], window: Window) -> pd.DataFrame:
    """p95 per hour (a day's window) or per day, with the same percentile as the SLA tile."""
    frequency = "h" if window.seconds <= 2 * 86400 else "D"
    frame = pd.DataFrame(samples, columns=["received", "seconds"])
    frame["at"] = pd.to_datetime(frame["received"], utc=True).dt.floor(frequency)
    rows = [
        {"at": at, "p95 s": percentile(sorted(group["seconds"].tolist()), 0.95), "replies": len(group)} for at, group in frame.groupby("at")
    ]
    return pd.DataFrame(rows)


def show_failures(url: str, window: Window) -> None:
    """Failed and skipped notes counted by reason."""
    st.subheader("Failures by reason")
    failures = data.read(transcription_failures, url, window.start, window.end)
    if not failures:
        st.success("No failed or skipped voice note in this window.", icon=":material/check_circle:")
        return
    frame = pd.DataFrame([{"reason": f.reason, "status": f.status, "notes": f.count} for f in failures])
    left, right = st.columns(2)
    left.altair_chart(charts.bars(frame, "reason", "notes", color="status"), width="stretch")
    with right:
        table(frame)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


render()
