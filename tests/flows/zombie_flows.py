"""A flow that runs until killed, for the zombie-run test: `python -m tests.flows.zombie_flows OUT` writes its run id to OUT."""

import sys
import time
from pathlib import Path

from prefect import flow, tags
from prefect.runtime import flow_run


@flow(name="backup")  # a backup: its zombie is a critical alert
def long_backup(out: str) -> None:
    Path(out).write_text(flow_run.id)
    time.sleep(600)


if __name__ == "__main__":
    with tags("vigia"):
        long_backup(sys.argv[1])
