"""The one reader of `prefect.yaml`: its deployments as `prefect deploy` reads them, for `vigia up` (serve) and the tests.

Prefect 3.9.1's own steps, with its public models and templating: every `{{ $VAR }}` filled from the environment
(`apply_values`), placeholders nothing fills dropped from schedules and triggers, a trigger's `parameters` kept as
written (Jinja filled when its event comes), each schedule made a `DeploymentScheduleCreate` of a cron, interval or rrule
schedule with its time zone, anchor, `active`, slug and parameters, a `concurrency_limit` mapping made a limit and its
options. What `prefect deploy` alone does (work pool, pull steps, build and push) is not served."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from prefect.types._datetime import parse_datetime  # private, but what `prefect deploy` parses anchor_date with
from prefect.utilities.templating import PlaceholderType, apply_values, find_placeholders

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"
SCHEDULE_KEYS = {"cron", "interval", "rrule", "timezone", "anchor_date", "active", "parameters", "slug", "replaces", "day_or"}
NOT_SERVED = ("work_pool", "build", "push", "pull")  # a worker's: its pull steps are filled on the worker, at run time
UNSERVED = {PlaceholderType.BLOCK_DOCUMENT: "a Block", PlaceholderType.VARIABLE: "a Prefect variable"}


class DefinitionError(Exception):
    """prefect.yaml holds a deployment Vigia cannot serve; the message names the deployment and the field."""


@dataclass(frozen=True)
class Definition:
    """One deployment entry of prefect.yaml, templated as `prefect deploy` templates it."""

    name: str
    entrypoint: str  # as written: `path/to/module.py:function`
    description: str | None = None
    version: str | None = None
    version_type: str | None = None
    tags: list[str] = field(default_factory=list)
    schedules: list[DeploymentScheduleCreate] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)  # validated by Prefect when the deployment is built
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | ConcurrencyLimitConfig | None = None
    enforce_parameter_schema: bool | None = None
    paused: bool | None = None

    def load_flow(self):
        """Import and return the flow object the entrypoint names (`path/to/module.py:function`)."""
        module = importlib.import_module(self.module_path.rpartition(".")[0])
        return getattr(module, self.entrypoint.partition(":")[2])

    @property
    def module_path(self) -> str:
        """The entrypoint as a module path (`flows.backup.backup`), as the served runner records it."""
        path, _, function = self.entrypoint.partition(":")
        return f"{path.removesuffix('.py').replace('/', '.')}.{function}"


def read_definitions(path: Path = PREFECT_YAML) -> list[Definition]:
    """Parse prefect.yaml's deployments, filling `{{ $VAR }}` from this process's environment as `prefect deploy` does.

    Raises:
        DefinitionError: when an entry lacks a name or entrypoint, or a schedule or concurrency limit is invalid, or
            it uses a variable that is not set, a Block or a Prefect variable.
    """
    document = yaml.safe_load(path.read_text()) or {}
    return [_definition(entry, path.name) for entry in document.get("deployments") or []]


def _definition(entry: dict[str, Any], file: str) -> Definition:
    if not entry.get("name") or not entry.get("entrypoint"):
        raise DefinitionError(f"{file}: every deployment needs a name and an entrypoint: {entry!r}")
    where = f"{file}: deployment {entry['name']!r}"
    entry = {key: value for key, value in entry.items() if key not in NOT_SERVED}
    _refuse_unserved(entry, where)
    entry = apply_values(entry, {}, remove_notset=False)  # {{ $VAR }}: Prefect reads os.environ itself
    if entry.get("schedule") and entry.get("schedules") is not None:
        raise DefinitionError(f"{where}: both schedule and schedules are set; keep schedules")
    schedules = [entry.pop("schedule")] if isinstance(entry.get("schedule"), dict) else entry.pop("schedules", None) or []
    triggers = entry.pop("triggers", None) or []
    entry = apply_values(entry, {}, skip_prefixes=["ctx."])  # as after build and push steps, which Vigia has none of
    try:
        return Definition(
            name=entry["name"],
            entrypoint=entry["entrypoint"],
            description=entry.get("description"),
            version=entry.get("version"),
            version_type=entry.get("version_type"),
            tags=list(entry.get("tags") or []),
            schedules=[_schedule(item) for item in apply_values(schedules, {})],
            triggers=[_trigger(spec) for spec in triggers],
            parameters=dict(entry.get("parameters") or {}),
            concurrency_limit=_concurrency_limit(entry.get("concurrency_limit")),
            enforce_parameter_schema=entry.get("enforce_parameter_schema"),
            paused=entry.get("paused"),
        )
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        raise DefinitionError(f"{where}: {error}") from None


def _refuse_unserved(entry: dict[str, Any], where: str) -> None:
    """A `{{ $VAR }}` left unset, a Block or a Prefect variable: `prefect deploy` would deploy the text as written."""
    for placeholder in sorted(find_placeholders(entry), key=lambda p: p.name):
        kind = UNSERVED.get(placeholder.type)
        if kind:
            raise DefinitionError(f"{where} uses {placeholder.full_match}, {kind}: vigia up fills only {{{{ $VAR }}}}")
        name = placeholder.name.removeprefix("$")
        if placeholder.type is PlaceholderType.ENV_VAR and name not in os.environ:
            raise DefinitionError(f"{where} uses ${name}, which is not set")


def _schedule(item: dict[str, Any]) -> DeploymentScheduleCreate:
    """One schedule item as `prefect deploy` makes it (prefect/cli/deploy/_schedules.py in 3.9.1)."""
    unknown = set(item) - SCHEDULE_KEYS
    if unknown:  # Prefect's schedule model forbids extra keys: a typo is an error, not a silent drop
        raise ValueError(f"unknown schedule field {', '.join(sorted(unknown))}; accepts {', '.join(sorted(SCHEDULE_KEYS))}")
    timezone = item.get("timezone")
    if item.get("cron"):
        options = {"cron": item["cron"], "timezone": timezone, "day_or": item.get("day_or")}
        schedule = CronSchedule(**{k: v for k, v in options.items() if v is not None})
    elif item.get("interval"):
        interval = item["interval"]
        anchor = item.get("anchor_date")
        options = {
            "interval": timedelta(seconds=interval) if isinstance(interval, (int, float)) else interval,
            "anchor_date": parse_datetime(anchor) if anchor else None,
            "timezone": timezone,
        }
        schedule = IntervalSchedule(**{k: v for k, v in options.items() if v is not None})
    elif item.get("rrule"):
        try:
            schedule = RRuleSchedule(**json.loads(item["rrule"]))
            if timezone:
                schedule.timezone = timezone
        except json.JSONDecodeError:
            schedule = RRuleSchedule(rrule=item["rrule"], timezone=timezone)
    else:
        raise ValueError(f"a schedule needs one of cron, interval or rrule: {item!r}")
    extras = {key: item[key] for key in ("active", "slug", "replaces") if item.get(key) is not None}
    if item.get("parameters"):
        extras["parameters"] = item["parameters"]
    return DeploymentScheduleCreate(schedule=schedule, **extras)


def _trigger(spec: dict[str, Any]) -> dict[str, Any]:
    """A trigger templated like `prefect deploy` does: every field but its parameters, which its event fills."""
    spec = dict(spec)
    parameters = spec.pop("parameters", None)
    spec = apply_values(spec, {})
    if parameters is not None:
        spec["parameters"] = parameters
    return spec


def _concurrency_limit(value: int | dict[str, Any] | None) -> int | ConcurrencyLimitConfig | None:
    if not isinstance(value, dict):
        return value
    options = {"limit": value.get("limit"), "collision_strategy": value.get("collision_strategy") or ConcurrencyLimitStrategy.ENQUEUE}
    if value.get("grace_period_seconds") is not None:
        options["grace_period_seconds"] = value["grace_period_seconds"]
    return ConcurrencyLimitConfig(**options)
