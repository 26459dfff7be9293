"""The Overview's workflow counts come from Prefect's REST API without importing Prefect (~2.6 s on a first visit)."""

import asyncio
import json
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.analytics.test_workflow_runs import runs_in_states

pytestmark = pytest.mark.usefixtures("prefect_server")

COUNT = """
import json, sys
from datetime import datetime
from dashboard.prefect_runs import workflow_counts
counts = workflow_counts.__wrapped__(sys.argv[1], datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3]))
print(json.dumps({"finished": counts.finished, "failed": counts.failed, "prefect_imported": "prefect" in sys.modules}))
"""


def count_in_a_fresh_process(api_url: str, start: datetime, end: datetime) -> dict:
    argv = [sys.executable, "-c", COUNT, api_url, start.isoformat(), end.isoformat()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_workflow_counts_are_the_apis_and_need_no_prefect_import(prefect_server):
    now = datetime.now(timezone.utc)
    before = count_in_a_fresh_process(prefect_server, now - timedelta(hours=1), now + timedelta(minutes=5))
    asyncio.run(runs_in_states(f"counted-{uuid.uuid4().hex[:8]}"))  # 3 completed, 1 failed, 1 crashed, 1 cancelled, 1 late

    after = count_in_a_fresh_process(prefect_server, now - timedelta(hours=1), now + timedelta(minutes=5))

    assert (after["finished"] - before["finished"], after["failed"] - before["failed"]) == (5, 2)
    assert after["prefect_imported"] is False
