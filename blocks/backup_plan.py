"""The `backup-plan` Block: what the daily backup captures, where it keeps it, and for how long."""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.json_schema import SkipJsonSchema

from blocks.documentation import LOGO_URL, readme_section

SourceKind = Literal["postgres", "redis", "files", "store"]


class BackupSource(BaseModel):
    """One thing a backup run captures."""

    name: str = Field(
        description="Unique name: the file name in each backup and the `--source` of `vigia restore`.",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
    )
    kind: SourceKind = Field(description="postgres: pg_dump; redis: redis-cli --rdb; files: tar; store: Vigia's own store.")
    # Stored in the plan's `source_urls`, not here: Prefect masks a secret only on a path of dicts, never inside a list.
    # Left out of the Blocks form too, so nobody types a password into the list.
    url: SkipJsonSchema[SecretStr | None] = Field(
        default=None, exclude=True, description="postgres, redis and store: the connection URL (may hold a password)."
    )
    paths: list[str] = Field(default_factory=list, description="files: the files and folders to archive.")

    @model_validator(mode="after")
    def _check_kind_fields(self) -> BackupSource:
        if self.kind in ("postgres", "redis", "store") and self.url is None:
            raise ValueError(f"source {self.name!r}: url is required for kind {self.kind!r}")
        if self.kind == "files" and not self.paths:
            raise ValueError(f"source {self.name!r}: paths is required for kind 'files'")
        return self


class BackupPlan(Block):
    """What the daily backup captures, where the copies go, and the retention."""

    _block_type_name = "Backup Plan"
    _block_type_slug = "backup-plan"
    _documentation_url = readme_section("Settings and Blocks")
    _logo_url = LOGO_URL
    _code_example = """
```python
from blocks.backup_plan import BackupPlan

backup_plan = BackupPlan.load("BLOCK_NAME")
```"""

    sources: list[BackupSource] = Field(default_factory=list, description="Every source each run captures.")
    source_urls: SecretDict = Field(
        default_factory=lambda: SecretDict({}),
        description="The connection URL of each source, by source name; filled from the sources, kept secret by Prefect.",
    )
    local_dir: str = Field(description="Folder of the local copies, one sub-folder per run (VIGIA_HOME/backups).")
    remote: str | None = Field(
        default=None,
        description="rclone remote and folder (`gdrive:vigia-backups`) or a local folder; credentials in RCLONE_CONFIG_<NAME>_* variables.",
    )
    keep_local_days: int = Field(default=30, ge=1, description="Local copies older than this are deleted (never the newest verified).")
    keep_daily: int = Field(default=7, ge=0, description="Remote: keep the newest verified backup of this many days.")
    keep_weekly: int = Field(default=4, ge=0, description="Remote: keep the newest verified backup of this many ISO weeks.")
    keep_monthly: int = Field(default=12, ge=0, description="Remote: keep the newest verified backup of this many months.")
    timeout_seconds: float = Field(default=4 * 3600, gt=0, description="Any single dump, upload or restore step slower than this fails.")

    @model_validator(mode="before")
    @classmethod
    def _give_sources_their_urls(cls, data: Any) -> Any:
        # A stored document keeps the URLs in source_urls; hand each back to its source before validation.
        if not isinstance(data, dict):
            return data
        urls = data.get("source_urls") or {}
        urls = dict(urls.get_secret_value() if isinstance(urls, SecretDict) else urls)
        sources = [
            {**source, "url": urls[source["name"]]}
            if isinstance(source, dict) and source.get("url") is None and source.get("name") in urls
            else source
            for source in data.get("sources", [])
        ]
        return {**data, "sources": sources}

    @model_validator(mode="after")
    def _check_names(self) -> BackupPlan:
        names = [source.name for source in self.sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate names {', '.join(duplicates)}")
        urls = {source.name: source.url.get_secret_value() for source in self.sources if source.url is not None}
        object.__setattr__(self, "source_urls", SecretDict(urls))
        return self

    def source(self, name: str) -> BackupSource:
        """Return the source called `name`.

        Raises:
            KeyError: naming the known sources.
        """
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(f"unknown source {name!r}; the plan has {', '.join(s.name for s in self.sources) or 'none'}")
