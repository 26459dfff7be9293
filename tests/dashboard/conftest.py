"""A seeded store for the dashboard's tests, the window a page printed, and a clean Streamlit cache per test."""

import re
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import streamlit as st

from dashboard.local_time import zone
from dashboard.login_throttle import shared_throttle
from store.database import get_engine, migrate, open_session
from store.demo import seed_history

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
CLOSED_PREFECT_API = "http://127.0.0.1:9/api"  # the discard port: nothing listens there
_CAPTION = re.compile(r": (\d{4}-\d\d-\d\d \d\d:\d\d) → (\d{4}-\d\d-\d\d \d\d:\d\d) ([-+]\d\d|[A-Z]{3,4})\b")


@pytest.fixture(scope="session")
def seeded_store_url(tmp_path_factory):
    """A SQLite store holding a week of synthetic history ending now (the dashboard only reads it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('seeded') / 'vigia.db'}"
    migrate(url)
    with open_session(url) as session:
        seed_history(session, days=7, notes_per_day=40, chats_per_day=60, now=datetime.now(timezone.utc))
    yield url
    get_engine(url).dispose()


@pytest.fixture(autouse=True)
def fresh_cache():
    """Cached queries (and the password throttle) of one test must never answer another's."""
    st.cache_data.clear()
    shared_throttle.cache_clear()
    yield
    st.cache_data.clear()
    shared_throttle.cache_clear()


@pytest.fixture
def dashboard_env(monkeypatch):
    """Point the dashboard at a store and, by default, at a Prefect API that does not answer."""

    def configure(store_url: str, prefect_api: str = CLOSED_PREFECT_API, password: str | None = None) -> None:
        monkeypatch.setenv("VIGIA_DATABASE_URL", store_url)
        monkeypatch.setenv("PREFECT_API_URL", prefect_api)
        monkeypatch.delenv("PREFECT_UI_URL", raising=False)
        if password is None:
            monkeypatch.delenv("VIGIA_DASHBOARD_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("VIGIA_DASHBOARD_PASSWORD", password)

    return configure


def window_of(caption: str) -> tuple[datetime, datetime]:
    """Return the (start, end) a page printed under its title, in VIGIA_TIMEZONE (the dashboard's, from the same environment)."""
    match = _CAPTION.search(caption)
    assert match, f"no window in {caption!r}"
    here = ZoneInfo(zone())
    start, end = (datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=here).astimezone(timezone.utc) for text in match.groups()[:2])
    assert f"{end.astimezone(here):%Z}" == match.group(3), caption
    return start, end
