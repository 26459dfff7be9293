"""Benchmark the dashboard's first render: Overview tiles in Chromium, against a trivial Streamlit page and the queries alone.

A SQLite store (the default one) gets 30 days of synthetic history from `store.demo`: 20 targets
probed every 5 minutes, incidents, backups, alerts and 50 000 voice notes. A real Prefect server
(the test harness) answers the workflow counts. `vigia dashboard` serves it; headless Chromium
opens the Overview on the 30-day window, and the clock runs from navigation to the five SLA tiles
showing their figures, on a cold cache: a new browser and a new dashboard process each time, visited once
the process has finished starting (its CPU idle, as when `vigia up` started it before anyone looks). Each
figure is the median of ROUNDS such visits, the floor's too: one visit varies by ±0.3 s here.

In the same run, two baselines and a longer history:
- the floor: a trivial Streamlit page showing five `st.metric`, served with the dashboard's own
  Streamlit options and timed in the same Chromium the same way;
- the queries alone: the two Prefect counts, `store.sla.sla_summary` and the open incidents,
  called directly in a fresh process state (first connection included);
- the 30-day store has its hours rolled up, as `vigia demo-data` and the health checks leave it;
- a one-year store: `store.demo` seeds 365 days at the same rates on a scratch database, then the
  store's retention runs as `maintenance/daily` would have kept it (hours rolled up, raw probes
  over 35 days deleted); the Overview's 30-day window is timed on it.

    uv run python benchmarks/dashboard_render.py

Needs Debian's chromium at /usr/bin/chromium. The last line is
`dashboard: X s to first render on 30 d (trivial Streamlit page: Y s, ratio R; queries alone Q s), 365 d: Z s`.
Goals: R ≤ 1.3, Q ≤ 0.3 s, Z ≤ 1.5 X.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path
from statistics import median

import httpx  # noqa: E402
from hermetic import PREFECT_HOME, REPOSITORY  # noqa: E402,I001 — first: sets up the environment before Prefect loads

DAYS = 30
ROUNDS = 3
YEAR_DAYS = 365
VOICE_NOTES = 50_000
NOTES_PER_DAY = VOICE_NOTES // DAYS
TRIVIAL_PAGE = """import streamlit as st

st.title("Overview")
for column, (label, value) in zip(st.columns(5), [("Uptime", "99.9 %"), ("Response p95", "4.1 s"), ("Errors", "0.2 %"),
                                                   ("Recovery", "12 min"), ("Backup age", "5 h")]):
    column.metric(label, value)
"""
TILES_SHOWN = """pending => {
    const values = [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(value => value.innerText.trim());
    return values.length >= 5 && !values.includes(pending);
}"""
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    workdir = Path(tempfile.mkdtemp(prefix="vigia-bench-dashboard-"))
    url = f"sqlite:///{workdir / 'vigia.db'}"
    year_url = f"sqlite:///{workdir / 'year' / 'vigia.db'}"
    try:
        seed_store(url, DAYS)
        (workdir / "year").mkdir()
        seed_store(year_url, YEAR_DAYS)
        with prefect_test_harness(server_startup_timeout=120):
            from prefect.settings import PREFECT_API_URL

            api_url = PREFECT_API_URL.value()
            trivial = median(trivial_render_seconds(workdir) for _ in range(ROUNDS))
            render = median(first_render_seconds(url, api_url, workdir) for _ in range(ROUNDS))
            queries = queries_seconds(url, api_url)
            year_render = median(first_render_seconds(year_url, api_url, workdir / "year") for _ in range(ROUNDS))
            year_queries = queries_seconds(year_url, api_url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(PREFECT_HOME, ignore_errors=True)
    print(f"queries alone on the year store: {year_queries:.2f} s")
    print(
        f"dashboard: {render:.2f} s to first render on 30 d (trivial Streamlit page: {trivial:.2f} s, ratio {render / trivial:.2f}; "
        f"queries alone {queries:.2f} s), 365 d: {year_render:.2f} s"
    )


def seed_store(url: str, days: int) -> None:
    """Seed `days` of demo history at the benchmark's rates; a year is then kept as maintenance/daily keeps it."""
    from store.database import get_engine, migrate, open_session
    from store.demo import seed_history
    from store.probe_hours import roll_up_pending_hours
    from store.retention import apply_retention

    migrate(url)
    started = time.perf_counter()
    with open_session(url) as session:
        summary = seed_history(session, days=days, notes_per_day=NOTES_PER_DAY)
    rows = ", ".join(f"{count} {table}" for table, count in sorted(summary.rows.items()))
    print(f"seeded {days} days in {time.perf_counter() - started:.1f} s: {rows}")
    started = time.perf_counter()
    if days > DAYS:
        report = apply_retention(url, datetime.now(timezone.utc))
        print(f"{report.describe()} in {time.perf_counter() - started:.1f} s")
    else:  # as `vigia demo-data` does, and the health checks would have
        print(f"{roll_up_pending_hours(url, datetime.now(timezone.utc))} hours rolled up in {time.perf_counter() - started:.1f} s")
    get_engine(url).dispose()


def trivial_render_seconds(workdir: Path) -> float:
    """Serve a page of five st.metric with the dashboard's Streamlit options and time it in Chromium the same way."""
    from deployments.dashboard import streamlit_options

    page = workdir / "trivial.py"
    page.write_text(TRIVIAL_PAGE)
    port = _free_port()
    flags = [f"--{name}={value}" for name, value in streamlit_options("127.0.0.1", port).items()]
    argv = [sys.executable, "-m", "streamlit", "run", str(page), *flags]
    return _time_page(argv, port, workdir, dict(os.environ), "")


def first_render_seconds(store_url: str, api_url: str, workdir: Path) -> float:
    """Serve the dashboard, open the Overview on 30 days in Chromium, and time it until the tiles show."""
    port = _free_port()
    env = {**os.environ, "VIGIA_HOME": str(workdir), "VIGIA_DATABASE_URL": store_url, "PREFECT_API_URL": api_url}
    env.pop("VIGIA_DASHBOARD_PASSWORD", None)
    return _time_page(["vigia", "dashboard", "--port", str(port)], port, workdir, env, "?window=30d")


def _time_page(argv: list[str], port: int, workdir: Path, env: dict[str, str], query: str) -> float:
    """Start a Streamlit server, open its page in a new headless Chromium, and time navigation to the fifth metric."""
    from playwright.sync_api import sync_playwright

    from dashboard.panels import PENDING

    server = subprocess.Popen(
        argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", server)
        _wait_idle(server.pid)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            started = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/{query}")
            # The fifth tile's value, and none still pending (the Overview draws its tiles before their figures).
            page.locator('[data-testid="stMetric"]').nth(4).locator('[data-testid="stMetricValue"]').wait_for(timeout=60_000)
            page.wait_for_function(TILES_SHOWN, arg=PENDING, timeout=60_000)
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


def _wait_idle(pid: int, seconds: float = 0.5, share: float = 0.05) -> None:
    """Wait until the process uses under `share` of a core over `seconds` (at most 30 s): it has finished starting."""
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = _cpu_ticks(pid)
        time.sleep(seconds)
        if (_cpu_ticks(pid) - before) / ticks < share * seconds:
            return


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    assert REPOSITORY.is_dir()
    main()
