"""Every dashboard page as people read it, on three stores — nothing in it yet, a day-old install, a year of history —
in VIGIA_TIMEZONE=America/Sao_Paulo: no raw values (None, nan, NaT, True, False, +00:00), no traceback, and nothing
fetched from a host other than 127.0.0.1 (an ops network may have no internet).

Screenshots land in tests/screenshots/dashboard-<store>-<page>.png (git-ignored).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from prefect.client.orchestration import get_client

from store.database import migrate, open_session
from store.demo import seed_history
from tests.dashboard.test_browser import CHROMIUM, PAGES, SCREENSHOTS, browser, running_dashboard  # noqa: F401

RAW = re.compile(r"\b(None|nan|NaN|NaT|True|False|Traceback)\b|\+00:00")
LOCAL = {"VIGIA_TIMEZONE": "America/Sao_Paulo"}
LOCAL_ONLY = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")


@pytest.fixture
def day_old_store_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'day-old.db'}"
    migrate(url)
    with open_session(url) as session:
        seed_history(session, days=1, seed=5, now=datetime.now(timezone.utc), notes_per_day=40, chats_per_day=60)
    return url


def run_names() -> list[str]:
    """The names of every flow run on the suite's Prefect server (the Workflows page lists them as they are)."""

    names: list[str] = []
    with get_client(sync_client=True) as client:  # sync: Playwright's loop runs in this thread
        while page := client.read_flow_runs(limit=200, offset=len(names)):  # 200: the API's most per page
            names += [run.name for run in page]
    return sorted(names, key=len, reverse=True)


def without(names: list[str], text: str) -> str:
    for name in names:
        text = text.replace(name, "")
    return text


def read_every_page(browser, url: str, name: str) -> dict[str, str]:  # noqa: F811
    """Visit each page; return its visible text, after checking what it fetched."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    texts = {}
    for path, (title, _) in PAGES.items():
        page.goto(f"{url}/{path}?window=30d")
        page.get_by_role("heading", name=title, level=1).wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)
        page.screenshot(path=SCREENSHOTS / f"dashboard-{name}-{path or 'overview'}.png", full_page=True)
        texts[path or "overview"] = page.inner_text("body")
    page.close()
    outside = sorted({address for address in fetched if not address.startswith(LOCAL_ONLY)})
    assert not outside, f"the dashboard on the {name} store fetched {outside}"
    for path, text in texts.items():
        found = RAW.search(text)
        assert not found, f"{path} on the {name} store shows {found.group(0)!r}:\n{text}"
    return texts


@pytest.mark.timeout(300)
def test_every_page_reads_cleanly_on_an_empty_a_day_old_and_a_year_old_store(
    prefect_server,
    sqlite_store_url,
    day_old_store_url,
    year_store_url,
    browser,  # noqa: F811
    tmp_path,
):
    SCREENSHOTS.mkdir(exist_ok=True)
    for name, store in (("empty", sqlite_store_url), ("day-old", day_old_store_url), ("year", year_store_url)):
        with running_dashboard(store, prefect_server, tmp_path, **LOCAL) as url:
            texts = read_every_page(browser, url, name)
        assert "times in America/Sao_Paulo" in texts["overview"]
        assert re.search(r"Last 30 d: \d{4}-\d\d-\d\d \d\d:\d\d → \d{4}-\d\d-\d\d \d\d:\d\d -03", texts["overview"])
        assert "UTC" not in without(run_names(), " ".join(texts.values()))  # names are data: other tests' runs may say UTC
