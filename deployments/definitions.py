"""The deployments of `prefect.yaml`, read once and shared by `vigia up` (serve) and the tests."""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"
_ENV_TEMPLATE = re.compile(r"\{\{\s*\$(\w+)\s*\}\}")


class DefinitionError(Exception):
    """prefect.yaml holds a deployment Vigia cannot serve."""


@dataclass(frozen=True)
class Schedule:
    """One cron schedule of a deployment."""

    cron: str
    timezone: str


@dataclass(frozen=True)
class Definition:
    """One deployment entry of prefect.yaml."""

    name: str
    entrypoint: str
    description: str
    tags: list[str]
    schedules: list[Schedule]
    parameters: dict[str, Any] = field(default_factory=dict)
    concurrency_limit: int | None = None
    collision_strategy: str | None = None

    def load_flow(self):
        """Import and return the flow object the entrypoint names (`path/to/module.py:function`)."""
        path, _, function = self.entrypoint.partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, function)


def read_definitions(path: Path = PREFECT_YAML, environ: dict[str, str] | None = None) -> list[Definition]:
    """Parse prefect.yaml's deployments, filling `{{ $VAR }}` from the environment as `prefect deploy` does.

    Raises:
        DefinitionError: when an entry lacks a name or entrypoint, or names an unset variable.
    """
    environ = dict(os.environ if environ is None else environ)
    document = yaml.safe_load(path.read_text())
    definitions = []
    for entry in document.get("deployments") or []:
        if not entry.get("name") or not entry.get("entrypoint"):
            raise DefinitionError(f"{path.name}: every deployment needs a name and an entrypoint: {entry!r}")
        limit = entry.get("concurrency_limit")
        definitions.append(
            Definition(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                description=entry.get("description", ""),
                tags=list(entry.get("tags") or []),
                schedules=[
                    Schedule(cron=item["cron"], timezone=_fill(str(item.get("timezone", "UTC")), environ))
                    for item in entry.get("schedules") or []
                ],
                parameters=dict(entry.get("parameters") or {}),
                concurrency_limit=limit["limit"] if isinstance(limit, dict) else limit,
                collision_strategy=limit.get("collision_strategy") if isinstance(limit, dict) else None,
            )
        )
    return definitions


def _fill(value: str, environ: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise DefinitionError(f"prefect.yaml uses ${name}, which is not set")
        return environ[name]

    return _ENV_TEMPLATE.sub(replace, value)
