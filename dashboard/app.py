"""Vigia's SLA dashboard (DESIGN §12), a read-only Streamlit app: `vigia dashboard` runs it, `vigia up` too."""

from __future__ import annotations

import hmac
import time
from pathlib import Path

import streamlit as st

from dashboard.config import DashboardConfig, read_config
from dashboard.local_time import zone
from dashboard.login_throttle import shared_throttle
from dashboard.window import pick_window

REFRESH_SECONDS = 60
VIEWS = Path(__file__).with_name("views")
FAVICON = Path(__file__).with_name("favicon.png")
# Tile values such as "worst 54 min, MTTR 14 min" wrap instead of ending in an ellipsis.
STYLE = """<style>
[data-testid="stMetricValue"], [data-testid="stMetricValue"] *, [data-testid="stMetricDelta"], [data-testid="stMetricDelta"] * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
[data-testid="stMetricValue"] { font-size: 1.6rem; line-height: 1.25; }
</style>"""
PAGES = (
    ("overview.py", "Overview", ":material/speed:"),
    ("targets.py", "Targets", ":material/dns:"),
    ("conversations.py", "Conversations", ":material/forum:"),
    ("transcriptions.py", "Transcriptions", ":material/mic:"),
    ("backups.py", "Backups", ":material/backup:"),
    ("alerts.py", "Alerts", ":material/notifications:"),
    ("workflows.py", "Workflows", ":material/account_tree:"),
)


def main() -> None:
    """Gate, navigation, window picker and the minute refresh, then the chosen page."""
    # A file of ours: a Material or emoji page icon makes the browser fetch it from fonts.gstatic.com or a CDN.
    st.set_page_config(page_title="Vigia SLA", page_icon=str(FAVICON), layout="wide")
    st.html(STYLE)
    config = read_config()
    if not unlocked(config):
        return
    navigation = st.navigation(
        [st.Page(str(VIEWS / file), title=title, icon=icon, default=index == 0) for index, (file, title, icon) in enumerate(PAGES)]
    )
    pick_window()
    st.sidebar.caption(f"Read-only · refreshes every {REFRESH_SECONDS} s · times in {zone()}")
    st.sidebar.link_button("Open the Prefect UI", config.prefect_ui_url)
    st.session_state["full_run_at"] = time.monotonic()
    refresh()
    navigation.run()


def unlocked(config: DashboardConfig) -> bool:
    """Ask for VIGIA_DASHBOARD_PASSWORD when it is set; True once this session gave it."""
    if not config.password or st.session_state.get("unlocked"):
        return True
    st.title("Vigia SLA dashboard")
    with st.form("login"):
        typed = st.text_input("Password", type="password")
        if st.form_submit_button("Open"):
            check_password(typed, config.password)
    return False


def check_password(typed: str, password: str) -> None:
    """Open the session for the right password; a client that keeps guessing waits longer each time."""
    throttle, address = shared_throttle(), st.context.ip_address
    client = address if isinstance(address, str) and address else "unknown"
    wait = throttle.wait_seconds(client)
    if wait > 0:
        st.error(f"Too many wrong passwords: try again in {wait:.0f} s.")
        return
    if hmac.compare_digest(typed.encode(), password.encode()):
        throttle.record_success(client)
        st.session_state["unlocked"] = True
        st.rerun()
    throttle.record_failure(client)
    st.error("Wrong password.")


@st.fragment(run_every=REFRESH_SECONDS)
def refresh() -> None:
    """Rerun the whole page once a minute; the cached queries expire on the same clock."""
    if time.monotonic() - st.session_state.get("full_run_at", 0.0) >= REFRESH_SECONDS - 1:
        st.rerun(scope="app")


main()
