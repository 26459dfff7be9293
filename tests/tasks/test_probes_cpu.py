"""`probe_target` for this host's CPU: the busy share of every CPU since the previous probe, from /proc/stat."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

from blocks.health_targets import HealthTarget
from clients.host import read_cpu_sample
from tasks.probe_measures import ProbeContext
from tests.tasks.servers import probe

# A kept sample whose counters are this many ticks behind now dwarfs whatever the CPUs do during the test.
TICKS_BEHIND = 10_000_000


def keep_sample(samples_dir: Path, name: str, busy_ticks_behind: int, seconds_ago: float) -> None:
    now = read_cpu_sample()
    earlier = replace(
        now, busy_ticks=now.busy_ticks - busy_ticks_behind, total_ticks=now.total_ticks - TICKS_BEHIND, at=time.time() - seconds_ago
    )
    samples_dir.mkdir(parents=True, exist_ok=True)
    (samples_dir / f"{name}.cpu.json").write_text(json.dumps(asdict(earlier)))


def test_first_cpu_probe_samples_a_second_and_keeps_its_counters_for_the_next(tmp_path: Path) -> None:
    result = probe(HealthTarget(name="cpu", kind="cpu", warning_at=100, critical_at=100), ProbeContext(samples_dir=tmp_path))

    assert (result.ok, result.level, result.latency_ms) == (True, "ok", None)
    assert 0 <= result.value <= 100
    assert result.reason == f"{result.value:.1f}% busy over the last 1 s"
    kept = json.loads((tmp_path / "cpu.cpu.json").read_text())
    assert kept["boot_id"] == read_cpu_sample().boot_id and kept["total_ticks"] <= read_cpu_sample().total_ticks


def test_cpu_probe_measures_the_interval_since_the_previous_probe(tmp_path: Path) -> None:
    keep_sample(tmp_path, "cpu", busy_ticks_behind=TICKS_BEHIND // 2, seconds_ago=300)

    result = probe(HealthTarget(name="cpu", kind="cpu"), ProbeContext(samples_dir=tmp_path))

    assert (result.ok, result.level) == (True, "ok")
    assert abs(result.value - 50.0) < 0.1
    assert re.fullmatch(r"50\.\d% busy over the last 300 s", result.reason)


def test_cpu_busy_above_90_percent_since_the_previous_probe_is_critical(tmp_path: Path) -> None:
    keep_sample(tmp_path, "cpu", busy_ticks_behind=TICKS_BEHIND * 95 // 100, seconds_ago=300)

    result = probe(HealthTarget(name="cpu", kind="cpu"), ProbeContext(samples_dir=tmp_path))

    assert (result.ok, result.level) == (False, "critical")
    assert re.fullmatch(r"95\.\d% busy over the last 300 s \(critical threshold 90\)", result.reason)


def test_cpu_busy_above_80_percent_is_a_warning(tmp_path: Path) -> None:
    keep_sample(tmp_path, "cpu", busy_ticks_behind=TICKS_BEHIND * 85 // 100, seconds_ago=300)

    result = probe(HealthTarget(name="cpu", kind="cpu"), ProbeContext(samples_dir=tmp_path))

    assert (result.ok, result.level) == (True, "warning")
    assert re.fullmatch(r"85\.\d% busy over the last 300 s \(warning threshold 80\)", result.reason)


def test_a_sample_from_another_boot_or_too_old_is_not_used(tmp_path: Path) -> None:
    keep_sample(tmp_path, "stale", busy_ticks_behind=TICKS_BEHIND, seconds_ago=3600)
    keep_sample(tmp_path, "rebooted", busy_ticks_behind=TICKS_BEHIND, seconds_ago=300)
    rebooted = tmp_path / "rebooted.cpu.json"
    rebooted.write_text(json.dumps({**json.loads(rebooted.read_text()), "boot_id": "another-boot"}))

    results = [
        probe(HealthTarget(name=name, kind="cpu", warning_at=100, critical_at=100), ProbeContext(samples_dir=tmp_path))
        for name in ("stale", "rebooted")
    ]

    assert [result.reason for result in results] == [f"{result.value:.1f}% busy over the last 1 s" for result in results]
