"""A flow for worker tests: it records where and with what environment a worker ran it, then takes its time."""

import json
import os
import socket
import time
from pathlib import Path

from prefect import flow


@flow(name="where-it-ran")
def where_it_ran(out: str, seconds: float = 0.0) -> None:
    """Write the run's directory, pid, host and Vigia environment to `out` (JSON), then sleep `seconds`."""
    seen = {key: os.environ.get(key) for key in ("VIGIA_HOME", "VIGIA_CHECKOUT", "PREFECT_API_URL", "VIGIA_WORKER_HOST")}
    seen.update(cwd=os.getcwd(), pid=os.getpid(), host=socket.gethostname(), started=time.time())
    partial = Path(f"{out}.partial")
    partial.write_text(json.dumps(seen))
    partial.rename(out)
    time.sleep(seconds)
