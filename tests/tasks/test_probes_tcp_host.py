"""`probe_target` for TCP ports and this host's disk and memory."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from blocks.health_targets import HealthTarget
from tests.tasks.servers import probe

# --- tcp -----------------------------------------------------------------------------------------


def test_tcp_probe_of_an_open_port_is_ok(site_url: str) -> None:
    address = site_url.removeprefix("http://")

    result = probe(HealthTarget(name="port", kind="tcp", url=address))

    assert (result.ok, result.level, result.value, result.reason) == (True, "ok", None, "connected")
    assert result.latency_ms is not None and result.latency_ms > 0


def test_tcp_probe_of_a_closed_port_fails_naming_the_address(closed_port: int) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=f"127.0.0.1:{closed_port}"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason.startswith(f"cannot connect to 127.0.0.1:{closed_port}: ")


@pytest.mark.parametrize("address", ["localhost", "localhost:", ":6379", "localhost:http", "localhost:0", "localhost:65536"])
def test_tcp_probe_of_a_malformed_address_fails_saying_host_port_is_expected(address: str) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=address))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"malformed address {address!r}: expected host:port"


def test_tcp_probe_slower_than_the_latency_limit_is_a_warning(site_url: str) -> None:
    result = probe(HealthTarget(name="port", kind="tcp", url=site_url.removeprefix("http://"), latency_warning_ms=0.001))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"slow: {result.latency_ms:.0f} ms (warning above 0.001 ms)"


# --- disk and memory -----------------------------------------------------------------------------


def test_disk_probe_of_a_real_path_is_ok_with_free_percent_as_value(tmp_path: Path) -> None:
    # Thresholds pinned to 0 so the outcome does not depend on how full this machine's disk is.
    usage = shutil.disk_usage(tmp_path)

    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), warning_at=0, critical_at=0))

    assert (result.ok, result.level, result.latency_ms) == (True, "ok", None)
    assert result.value == pytest.approx(100 * usage.free / usage.total, abs=0.5)
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\)", result.reason)


def test_disk_probe_of_a_path_that_does_not_exist_fails_naming_it() -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url="/nonexistent/vigia-backups"))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == "cannot read disk usage of /nonexistent/vigia-backups: No such file or directory"


def test_disk_probe_under_the_warning_threshold_is_a_warning_because_lower_is_worse(tmp_path: Path) -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), warning_at=101, critical_at=0))

    assert (result.ok, result.level) == (True, "warning")
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\) \(warning threshold 101\)", result.reason)


def test_disk_probe_under_the_critical_threshold_fails(tmp_path: Path) -> None:
    result = probe(HealthTarget(name="disk", kind="disk", url=str(tmp_path), critical_at=101))

    assert (result.ok, result.level) == (False, "critical")
    assert re.fullmatch(rf"{result.value:.1f}% free \(\d+\.\d GiB\) \(critical threshold 101\)", result.reason)


def test_memory_probe_is_ok_with_used_percent_as_value() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", warning_at=100, critical_at=100))

    assert (result.ok, result.level, result.latency_ms) == (True, "ok", None)
    assert 0 < result.value <= 100
    assert result.reason == f"{result.value:.1f}% used"


def test_memory_probe_over_the_warning_threshold_is_a_warning() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", warning_at=0, critical_at=100))

    assert (result.ok, result.level) == (True, "warning")
    assert result.reason == f"{result.value:.1f}% used (warning threshold 0)"


def test_memory_probe_over_the_critical_threshold_fails() -> None:
    result = probe(HealthTarget(name="memory", kind="memory", critical_at=0))

    assert (result.ok, result.level) == (False, "critical")
    assert result.reason == f"{result.value:.1f}% used (critical threshold 0)"
