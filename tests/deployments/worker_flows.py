"""A flow for worker tests: it records where and with what environment a worker ran it, then takes its time."""

import json
import os
import socket
import time
from pathlib import Path

import psycopg
from prefect import flow


@flow(name="where-it-ran")
def where_it_ran(out: str, seconds: float = 0.0) -> None:
    """Write the run's directory, network namespace, Vigia environment and whether the store answers to `out` (JSON),
    then sleep `seconds`."""
    seen = {key: os.environ.get(key) for key in ("VIGIA_HOME", "VIGIA_CHECKOUT", "PREFECT_API_URL", "VIGIA_WORKER_HOST")}
    seen.update(cwd=os.getcwd(), pid=os.getpid(), host=socket.gethostname(), started=time.time())
    seen["netns"] = os.readlink("/proc/self/ns/net")
    store = os.environ.get("VIGIA_DATABASE_URL", "")
    if store.startswith("postgresql"):
        with psycopg.connect(store.replace("+psycopg", ""), connect_timeout=5) as connection:
            seen["store_answers"] = connection.execute("SELECT 1").fetchone()[0] == 1
    partial = Path(f"{out}.partial")
    partial.write_text(json.dumps(seen))
    partial.rename(out)
    time.sleep(seconds)
