"""The short steps `vigia up` runs in children of their own, so the supervisor never loads Prefect or Alembic:

    python -m deployments.bootstrap migrate
    python -m deployments.bootstrap setup --dashboard-url URL --prefect-ui-url URL

Each prints what it did (setup: one line per Block document) and exits 0, or prints one `vigia: …` line and
exits 1 (2 for a bad setting)."""

from __future__ import annotations

import argparse
import os
import sys
import time

import httpx

from deployments.parts import prefect_headers
from deployments.settings import load_settings_or_exit

PREFECT_WAIT_SECONDS = 180


def main(argv: list[str] | None = None) -> int:
    """Run one step; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deployments.bootstrap")
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("migrate", help="Migrate the store.")
    setup = steps.add_parser("setup", help="Create or update the Block documents from the settings.")
    setup.add_argument("--dashboard-url", required=True)
    setup.add_argument("--prefect-ui-url", required=True)
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    if args.step == "migrate":
        return migrate_store(settings)
    return save_blocks(settings, args.dashboard_url, args.prefect_ui_url)


def migrate_store(settings) -> int:
    """Migrate the store to the newest schema."""
    from store.database import StoreError, migrate

    try:
        migrate(settings.database_url)
    except StoreError as error:
        print(f"vigia: {error}", file=sys.stderr)
        return 1
    return 0


def save_blocks(settings, dashboard_url: str, prefect_ui_url: str) -> int:
    """Create or update every Block document (the Prefect API is PREFECT_API_URL) and print one line for each."""
    from clients.notify import NotifyConfigError
    from deployments.setup import run_setup
    from store.database import StoreError

    if not wait_for_prefect(os.environ["PREFECT_API_URL"], prefect_headers(settings), PREFECT_WAIT_SECONDS):
        print(
            f"vigia: the Prefect server at {os.environ['PREFECT_API_URL']} did not answer within {PREFECT_WAIT_SECONDS} s", file=sys.stderr
        )
        return 1
    try:
        report = run_setup(settings, dashboard_url=dashboard_url, prefect_ui_url=prefect_ui_url)
    except (NotifyConfigError, StoreError) as error:
        print(f"vigia: {error}", file=sys.stderr)
        return 1
    for line in report.lines:
        print(line)
    return 0


def wait_for_prefect(api_url: str, headers: dict[str, str], seconds: float) -> bool:
    """Wait until Prefect's API answers /health (this child loads Prefect while the server starts)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", headers=headers, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    sys.exit(main())
