"""The machine Vigia runs on: free disk, used memory and busy CPU."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
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


# A previous sample older than this (the health check stopped a while) no longer describes "the probe interval".
CPU_SAMPLE_MAX_AGE_SECONDS = 900.0
CPU_FIRST_SAMPLE_SECONDS = 1.0


@dataclass(frozen=True)
class CpuSample:
    """The kernel's CPU counters at one moment, in clock ticks since boot, all CPUs together."""

    boot_id: str
    busy_ticks: int
    total_ticks: int
    at: float  # Unix time


@dataclass(frozen=True)
class CpuBusy:
    """The busy share of every CPU over an interval."""

    percent: float
    seconds: float


def read_cpu_sample(stat: Path = Path("/proc/stat"), boot_id: Path = Path("/proc/sys/kernel/random/boot_id")) -> CpuSample:
    """Return the CPU counters now: busy is every tick but idle and iowait.

    Raises:
        HostError: when /proc/stat cannot be read.
    """
    try:
        ticks = [int(field) for field in stat.read_text().splitlines()[0].split()[1:9]]  # guest time is inside user time
        boot = boot_id.read_text().strip()
    except (OSError, IndexError, ValueError) as error:
        raise HostError(f"cannot read CPU counters from {stat}: {error}") from error
    idle = ticks[3] + ticks[4]
    return CpuSample(boot, sum(ticks) - idle, sum(ticks), time.time())


def cpu_busy_percent(sample_file: Path | None) -> CpuBusy:
    """Return the busy CPU share since the sample kept in `sample_file`, and keep the new sample there.

    Without a usable previous sample (none kept, another boot or host, older than CPU_SAMPLE_MAX_AGE_SECONDS),
    it samples for CPU_FIRST_SAMPLE_SECONDS instead.

    Raises:
        HostError: when the counters cannot be read or the sample cannot be kept.
    """
    previous = _read_kept_sample(sample_file)
    now = read_cpu_sample()
    if previous is None or previous.boot_id != now.boot_id or not 0 < now.at - previous.at <= CPU_SAMPLE_MAX_AGE_SECONDS:
        previous = now
        time.sleep(CPU_FIRST_SAMPLE_SECONDS)
        now = read_cpu_sample()
    if sample_file is not None:
        _keep_sample(sample_file, now)
    total = now.total_ticks - previous.total_ticks
    busy = now.busy_ticks - previous.busy_ticks
    return CpuBusy(100.0 * busy / total if total > 0 else 0.0, now.at - previous.at)


def _read_kept_sample(sample_file: Path | None) -> CpuSample | None:
    if sample_file is None:
        return None
    try:
        return CpuSample(**json.loads(sample_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # none yet, or unreadable: sample afresh


def _keep_sample(sample_file: Path, sample: CpuSample) -> None:
    try:
        sample_file.parent.mkdir(parents=True, exist_ok=True)
        partial = sample_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(asdict(sample)))
        partial.replace(sample_file)  # atomic: two overlapping checks never read half a sample
    except OSError as error:
        raise HostError(f"cannot keep the CPU sample in {sample_file}: {error.strerror or error}") from error
