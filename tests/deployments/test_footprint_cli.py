"""The quick `vigia` commands load what they need only: `vigia status` reads the store through SQLAlchemy and loads
no pydantic (Typer's coercion of an unset --help used to), Prefect, pandas or httpx; `vigia --help` not even SQLAlchemy."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone

from store.probes import ProbeResult
from store.states import record_probe

NOT_IN_STATUS = ("pydantic", "prefect", "pandas", "httpx", "streamlit", "alembic", "apprise")


def vigia_importing(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `vigia` with Python's import timing on; return the run and the top-level packages it imported."""
    environ = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    result = subprocess.run(
        ["vigia", *args], env={**environ, **env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True, timeout=120
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    return result, {line.rpartition("|")[2].strip().split(".")[0] for line in lines}


def test_status_reads_the_store_without_pydantic_prefect_pandas_or_httpx(sqlite_store_url, tmp_path):
    now = datetime.now(timezone.utc)
    record_probe(
        sqlite_store_url, ProbeResult("api", "http", now - timedelta(minutes=5), True, "ok"), critical=True, confirm_after=timedelta(0)
    )
    result, imported = vigia_importing("status", "--json", env={"VIGIA_DATABASE_URL": sqlite_store_url, "VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert [(row["target"], row["state"]) for row in json.loads(result.stdout)] == [("api", "UP")]
    assert "sqlalchemy" in imported
    assert imported & set(NOT_IN_STATUS) == set()


def test_help_loads_neither_the_store_nor_pydantic(tmp_path):
    result, imported = vigia_importing("--help", env={"VIGIA_HOME": str(tmp_path)})
    assert result.returncode == 0
    assert "status" in result.stdout and "up" in result.stdout
    assert imported & {"sqlalchemy", *NOT_IN_STATUS} == set()
