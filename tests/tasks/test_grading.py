"""`grade`: the two tiers of thresholds and the latency limit; and probes that fail instead of raising."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from blocks.health_targets import HealthTarget
from tasks.probes import Measure, grade
from tests.tasks.servers import probe

# --- probe errors --------------------------------------------------------------------------------


def test_probe_of_an_unknown_kind_fails_naming_the_kind_instead_of_raising() -> None:
    target = HealthTarget.model_construct(name="mystery", kind="bogus")

    result = probe(target)

    assert (result.target, result.kind, result.ok, result.level) == ("mystery", "bogus", False, "critical")
    assert result.reason == "unknown probe kind 'bogus'"


def test_probe_that_raises_an_unexpected_exception_fails_naming_it_instead_of_raising() -> None:
    # model_construct skips validation, so this postgres target has no DSN and the probe itself errs.
    target = HealthTarget.model_construct(name="broken", kind="postgres")

    result = probe(target)

    assert (result.target, result.ok, result.level) == ("broken", False, "critical")
    assert result.reason == "probe error: AttributeError: 'NoneType' object has no attribute 'get_secret_value'"
    assert result.latency_ms is not None


# --- grade: the two tiers and the latency limit ----------------------------------------------------


AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("kind", "value", "level", "ok", "reason"),
    [
        ("prefect", 1.0, "ok", True, "rate"),
        ("prefect", 1.5, "warning", True, "rate (warning threshold 1)"),
        ("prefect", 5.0, "warning", True, "rate (warning threshold 1)"),
        ("prefect", 5.5, "critical", False, "rate (critical threshold 5)"),
        ("memory", 80.0, "ok", True, "rate"),
        ("memory", 85.0, "warning", True, "rate (warning threshold 80)"),
        ("memory", 90.1, "critical", False, "rate (critical threshold 90)"),
        ("disk", 15.0, "ok", True, "rate"),
        ("disk", 14.9, "warning", True, "rate (warning threshold 15)"),
        ("disk", 9.9, "critical", False, "rate (critical threshold 10)"),
        ("queue", 100_000, "warning", True, "rate (warning threshold 100)"),
        ("redis", 95.0, "critical", False, "rate (critical threshold 90)"),
    ],
    ids=lambda value: str(value),
)
def test_grade_applies_the_default_two_tier_thresholds_only_past_each_threshold(
    kind: str, value: float, level: str, ok: bool, reason: str
) -> None:
    target = HealthTarget.model_construct(name="t", kind=kind)

    result = grade(target, Measure(value, 10.0, "rate"), AT)

    assert (result.level, result.ok, result.reason, result.value, result.at) == (level, ok, reason, value, AT)


def test_grade_reports_a_crossed_threshold_rather_than_slowness() -> None:
    target = HealthTarget(name="t", kind="memory", latency_warning_ms=100)

    result = grade(target, Measure(85.0, 9000.0, "85.0% used"), AT)

    assert (result.level, result.reason) == ("warning", "85.0% used (warning threshold 80)")


def test_grade_of_a_measure_without_a_value_only_checks_latency() -> None:
    target = HealthTarget(name="t", kind="tcp", url="127.0.0.1:1", latency_warning_ms=100)

    fast = grade(target, Measure(None, 100.0, "connected"), AT)
    slow = grade(target, Measure(None, 100.4, "connected"), AT)

    assert (fast.level, fast.reason) == ("ok", "connected")
    assert (slow.level, slow.ok, slow.reason) == ("warning", True, "slow: 100 ms (warning above 100 ms)")
