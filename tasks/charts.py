"""PNG charts of the weekly report, drawn with Altair (the dashboard's chart library) and vl-convert."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import vl_convert

from store.sla import RESPONSE_TARGET_SECONDS, UPTIME_TARGET_PERCENT

WIDTH, HEIGHT = 560, 260


def draw_charts(tables: dict[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Write the report's charts as PNG files into `folder`; return their paths (empty tables draw nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    charts = {
        "uptime.png": _uptime(tables["targets"]),
        "response-times.png": _response_times(tables["response-times"]),
        "busiest-hours.png": _busiest_hours(tables["busiest-hours"]),
        "backup-sizes.png": _backup_sizes(tables["backups"]),
    }
    written = []
    for name, chart in charts.items():
        if chart is None:
            continue
        path = folder / name
        path.write_bytes(vl_convert.vegalite_to_png(chart.to_json(), scale=1.5))
        written.append(path)
    return written


def _uptime(targets: pd.DataFrame) -> alt.Chart | None:
    data = targets.dropna(subset=["uptime %"])[["target", "uptime %"]]
    if data.empty:
        return None
    low = min(float(data["uptime %"].min()), UPTIME_TARGET_PERCENT) - 0.2
    bars = (
        alt.Chart(data, title="Uptime per target (%)")
        .mark_bar()
        .encode(
            # clamped: a bar drawn from 0 far outside the domain costs vl-convert most of a second to rasterise
            x=alt.X("uptime %:Q", scale=alt.Scale(domain=[max(low, 0), 100], clamp=True), title="uptime %"),
            y=alt.Y("target:N", sort="x", title=None),
            color=alt.condition(alt.datum["uptime %"] >= UPTIME_TARGET_PERCENT, alt.value("#2e7d32"), alt.value("#c62828")),
        )
    )
    rule = alt.Chart(pd.DataFrame({"target": [UPTIME_TARGET_PERCENT]})).mark_rule(strokeDash=[4, 3]).encode(x="target:Q")
    return (bars + rule).properties(width=WIDTH, height=max(HEIGHT, 14 * len(data)))


def _response_times(samples: pd.DataFrame) -> alt.Chart | None:
    if samples.empty:
        return None
    edges = np.arange(0.0, max(float(samples["seconds"].max()), RESPONSE_TARGET_SECONDS) + 1.0, 0.5)
    counts, _ = np.histogram(samples["seconds"], bins=edges)  # binned here: the chart carries 40-odd rows, not every note
    bins = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "notes": counts})
    bars = (
        alt.Chart(bins, title="Transcription response time (s), 15 s target")
        .mark_bar()
        .encode(
            x=alt.X("from:Q", title="webhook → reply (s)"),
            x2="to:Q",
            y=alt.Y("notes:Q", title="notes"),
        )
    )
    rule = alt.Chart(pd.DataFrame({"seconds": [RESPONSE_TARGET_SECONDS]})).mark_rule(color="#c62828", size=2).encode(x="seconds:Q")
    return (bars + rule).properties(width=WIDTH, height=HEIGHT)


def _busiest_hours(hours: pd.DataFrame) -> alt.Chart | None:
    if hours["notes"].sum() == 0:
        return None
    return (
        alt.Chart(hours, title="Voice notes per hour of day (local time)")
        .mark_bar()
        .encode(
            x=alt.X("local hour:O", title="hour"),
            y=alt.Y("notes:Q", title="notes"),
        )
        .properties(width=WIDTH, height=HEIGHT)
    )


def _backup_sizes(backups: pd.DataFrame) -> alt.Chart | None:
    data = backups.dropna(subset=["size_bytes"]).assign(size_mb=lambda frame: frame["size_bytes"] / 2**20)[
        ["run_id", "size_mb", "verified"]
    ]
    if data.empty:
        return None
    return (
        alt.Chart(data, title="Backup size per run (MB)")
        .mark_bar()
        .encode(
            x=alt.X("run_id:N", title=None),
            y=alt.Y("size_mb:Q", title="MB"),
            color=alt.condition(alt.datum.verified, alt.value("#2e7d32"), alt.value("#c62828")),
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
