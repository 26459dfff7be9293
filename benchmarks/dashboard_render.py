"""Benchmark the dashboard's first render: Overview tiles in Chromium against the SLA queries alone.

A SQLite store (the default one) gets 30 days of synthetic history from `store.demo`: 20 targets
probed every 5 minutes, incidents, backups, alerts and 50 000 voice notes. A real Prefect server
(the test harness) answers the workflow counts. `vigia dashboard` serves it; headless Chromium
opens the Overview on the 30-day window, and the clock runs from navigation to the five SLA tiles
being shown, on a cold cache. The baseline is the same work without Streamlit or a browser: the
two Prefect counts and `store.sla.sla_summary` plus the open incidents, in a fresh process state
(first connection included).

    uv run python benchmarks/dashboard_render.py

Needs Debian's chromium at /usr/bin/chromium. The last line is
`dashboard: X s to first render (queries alone: Y s, ratio R)`. Goals: X ≤ 2 s and R ≤ 2.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path

import httpx  # noqa: E402
from hermetic import PREFECT_HOME, REPOSITORY  # noqa: E402,I001 — first: sets up the environment before Prefect loads

DAYS = 30
VOICE_NOTES = 50_000
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    from store.database import get_engine, migrate, open_session
    from store.demo import seed_history

    workdir = Path(tempfile.mkdtemp(prefix="vigia-bench-dashboard-"))
    url = f"sqlite:///{workdir / 'vigia.db'}"
    try:
        migrate(url)
        started = time.perf_counter()
        with open_session(url) as session:
            summary = seed_history(session, days=DAYS, notes_per_day=VOICE_NOTES // DAYS)
        get_engine(url).dispose()
        rows = ", ".join(f"{count} {table}" for table, count in sorted(summary.rows.items()))
        print(f"seeded {DAYS} days in {time.perf_counter() - started:.1f} s: {rows}")
        with prefect_test_harness(server_startup_timeout=120):
            from prefect.settings import PREFECT_API_URL

            api_url = PREFECT_API_URL.value()
            render = first_render_seconds(url, api_url, workdir)
            queries = queries_seconds(url, api_url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(PREFECT_HOME, ignore_errors=True)
    print(f"dashboard: {render:.2f} s to first render (queries alone: {queries:.2f} s, ratio {render / queries:.2f})")


def first_render_seconds(store_url: str, api_url: str, workdir: Path) -> float:
    """Serve the dashboard, open the Overview on 30 days in Chromium, and time it until the tiles show."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "VIGIA_HOME": str(workdir), "VIGIA_DATABASE_URL": store_url, "PREFECT_API_URL": api_url}
    env.pop("VIGIA_DASHBOARD_PASSWORD", None)
    server = subprocess.Popen(
        ["vigia", "dashboard", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            started = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/?window=30d")
            page.locator('[data-testid="stMetric"]').nth(4).locator('[data-testid="stMetricValue"]').wait_for(timeout=60_000)
            elapsed = time.perf_counter() - started
            tiles = page.locator('[data-testid="stMetricValue"]').all_inner_texts()
            print(f"tiles shown: {' | '.join(text.strip() for text in tiles)}")
            browser.close()
        return elapsed
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def queries_seconds(store_url: str, api_url: str) -> float:
    """Time what the Overview computes, called directly: Prefect's two counts, the SLA summary, open incidents."""
    from store.database import get_engine, open_session
    from store.incidents import list_incidents
    from store.sla import WorkflowRuns, sla_summary

    get_engine.cache_clear()  # a first connection, like the dashboard's first visit
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(days=DAYS)
    started = time.perf_counter()
    counts = []
    with httpx.Client(base_url=api_url, timeout=10) as client:
        for types in (["COMPLETED", "FAILED", "CRASHED"], ["FAILED", "CRASHED"]):
            body = {
                "flow_runs": {"state": {"type": {"any_": types}}, "end_time": {"after_": start.isoformat(), "before_": end.isoformat()}}
            }
            counts.append(client.post("/flow_runs/count", json=body).raise_for_status().json())
    with open_session(store_url) as session:
        sla_summary(session, start, end, WorkflowRuns(finished=counts[0], failed=counts[1]), now=end)
        list_incidents(session, open_only=True)
    return time.perf_counter() - started


def _wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"vigia dashboard exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"vigia dashboard did not answer at {url} within 90 s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    assert REPOSITORY.is_dir()
    main()
