"""Pieces every page shows the same way: the SLA tiles, the window line, banners, empty states, safe text."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from clients.redaction import mask_phone_numbers, mask_secrets
from dashboard.config import DashboardConfig
from dashboard.local_time import shown_time
from dashboard.prefect_runs import PrefectUnavailable, workflow_counts
from dashboard.window import Window
from store.sla import FIGURES, SlaRow, WorkflowRuns

_COLORS = {True: "green", False: "red", None: "gray"}
PENDING = "…"  # a tile's value while its figure is read


def shown(text: str | None) -> str:
    """Return stored text fit to show: URL passwords and phone numbers masked."""
    return mask_phone_numbers(mask_secrets(text)) if text else ""


def page_header(title: str, window: Window) -> None:
    """Print the page's title and the window its numbers cover."""
    st.title(title)
    st.caption(window.caption())


def sla_tile_slots() -> list[DeltaGenerator]:
    """Draw the five SLA tiles at once, each with its name and target and its value pending; return their slots.

    The browser loads the tiles' code when the first tile arrives. Sent with the page's first elements, it loads
    while the figures are read; sent after reads of more than ~0.1 s, React held the whole page back up to another
    0.5 s (its Suspense fallback throttle, React 18's FALLBACK_THROTTLE_MS) once it had loaded.
    """
    slots = [column.empty() for column in st.columns(len(FIGURES))]
    for slot, (_, name, target) in zip(slots, FIGURES):
        slot.metric(name, PENDING, delta=f"reading · target {target}", delta_color="gray", delta_arrow="off", border=True)
    return slots


def sla_tiles(rows: list[SlaRow], slots: list[DeltaGenerator]) -> None:
    """Show each SLA figure in its tile (sla_tile_slots): its value, its target, green when met, red when missed, grey without data."""
    for slot, row in zip(slots, rows, strict=True):
        verdict = {True: "meets", False: "misses", None: "no data for"}[row.meets]
        slot.metric(
            row.name,
            row.display,
            delta=f"{verdict} target {row.target}",
            delta_color=_COLORS[row.meets],
            delta_arrow="off",
            border=True,
        )


def workflow_runs_or_banner(config: DashboardConfig, window: Window) -> WorkflowRuns | None:
    """Return the window's finished and failed flow runs, or show that the Prefect API is down and return None."""
    try:
        return workflow_counts(config.prefect_api_url, window.start, window.end)
    except PrefectUnavailable as error:
        prefect_down(error, "the error rate counts transcriptions only")
        return None


def prefect_down(error: PrefectUnavailable, consequence: str) -> None:
    """Show a banner naming the Prefect API that is down and what the page does without it."""
    st.warning(f"**The Prefect API is unreachable** — {error}; {consequence}. Is `vigia up` running?", icon=":material/warning:")


def empty_store() -> None:
    """Show the friendly empty state of a store nothing has written to yet."""
    st.info(
        "**Nothing recorded yet.** Vigia fills these pages as it works: the health check runs every "
        "5 minutes (or now with `vigia check`), voice notes arrive through the webhook receiver, "
        "backups run daily (`vigia backup run`). `vigia demo-data --days 30` fills a test store with "
        "a synthetic month.",
        icon=":material/eco:",
    )


def empty_window(what: str) -> None:
    """Say that the window holds nothing of one kind, and how to see more."""
    st.info(f"No {what} in this window. Pick a longer one in the sidebar.", icon=":material/search_off:")


def hours(seconds: float | None) -> float | None:
    """Seconds as hours with two decimals, for tables."""
    return None if seconds is None else round(seconds / 3600, 2)


def table(frame: pd.DataFrame, yes: dict[str, str] | None = None) -> None:
    """Show a table as people read it: times in the zone, no checkboxes, a dash for nothing.

    `yes` names what a true boolean column reads as (e.g. {"critical": "critical"}); others read yes/no.
    """
    yes = yes or {}
    shown_frame = pd.DataFrame({column: [_cell(value, yes.get(column)) for value in frame[column]] for column in frame.columns})
    st.dataframe(shown_frame, hide_index=True, width="stretch")


def _cell(value, yes: str | None) -> str:
    if isinstance(value, (bool, np.bool_)):
        return (yes or "yes") if value else ("" if yes else "no")
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, datetime):
        return shown_time(value)
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return str(value)
