"""Overview: the five SLA tiles against their targets, and the incidents still open."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.config import read_config
from dashboard.panels import empty_store, page_header, shown, sla_tile_slots, sla_tiles, table, workflow_runs_or_banner
from dashboard.window import chosen_window
from store.history import store_contents
from store.incidents import list_incidents
from store.sla import format_duration, sla_summary


def render() -> None:
    """Draw the Overview page."""
    config, window = read_config(), chosen_window()
    page_header("Service levels", window)
    if data.read(store_contents, config.store_url).is_empty:
        empty_store()
        return
    banner, slots = st.empty(), sla_tile_slots()  # the tiles first, values pending: see sla_tile_slots
    with banner.container():
        runs = workflow_runs_or_banner(config, window)
    sla_tiles(data.read(sla_summary, config.store_url, window.start, window.end, runs, now=window.now), slots)
    st.subheader("Open incidents")
    incidents = data.read(list_incidents, config.store_url, open_only=True)
    if not incidents:
        st.success("No open incident.", icon=":material/check_circle:")
        return
    table(
        pd.DataFrame(
            [
                {
                    "incident": incident.id,
                    "target": incident.target,
                    "critical": incident.critical,
                    "open for": format_duration((window.now - incident.opened_at).total_seconds()),
                    "opened": incident.opened_at,
                    "acknowledged": incident.acknowledged_at is not None,
                    "reason": shown(incident.reason),
                }
                for incident in incidents
            ]
        ),
        yes={"critical": "critical"},
    )


render()
