"""End to end: `vigia dashboard` serves every page to headless Chromium with the numbers of `store.sla`.

Screenshots of each page land in tests/screenshots/ (git-ignored).
"""

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg
import pytest

from dashboard.panels import PENDING
from store.conversations import conversation_figures
from store.database import open_session
from store.demo import seed_history
from store.sla import FIGURES, response_times, sla_summary
from tasks.workflow_runs import count_workflow_runs, total_runs
from tests.conftest import POSTGRES_ADMIN
from tests.dashboard.conftest import ROOT, window_of
from tests.fakes.server import free_port
from tests.polling import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "tests" / "screenshots"
# Each page's title, and the heading of its last section: once that shows, the script has finished.
PAGES = {
    "": ("Service levels", "Open incidents"),
    "targets": ("Targets", "Incidents"),
    "conversations": ("Conversations", "Messages per hour"),
    "transcriptions": ("Transcriptions", "Failures by reason"),
    "backups": ("Backups", "Restores"),
    "alerts": ("Alerts", "History"),
    "workflows": ("Workflows", "Latest runs"),
}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium (`make test` installs it)"
)


@pytest.fixture
def flow_runs(prefect_server) -> list[str]:
    """A deployment with five finished runs (three completed, one failed, one crashed); their ids."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Crashed, Failed, Pending, Running

    ids = []
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("health-check")
        deployment_id = client.create_deployment(flow_id=flow_id, name="every-5-min")
        for final in (Completed, Completed, Completed, Failed, Crashed):
            run = client.create_flow_run_from_deployment(deployment_id)
            for state in (Pending(), Running(), final()):
                client.set_flow_run_state(run.id, state, force=True)
            ids.append(str(run.id))
    return ids


@contextlib.contextmanager
def running_dashboard(store_url: str, prefect_api: str, home: Path, **environ: str) -> Iterator[str]:
    """`vigia dashboard` on a free port, reading `store_url` and the Prefect API; its URL until the block ends."""
    port = free_port()
    env = {**os.environ, "VIGIA_HOME": str(home), "VIGIA_DATABASE_URL": store_url, "PREFECT_API_URL": prefect_api, **environ}
    env.pop("VIGIA_DASHBOARD_PASSWORD", None)
    process = subprocess.Popen(
        ["vigia", "dashboard", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, process.stdout.read()
        try:
            return httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, "vigia dashboard answering /_stcore/health", every=0.3)
    yield url
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    output = process.stdout.read()
    assert "Traceback" not in output, output


@pytest.fixture
def dashboard_url(seeded_store_url, prefect_server, flow_runs, tmp_path):
    """`vigia dashboard` on a free port, reading the seeded store and the session's Prefect server."""
    with running_dashboard(seeded_store_url, prefect_server, tmp_path) as url:
        yield url


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(page, url: str, path: str):
    title, last_section = PAGES[path]
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, level=1).wait_for(timeout=30_000)
    page.get_by_role("heading", name=last_section, level=3).wait_for(timeout=30_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.vega-embed')].every(chart => chart.querySelector('canvas, svg'))", timeout=30_000
    )
    assert page.locator('[data-testid="stException"]').count() == 0


def tiles(page) -> dict[str, tuple[str, str]]:
    found = {}
    for tile in page.locator('[data-testid="stMetric"]').all():
        delta = tile.locator('[data-testid="stMetricDelta"]')
        found[tile.locator('[data-testid="stMetricLabel"]').inner_text().strip()] = (
            tile.locator('[data-testid="stMetricValue"]').inner_text().strip(),
            delta.inner_text().strip() if delta.count() else "",
        )
    return found


@pytest.mark.timeout(240)
def test_every_page_renders_the_sla_numbers_in_chromium(flow_runs, dashboard_url, browser, seeded_store_url):
    SCREENSHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    open_page(page, dashboard_url, "")
    start, end = window_of(page.get_by_text("Last 7 d:").inner_text())
    # Other tests share this Prefect server: count the window's runs independently of the dashboard's own code.
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        runs = total_runs(thread.submit(asyncio.run, count_workflow_runs.fn(start, end)).result())
    assert runs.finished >= 5 and runs.failed >= 2  # at least this test's own runs
    with open_session(seeded_store_url) as session:
        expected = sla_summary(session, start, end, runs, now=end)
        times = response_times(session, start, end)
    verdict = {True: "meets", False: "misses", None: "no data for"}
    assert tiles(page) == {row.name: (row.display, f"{verdict[row.meets]} target {row.target}") for row in expected}
    assert page.locator('[data-testid="stAlert"]').filter(has_text="unreachable").count() == 0
    page.screenshot(path=SCREENSHOTS / "overview.png", full_page=True)

    for path in list(PAGES)[1:]:
        open_page(page, dashboard_url, path)
        page.screenshot(path=SCREENSHOTS / f"{path}.png", full_page=True)
        if path == "transcriptions":
            assert tiles(page)["p95"] == (f"{times.p95_seconds:.1f} s", "target < 15 s")
        if path == "conversations":
            shown_start, shown_end = window_of(page.get_by_text("Last 7 d:").inner_text())  # this page's own window
            with open_session(seeded_store_url) as session:
                bot = conversation_figures(session, shown_start, shown_end)
            shown = tiles(page)
            assert shown["Customer messages"][0] == f"{bot.messages_in:,}" and shown["Active chats"][0] == f"{bot.active_chats:,}"
            assert shown["Reply p95"] == (f"{bot.response_p95:.1f} s", "target ≤ 60 s")
        if path == "workflows":
            assert (tiles(page)["Finished runs"][0], tiles(page)["Failed or crashed"][0]) == (str(runs.finished), str(runs.failed))
            for run_id in flow_runs:
                assert page.locator(f'a[href="{prefect_ui(dashboard_url)}/runs/flow-run/{run_id}"]').count() == 1
        assert page.locator('[data-testid="stAlert"]').filter(has_text="unreachable").count() == 0


def prefect_ui(_dashboard_url: str) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value().removesuffix("/api")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_the_overview_shows_its_tiles_while_their_figures_are_still_read(store_url, prefect_server, browser, tmp_path):
    # The probe tables locked: the SLA read waits on them; the rest of the page (store contents, Prefect) does not.
    with open_session(store_url) as session:
        seed_history(session, days=2, notes_per_day=40, now=datetime.now(timezone.utc))
    with running_dashboard(store_url, prefect_server, tmp_path) as url, psycopg.connect(POSTGRES_ADMIN) as lock:
        lock.execute(f'SET search_path TO "{store_url.rsplit("%3D", 1)[1]}"')  # the schema of the session's store
        lock.execute("LOCK TABLE probe_results, probe_hours, rollup_marks, state_changes IN ACCESS EXCLUSIVE MODE")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator('[data-testid="stMetric"]').nth(4).wait_for(timeout=30_000)
        pending = tiles(page)
        assert list(pending) == [name for _, name, _ in FIGURES]
        assert all(value == PENDING for value, _ in pending.values()), pending
        lock.rollback()  # the read goes on: the same tiles get their figures
        page.get_by_role("heading", name="Open incidents", level=3).wait_for(timeout=30_000)
        shown = tiles(page)
    assert list(shown) == list(pending) and not any(value == PENDING for value, _ in shown.values()), shown
