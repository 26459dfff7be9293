"""Backups: the runs of the window, their sizes and verification, the age of the newest verified one, restores."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.config import read_config
from dashboard.local_time import for_chart, shown_time
from dashboard.panels import empty_store, empty_window, page_header, shown, table
from dashboard.window import Window, chosen_window
from store.history import backup_runs_between, restores_between, store_contents
from store.sla import FRESHNESS_TARGET_SECONDS, backup_freshness, format_duration

MIB = 2**20


def render() -> None:
    """Draw the Backups page."""
    config, window = read_config(), chosen_window()
    page_header("Backups", window)
    if data.read(store_contents, config.store_url).backup_runs == 0:
        empty_store()
        return
    fresh = data.read(backup_freshness, config.store_url, window.now)
    runs = data.read(backup_runs_between, config.store_url, window.start, window.end)
    cells = st.columns(4)
    cells[0].metric(
        "Newest verified backup",
        "none" if fresh.age_seconds is None else f"{format_duration(fresh.age_seconds)} old",
        delta=fresh.first_due_text() or f"target < {FRESHNESS_TARGET_SECONDS / 3600:.0f} h",
        delta_arrow="off",
        delta_color="green" if fresh.meets_target else "red",
        border=True,
    )
    cells[1].metric("Runs", len(runs))
    cells[2].metric("Verified", sum(run.verified for run in runs))
    cells[3].metric("Failed", sum(run.status == "failed" for run in runs))
    if fresh.run_id:
        st.caption(f"Newest verified: {fresh.run_id}, finished {shown_time(fresh.verified_at)}")
    if runs:
        show_runs(runs)
    else:
        empty_window("backup run")
    show_restores(config.store_url, window)


def show_runs(runs) -> None:
    """Sizes over time and the table of runs."""
    frame = pd.DataFrame(
        [
            {
                "run": run.id,
                "started": run.started_at,
                "status": run.status,
                "verified": "verified" if run.verified else "not verified",
                "size MiB": None if run.size_bytes is None else round(run.size_bytes / MIB, 1),
                "items verified": f"{run.items_verified}/{run.items}",
                "dump s": run.dump_seconds,
                "upload s": run.upload_seconds,
                "verify s": run.verify_seconds,
                "error": shown(run.error),
            }
            for run in runs
        ]
    )
    st.subheader("Runs")
    st.altair_chart(charts.over_time(for_chart(frame, "started"), "started", "size MiB", color="status"), width="stretch")
    table(frame)


def show_restores(url: str, window: Window) -> None:
    """How long each restore took."""
    st.subheader("Restores")
    restores = data.read(restores_between, url, window.start, window.end)
    if not restores:
        empty_window("restore")
        return
    frame = pd.DataFrame(
        [
            {
                "started": r.started_at,
                "run": r.run_id,
                "source": r.source,
                "into": shown(r.target),
                "status": r.status,
                "seconds": r.seconds,
                "error": shown(r.error),
            }
            for r in restores
        ]
    )
    done = frame[frame["status"] != "refused"]  # a refused restore restored nothing: no time to chart
    refused = len(frame) - len(done)
    cells = st.columns(3)
    cells[0].metric("Restores", len(done))
    cells[1].metric("Slowest", "—" if done["seconds"].isna().all() else format_duration(float(done["seconds"].max())))
    cells[2].metric("Refused", refused, help="Refused before anything was written (e.g. the target was not empty).")
    if not done.empty:
        st.altair_chart(charts.over_time(for_chart(done, "started"), "started", "seconds", color="source"), width="stretch")
    table(frame)


render()
