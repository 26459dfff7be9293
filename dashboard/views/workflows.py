"""Workflows: Prefect runs per deployment and the latest runs, each linked to its page in the Prefect UI."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.config import read_config
from dashboard.local_time import shown_time
from dashboard.panels import page_header, prefect_down
from dashboard.prefect_runs import PrefectUnavailable, RunLink, deployment_runs, recent_runs, workflow_counts
from dashboard.window import chosen_window
from store.sla import error_rate, format_duration

SHOWN_RUNS = 50


def render() -> None:
    """Draw the Workflows page."""
    config, window = read_config(), chosen_window()
    page_header("Workflows", window)
    try:
        counts = workflow_counts(config.prefect_api_url, window.start, window.end)
        deployments = deployment_runs(config.prefect_api_url, config.prefect_ui_url, window.start, window.end)
        runs = recent_runs(config.prefect_api_url, config.prefect_ui_url, window.start, window.end)
    except PrefectUnavailable as error:
        prefect_down(error, "flow runs cannot be shown")
        return
    rates = data.read(error_rate, config.store_url, window.start, window.end, counts)
    cells = st.columns(3)
    cells[0].metric("Finished runs", counts.finished)
    cells[1].metric("Failed or crashed", counts.failed)
    cells[2].metric(
        "Workflow error rate",
        "—" if rates.workflow_percent is None else f"{rates.workflow_percent:.2f} %",
        delta="target < 1 %",
        delta_arrow="off",
        delta_color="gray" if rates.workflow_percent is None else "green" if rates.workflow_percent < 1 else "red",
    )
    st.subheader("Per deployment")
    if not deployments:
        st.info("No deployment on this Prefect server yet: `vigia up` serves the ones in prefect.yaml.", icon=":material/search_off:")
    else:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "deployment": d.deployment,
                        "completed": d.completed,
                        "failed": d.failed,
                        "crashed": d.crashed,
                        "late": d.late,
                        "running now": d.running,
                        "page": d.url,
                    }
                    for d in deployments
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"page": st.column_config.LinkColumn("Prefect UI", display_text="open")},
        )
    st.subheader("Latest runs")
    if not runs:
        st.info("No flow run was scheduled in this window.", icon=":material/search_off:")
        return
    st.caption(f"The {min(len(runs), SHOWN_RUNS)} newest of {len(runs)}. Open a run in the Prefect UI for its logs and to re-run it.")
    st.markdown(runs_table(runs[:SHOWN_RUNS]))


def runs_table(runs: list[RunLink]) -> str:
    """The runs as a Markdown table whose first column links each run's page in the Prefect UI."""
    lines = ["| run | deployment | state | expected start | duration |", "|---|---|---|---|---|"]
    for run in runs:
        started = shown_time(run.expected_start)
        duration = "—" if run.seconds is None else format_duration(run.seconds)
        lines.append(f"| [{_cell(run.name)}]({run.url}) | {_cell(run.deployment)} | {_cell(run.state)} | {started} | {duration} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


render()
