"""Overview: the five SLA tiles against their targets, and the incidents still open."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.config import read_config
from dashboard.panels import empty_store, page_header, shown, sla_tiles, table, workflow_runs_or_banner
from dashboard.window import chosen_window
from store.sla import format_duration


def render() -> None:
    """Draw the Overview page."""
    config, window = read_config(), chosen_window()
    page_header("Service levels", window)
    if data.read(data.contents, config.store_url).is_empty:
        empty_store()
        return
    runs = workflow_runs_or_banner(config, window)
    finished, failed = (None, None) if runs is None else (runs.finished, runs.failed)
    sla_tiles(data.read(data.summary, config.store_url, window.start, window.end, window.now, finished, failed))
    st.subheader("Open incidents")
    incidents = data.read(data.open_incidents, config.store_url)
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
