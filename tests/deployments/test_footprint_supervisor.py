"""The process `vigia up` leaves running for days is small: it execs into `python -m deployments.up`, which loads no
httpx, Typer, pydantic, SQLAlchemy or Prefect, calls the parts with the standard library, and parses the store URL
as the store does without loading SQLAlchemy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from deployments.settings import SettingsError, load_settings
from deployments.supervisor import PartUnreachable, answers, call_part
from store.database import normalize_url
from tests.fakes.server import free_port, serve_app

ROOT = Path(__file__).resolve().parents[2]
NOT_IN_THE_SUPERVISOR = ("httpx", "typer", "pydantic", "sqlalchemy", "prefect", "pandas", "streamlit", "alembic")
BAD_TIMEZONE = (
    "vigia: VIGIA_TIMEZONE: invalid value (unknown time zone 'Mars/Olympus'); accepts an IANA time zone such as America/Sao_Paulo or UTC\n"
)


def imported_modules(import_time_lines: list[str]) -> set[str]:
    """The modules named in `-X importtime` lines."""
    return {line.rpartition("|")[2].strip() for line in import_time_lines}


def imported_packages(import_time_lines: list[str]) -> set[str]:
    """The top-level packages named in `-X importtime` lines."""
    return {module.split(".")[0] for module in imported_modules(import_time_lines)}


def interpreters(stderr: str) -> list[list[str]]:
    """The `-X importtime` lines of each interpreter that ran in one process (an exec starts a new one), in order."""
    runs: list[list[str]] = []
    for line in stderr.splitlines():
        if line.startswith("import time: self [us]"):
            runs.append([])
        elif line.startswith("import time:") and runs:
            runs[-1].append(line)
    return runs


def test_the_supervisor_module_loads_only_the_standard_library_and_our_light_modules():
    script = f"import sys, deployments.up; print(sorted(m for m in {NOT_IN_THE_SUPERVISOR!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout == "[]\n"


def test_vigia_up_execs_into_the_lean_supervisor_which_reports_a_bad_setting_itself(tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_BIND": "0.0.0.0", "PYTHONPROFILEIMPORTTIME": "1"}
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
    result = subprocess.run(
        ["vigia", "up", "--prefect-port", str(free_port())], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    cli, supervisor = interpreters(result.stderr)  # one process, two interpreters: the CLI's, then the exec'd supervisor's
    assert "typer" in imported_packages(cli)
    assert "deployments.supervisor" in imported_modules(supervisor)  # `-m deployments.up` runs deployments.up, not imports it
    assert imported_packages(supervisor) & set(NOT_IN_THE_SUPERVISOR) == set()
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "vigia: VIGIA_BIND=0.0.0.0 is not loopback: set PREFECT_SERVER_API_AUTH_STRING and VIGIA_DASHBOARD_PASSWORD first"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("vigia", "status"),
        ("vigia", "up"),
        (sys.executable, "-m", "deployments.up"),
        (sys.executable, "-m", "deployments.bootstrap", "migrate"),
        (sys.executable, "-m", "deployments.dashboard", "--port", "1"),
    ],
    ids=["vigia status", "vigia up", "deployments.up", "deployments.bootstrap", "deployments.dashboard"],
)
def test_every_entry_point_stops_on_a_bad_setting_with_one_line_and_exit_2(argv, tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_TIMEZONE": "Mars/Olympus"}
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", BAD_TIMEZONE)


@pytest.mark.parametrize(
    "raw",
    [
        "sqlite:////var/lib/vigia/vigia.db",
        "sqlite://",
        "postgresql://vigia:pw@db:5432/vigia",
        "postgres://vigia@db/vigia?sslmode=require",
        "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dpublic",
        "postgresql://vigia:p%40ss%2Fw0rd@[::1]:5432/vigia",
        "postgresql://vigia:p:w@db/vigia",
    ],
)
def test_the_store_url_the_settings_keep_is_the_one_the_store_connects_to(raw, tmp_path):
    from sqlalchemy.engine import make_url

    kept = load_settings({"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": raw}, env_file=None).database_url
    assert kept.split("://")[0] in ("sqlite", "postgresql+psycopg")
    assert normalize_url(kept) == kept
    # The rule has no SQLAlchemy in it; SQLAlchemy reads what it keeps as the same database, credentials included.
    parsed, original = make_url(kept), make_url(raw)
    assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database, dict(parsed.query)) == (
        original.username,
        original.password,
        original.host,
        original.port,
        original.database,
        dict(original.query),
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("mysql://x/y", "unsupported driver 'mysql' (expected sqlite or postgresql+psycopg)"),
        ("postgresql+psycopg2://db/vigia", "unsupported driver 'postgresql+psycopg2' (expected sqlite or postgresql+psycopg)"),
        ("/var/lib/vigia.db", "not a SQLAlchemy URL (expected sqlite:///PATH or postgresql+psycopg://…)"),
        ("postgresql://db:five/vigia", "Port could not be cast to integer value as 'five'"),
        ("postgresql://db:/vigia", "no port after the ':'"),
    ],
)
def test_a_store_url_the_store_would_refuse_is_a_setting_problem_at_start(raw, reason, tmp_path):
    with pytest.raises(ValueError):
        normalize_url(raw)
    with pytest.raises(SettingsError) as caught:
        load_settings({"VIGIA_HOME": str(tmp_path), "VIGIA_DATABASE_URL": raw}, env_file=None)
    assert caught.value.problems == [
        f"VIGIA_DATABASE_URL: invalid value ({reason}); accepts a SQLAlchemy URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    ]


def test_reading_the_settings_with_a_postgresql_store_loads_no_sqlalchemy():
    script = (
        "import sys; from deployments.settings import load_settings; "
        "load_settings({'VIGIA_DATABASE_URL': 'postgresql://vigia@db/vigia'}, env_file=None); "
        "print('sqlalchemy' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout == "False\n"


async def _health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("starting", status_code=503)


async def _moved(request: Request) -> RedirectResponse:
    return RedirectResponse("/health", status_code=307)


async def _create(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"got": body, "authorization": request.headers.get("authorization")}, status_code=201)


@pytest.fixture(scope="module")
def part_url():
    app = Starlette(routes=[Route("/health", _health), Route("/moved", _moved), Route("/create", _create, methods=["POST"])])
    with serve_app(app) as url:
        yield url


def test_a_part_answering_503_has_answered_and_a_redirect_is_an_answer_not_followed(part_url):
    assert call_part(f"{part_url}/health") == (503, b"starting")
    assert answers(f"{part_url}/health", (200, 503)) is True
    assert answers(f"{part_url}/health", (200,)) is False
    assert call_part(f"{part_url}/moved")[0] == 307


def test_a_post_to_a_part_sends_json_with_the_headers_given(part_url):
    status, body = call_part(f"{part_url}/create", {"Authorization": "Basic dTpw"}, {"idempotency_key": "k"})
    assert (status, json.loads(body)) == (201, {"got": {"idempotency_key": "k"}, "authorization": "Basic dTpw"})


def test_a_closed_port_is_unreachable_naming_the_method_and_url():
    url = f"http://127.0.0.1:{free_port()}/api/health"
    assert answers(url, (200,)) is False
    with pytest.raises(PartUnreachable) as caught:
        call_part(url, payload={})
    assert str(caught.value) == f"POST {url}: [Errno 111] Connection refused"
