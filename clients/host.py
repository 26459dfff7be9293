"""The machine Vigia runs on: free disk and used memory."""

from __future__ import annotations

import shutil
from pathlib import Path

from clients.errors import ClientError


class HostError(ClientError):
    """A host measure could not be read."""


def disk_free_percent(path: str) -> tuple[float, int]:
    """Return the free space of the file system holding `path`, as a percentage and in bytes.

    Raises:
        HostError: when the path does not exist.
    """
    try:
        usage = shutil.disk_usage(path)
    except OSError as error:
        raise HostError(f"cannot read disk usage of {path}: {error.strerror or error}") from error
    return 100.0 * usage.free / usage.total, usage.free


def memory_used_percent(meminfo: Path = Path("/proc/meminfo")) -> float:
    """Return used memory as a percentage: 100 − MemAvailable ÷ MemTotal.

    Raises:
        HostError: when /proc/meminfo cannot be read.
    """
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        total = int(fields["MemTotal"].split()[0])
        available = int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError) as error:
        raise HostError(f"cannot read memory use from {meminfo}: {error}") from error
    return 100.0 * (total - available) / total
