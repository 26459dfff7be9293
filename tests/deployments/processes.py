"""The processes a test started, found by the marker in their environment (they may have left their session or namespace)."""

from __future__ import annotations

import os
from pathlib import Path


def processes_tagged(tag: str) -> list[int]:
    """The pids (other than this one) whose environment holds VIGIA_TEST_TAG=`tag`."""
    return processes_with("VIGIA_TEST_TAG", tag)


def processes_with(variable: str, value: str) -> list[int]:
    """The pids (other than this one) whose environment holds `variable`=`value`."""
    needle = f"{variable}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
