"""Imported first by every benchmark: a private Prefect home, no telemetry, a quiet console, the repo on sys.path.

It must run before Prefect is imported anywhere. Run logs still go to the API at INFO, as in
production; only their console copy is quietened.
"""

import os
import sys
import tempfile
from pathlib import Path

PREFECT_HOME = tempfile.mkdtemp(prefix="vigia-bench-prefect-home-")
os.environ["PREFECT_HOME"] = PREFECT_HOME
os.environ.pop("PREFECT_API_URL", None)
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL"] = "WARNING"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL"] = "WARNING"

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # the loopback fakes live in tests/fakes, outside the wheel
