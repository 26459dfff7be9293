"""prefect.yaml's deployments served by a real Prefect runner in a child process, as `vigia up` serves them,
minus their schedules (a test starts every run itself), and the `up.json` a running platform records.

`python -m tests.served_deployments` is the child; `serving(api_url)` starts it and stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from deployments.platform_state import PlatformState, write_state

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = ("health-check/every-5-min", "backup/daily", "weekly-analytics/weekly")


def record_platform(home: Path, prefect_api_url: str) -> PlatformState:
    """Write the `up.json` a running `vigia up` on `home` would: this (live) process, and the Prefect API it uses."""
    home.mkdir(parents=True, exist_ok=True)
    state = PlatformState(pid=os.getpid(), marker=uuid.uuid4().hex, prefect_api_url=prefect_api_url)
    write_state(home, state)
    return state


@contextlib.contextmanager
def serving(api_url: str, **environ: str) -> Iterator[subprocess.Popen]:
    """Serve the deployments against `api_url` until the block ends; wait until each exists on the server."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "clients,store,deployments",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "VIGIA_TIMEZONE": "UTC",
        **environ,
    }
    child = subprocess.Popen([sys.executable, "-m", "tests.served_deployments"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        for name in DEPLOYMENTS:
            while httpx.get(f"{api_url}/deployments/name/{name}", timeout=10).status_code != 200:
                if child.poll() is not None:
                    raise AssertionError(f"the runner exited with {child.returncode}: {child.stderr.read()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"deployment {name} not served after 120 s")
                time.sleep(0.2)
        yield child
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    """Serve every deployment of prefect.yaml, without schedules, until SIGINT."""
    from prefect import serve

    from deployments.serve import RUN_LIMIT, build_deployments

    deployments = build_deployments()
    for deployment in deployments:
        deployment.schedules = []
    serve(*deployments, limit=RUN_LIMIT, pause_on_shutdown=False, print_starting_message=False)


if __name__ == "__main__":
    main()
