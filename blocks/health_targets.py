"""The `health-targets` Block: what the health check probes, with thresholds and dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.json_schema import SkipJsonSchema

from blocks.documentation import LOGO_URL, readme_section
from blocks.probe_kinds import PROBE_KINDS

# The kinds are the registry's rows: a new kind is a row in blocks.probe_kinds and a measure in tasks.probe_measures.
ProbeKind = Literal[tuple(PROBE_KINDS)]  # type: ignore[valid-type]


class HealthTarget(BaseModel):
    """One thing the health check probes."""

    name: str = Field(
        description="Unique name, used in alerts, the store and `depends_on`.",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
    )
    kind: ProbeKind = Field(description="Probe kind: how the target is checked.")
    url: str | None = Field(
        default=None,
        description="http: the URL; tcp: host:port; prefect: the API URL (this run's when empty); disk: the path to watch (/ when empty).",
    )
    # Stored in the Block's `credentials`, not here: Prefect masks a secret on a path of dicts, never inside a
    # list. Excluded from every dump, and from the Blocks form so nobody types a password into the list.
    dsn: SkipJsonSchema[SecretStr | None] = Field(
        default=None,
        exclude=True,
        description="postgres, redis and queue: the connection URL (may hold a password); backup: the store's URL.",
    )
    queue_key: str | None = Field(default=None, description="queue: the Redis list or stream to measure.")
    expect_status: int | None = Field(default=None, description="http: the status expected; any 2xx or 3xx when empty.")
    json_field: str | None = Field(default=None, description="http: a dotted path into the JSON reply that must match.")
    json_value: str | None = Field(default=None, description="http: the value `json_field` must have, compared as text.")
    ca_file: str | None = Field(default=None, description="http: a CA bundle to trust, for an internal certificate authority.")
    warning_at: float | None = Field(default=None, description="Warning threshold on the kind's measure; the kind's default when empty.")
    critical_at: float | None = Field(default=None, description="Critical threshold on the kind's measure; the kind's default when empty.")
    latency_warning_ms: float = Field(default=5000, description="Latency above this is a warning.", gt=0)
    timeout_seconds: float = Field(default=10, description="A probe slower than this fails.", gt=0, le=120)
    critical: bool = Field(default=False, description="Whether this target counts for the uptime SLA and escalation.")
    depends_on: list[str] = Field(default_factory=list, description="Targets this one needs; its alerts are held while they are DOWN.")
    managed: bool = Field(default=False, description="Derived from the settings by `vigia setup`, which rewrites it.")

    @model_validator(mode="after")
    def _check_kind_fields(self) -> HealthTarget:
        row = PROBE_KINDS[self.kind]
        if row.needs_url and not self.url:
            raise ValueError(f"target {self.name!r}: url is required for kind {self.kind!r}")
        if row.needs_dsn and self.dsn is None:
            raise ValueError(f"target {self.name!r}: dsn is required for kind {self.kind!r}; add it to credentials as {self.name!r}")
        if row.needs_queue_key and not self.queue_key:
            raise ValueError(f"target {self.name!r}: queue_key is required for kind {self.kind!r}")
        if (self.json_field is None) != (self.json_value is None):
            raise ValueError(f"target {self.name!r}: json_field and json_value go together")
        return self

    def thresholds(self) -> tuple[float | None, float | None]:
        """Return the (warning, critical) thresholds in force for this target."""
        row = PROBE_KINDS[self.kind]
        warning = self.warning_at if self.warning_at is not None else row.warning_at
        critical = self.critical_at if self.critical_at is not None else row.critical_at
        return warning, critical


class HealthTargets(Block):
    """The targets the health check probes every five minutes, with their thresholds."""

    _block_type_name = "Health Targets"
    _block_type_slug = "health-targets"
    _documentation_url = readme_section("Settings and Blocks")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.health_targets import HealthTargets

health_targets = HealthTargets.load("BLOCK_NAME")
```"""

    targets: list[HealthTarget] = Field(
        default_factory=list, description="Every probed target; `vigia setup` keeps the managed ones in step with the settings."
    )
    credentials: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="Connection URLs by target name (postgres, redis, queue, backup); Prefect hides them on the Blocks page.",
    )

    @model_validator(mode="before")
    @classmethod
    def _attach_credentials(cls, data: Any) -> Any:
        # A stored document keeps the DSNs in `credentials`: hand each to its target before validation.
        if not isinstance(data, Mapping):
            return data
        credentials = data.get("credentials") or {}
        credentials = credentials.get_secret_value() if isinstance(credentials, SecretDict) else credentials
        targets = [
            {**target, "dsn": credentials[target["name"]]}
            if isinstance(target, Mapping) and target.get("dsn") is None and target.get("name") in credentials
            else target
            for target in data.get("targets") or []
        ]
        return {**data, "targets": targets}

    @model_validator(mode="after")
    def _gather_credentials(self) -> HealthTargets:
        # Rebuilt from the targets, so a removed target's password does not linger in the document.
        found = {target.name: target.dsn.get_secret_value() for target in self.targets if target.dsn is not None}
        self.credentials = SecretDict(found)
        return self

    @model_validator(mode="after")
    def _check_graph(self) -> HealthTargets:
        names = [target.name for target in self.targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"targets: duplicate names {', '.join(duplicates)}")
        known = set(names)
        for target in self.targets:
            unknown = [parent for parent in target.depends_on if parent not in known]
            if unknown:
                raise ValueError(f"target {target.name!r}: depends_on names unknown targets {', '.join(unknown)}")
        self.ordered()  # raises on a cycle
        return self

    def ordered(self) -> list[HealthTarget]:
        """Return the targets with every parent before its children.

        Raises:
            ValueError: when `depends_on` forms a cycle.
        """
        by_name = {target.name: target for target in self.targets}
        done: dict[str, bool] = {}
        order: list[HealthTarget] = []

        def visit(name: str, trail: tuple[str, ...]) -> None:
            if done.get(name):
                return
            if name in trail:
                raise ValueError(f"targets: depends_on cycle {' -> '.join(trail + (name,))}")
            for parent in by_name[name].depends_on:
                visit(parent, trail + (name,))
            done[name] = True
            order.append(by_name[name])

        for target in self.targets:
            visit(target.name, ())
        return order

    def ancestors(self, name: str) -> list[str]:
        """Return every target `name` depends on, nearest first."""
        by_name = {target.name: target for target in self.targets}
        found: list[str] = []
        frontier = list(by_name[name].depends_on) if name in by_name else []
        while frontier:
            parent = frontier.pop(0)
            if parent not in found:
                found.append(parent)
                frontier.extend(by_name[parent].depends_on)
        return found
