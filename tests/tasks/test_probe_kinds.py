"""The probe registry: every kind is one row (blocks.probe_kinds) and one measure (tasks.probe_measures)."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from blocks.health_targets import HealthTarget
from blocks.probe_kinds import PROBE_KINDS
from tasks.probe_measures import MEASURES


def test_every_kind_has_its_measure_and_every_measure_its_row():
    assert sorted(PROBE_KINDS) == sorted(MEASURES)


def test_a_target_accepts_exactly_the_kinds_of_the_registry():
    kind_field = HealthTarget.model_fields["kind"].annotation
    assert sorted(typing.get_args(kind_field)) == sorted(PROBE_KINDS)
    with pytest.raises(ValidationError, match="kind"):
        HealthTarget(name="x", kind="smtp")


def test_a_target_gets_its_default_thresholds_from_its_kinds_row():
    for kind, row in PROBE_KINDS.items():
        target = HealthTarget.model_construct(name="x", kind=kind, warning_at=None, critical_at=None)
        assert target.thresholds() == (row.warning_at, row.critical_at), kind


@pytest.mark.parametrize("kind", sorted(kind for kind, row in PROBE_KINDS.items() if row.needs_url))
def test_a_kind_that_needs_a_url_refuses_a_target_without_one(kind: str):
    with pytest.raises(ValidationError, match=f"target 'x': url is required for kind '{kind}'"):
        HealthTarget(name="x", kind=kind, dsn="redis://127.0.0.1/0", queue_key="k")


@pytest.mark.parametrize("kind", sorted(kind for kind, row in PROBE_KINDS.items() if row.needs_dsn))
def test_a_kind_that_needs_a_dsn_refuses_a_target_without_one(kind: str):
    with pytest.raises(ValidationError, match=f"target 'x': dsn is required for kind '{kind}'; add it to credentials as 'x'"):
        HealthTarget(name="x", kind=kind, url="127.0.0.1:1", queue_key="k")


def test_the_cpu_kind_follows_the_design_busy_above_80_warns_above_90_fails():
    assert HealthTarget(name="cpu", kind="cpu").thresholds() == (80.0, 90.0)
    assert PROBE_KINDS["cpu"].lower_is_worse is False
    assert [kind for kind, row in PROBE_KINDS.items() if row.lower_is_worse] == ["http", "disk"]
