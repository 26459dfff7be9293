"""Secrets nowhere in clear (issue 11): one full cycle with distinctive secrets, then every place Vigia writes to is
scanned for them — log files and run logs, artifacts, the store's rows, Block documents as the API shows them,
flow and task runs with their parameters, Prefect's events, what the alert channel was sent, and backup files."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import inspect, text

from blocks.health_targets import HealthTarget, HealthTargets
from deployments.dispatch import TranscriberThread
from deployments.settings import load_settings
from deployments.setup import run_setup
from deployments.webhook import WebhookConfig, create_app
from flows.backup import backup
from flows.health_check import health_check
from flows.restore import restore
from flows.transcribe_voice_note import transcribe_voice_note
from store.database import get_engine, migrate, open_session
from store.voice_notes import get_voice_note
from tasks.block_cache import forget_blocks
from tests.backup.conftest import start_redis
from tests.conftest import POSTGRES_ADMIN
from tests.fakes.capture import CaptureServer
from tests.fakes.evolution import FakeEvolution
from tests.fakes.evolution_webhook import WebhookSender, voice_note_envelope
from tests.fakes.groq import FakeGroq
from tests.fakes.server import serve_app
from tests.transcription.conftest import SPOKEN, clips  # noqa: F401  (the session's audio fixture)

pytestmark = pytest.mark.usefixtures("prefect_server")

SECRETS = {
    "webhook token": "Wh-Nowhere-7Qd2mX9vTz",
    "evolution key": "Evo-Nowhere-4Lk8pR2s",
    "groq key": "gsk_GroqNowhere5Tn3",
    "postgres password": "PgNowhere6Hx1",
    "redis password": "RdNowhere8Jw4",
    "wrong redis password": "RdWrongNowhere2Zc7",
    "dashboard password": "Dash-Nowhere-3Vb6",
    "heartbeat token": "HbNowhere9Fy5",
    "apprise password": "ApNowhere1Gu8",
}
INSTANCE = "ops-bot"
VIGIA_LOGGERS = ("prefect", "clients", "store", "deployments", "tasks", "flows")


@dataclass
class Cycle:
    """What one full cycle left behind, for the scans."""

    home: Path
    store_url: str
    api_url: str
    log_file: Path
    printed: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)


def leaked(text_seen: str) -> list[str]:
    """The names of the secrets that appear in `text_seen`."""
    return [name for name, value in SECRETS.items() if value in text_seen]


@pytest.fixture(scope="module")
def postgres_with_password() -> Iterator[tuple[str, str]]:
    """A role with a password owning a store database and an app database; yields (store URL, app URL)."""
    role, suffix = f"vigia_nowhere_{os.getpid()}", os.getpid()
    databases = (f"vigia_nowhere_store_{suffix}", f"vigia_nowhere_app_{suffix}")
    drop_role_and_databases(role, databases)
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{SECRETS['postgres password']}'")
        for database in databases:
            admin.execute(f'CREATE DATABASE "{database}" OWNER {role}')
    credentials = f"{role}:{SECRETS['postgres password']}@127.0.0.1:5432"
    app_url = f"postgresql://{credentials}/{databases[1]}"
    with psycopg.connect(app_url, autocommit=True) as connection:
        connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text); INSERT INTO orders (item) VALUES ('a'), ('b')")
    yield f"postgresql+psycopg://{credentials}/{databases[0]}", app_url
    get_engine(f"postgresql+psycopg://{credentials}/{databases[0]}").dispose()
    drop_role_and_databases(role, databases)


def drop_role_and_databases(role: str, databases: tuple[str, ...]) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        for database in databases:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory) -> Iterator[str]:
    """A scratch redis-server with `requirepass` and a few keys; yields its URL with the password."""
    process, port = start_redis(tmp_path_factory.mktemp("redis"), "--requirepass", SECRETS["redis password"])
    url = f"redis://:{SECRETS['redis password']}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    client.mset({"session:1": "one", "session:2": "two"})
    client.close()
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def log_capture(tmp_path_factory) -> Iterator[Path]:
    """Vigia's and Prefect's loggers at INFO (as `vigia up` runs them) written to a log file."""
    path = tmp_path_factory.mktemp("logs") / "vigia.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(name) for name in VIGIA_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def environment(home: Path, urls: dict[str, str], store_url: str, app_url: str, redis_url: str) -> dict[str, str]:
    """The environment of the cycle: every secret set, the Groq key from a file."""
    key_file = home / "groq.key"
    key_file.write_text(SECRETS["groq key"] + "\n")
    routes = home / "alerts.yaml"
    channel = f"json://alert:{SECRETS['apprise password']}@{urls['capture'].removeprefix('http://')}/ok/alerts"
    routes.write_text(f"urls:\n  - {channel}:\n      - tag: info, warning, critical, emergency, report\n")
    return {
        "VIGIA_HOME": str(home),
        "VIGIA_DATABASE_URL": store_url,
        "VIGIA_TIMEZONE": "UTC",
        "VIGIA_WEBHOOK_TOKEN": SECRETS["webhook token"],
        "VIGIA_DASHBOARD_PASSWORD": SECRETS["dashboard password"],
        "EVOLUTION_API_URL": urls["evolution"],
        "EVOLUTION_API_KEY": SECRETS["evolution key"],
        "EVOLUTION_INSTANCE": INSTANCE,
        "GROQ_API_KEY_FILE": str(key_file),
        "GROQ_BASE_URL": urls["groq"],
        "VIGIA_APPRISE_CONFIG": str(routes),
        "VIGIA_BACKUP_POSTGRES": app_url,
        "VIGIA_BACKUP_REDIS": redis_url,
        "VIGIA_BACKUP_REMOTE": str(home / "remote"),
        "VIGIA_HEARTBEAT_URL": f"{urls['capture']}/ok/heartbeat/{SECRETS['heartbeat token']}",
    }


def set_up(cycle: Cycle, environ: dict[str, str], redis_url: str) -> None:
    """`vigia setup` from the environment, plus a hand-made Redis target whose password is wrong."""
    settings = load_settings(environ, env_file=None)
    # As a debug line or a traceback's locals would show them.
    logging.getLogger("deployments.cli").info("starting with %s", settings)
    migrate(settings.database_url)
    cycle.printed += run_setup(settings, dashboard_url="http://127.0.0.1:8501", prefect_ui_url="http://127.0.0.1:4200").lines
    targets = HealthTargets.load("default")
    wrong = redis_url.replace(SECRETS["redis password"], SECRETS["wrong redis password"])
    HealthTargets(targets=[*targets.targets, HealthTarget(name="redis-wrong", kind="redis", dsn=wrong, critical=True)]).save(
        "default", overwrite=True
    )


def back_up_and_restore(app_url: str, redis_url: str) -> None:
    """A verified backup; then the app database and Redis are emptied and restored from it."""
    result = backup()
    assert result.status == "verified", result
    with psycopg.connect(app_url, autocommit=True) as connection:
        connection.execute("DROP TABLE orders")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    restore(run_id=result.run_id, source=f"postgres-{app_url.rsplit('/', 1)[1]}", force=False)
    restore(run_id=result.run_id, source="redis", force=False)
    with psycopg.connect(app_url) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
    assert client.get("session:1") == b"one"
    client.close()


def transcribe(cycle: Cycle, speech: bytes) -> None:
    """Voice notes through the receiver (the token as a header, a JWT's key and ?token=), replied through the fakes."""
    forget_blocks()
    transcribe_voice_note.to_deployment(name="on-webhook", tags=["vigia"]).apply()
    dispatcher = TranscriberThread(cycle.store_url)
    dispatcher.start()
    config = WebhookConfig(token=SECRETS["webhook token"], spool_dir=cycle.home / "spool" / "voice-notes")
    try:
        with serve_app(create_app(cycle.store_url, config, dispatcher)) as receiver:
            senders = (
                WebhookSender(f"{receiver}/webhooks/evolution", headers={"X-Vigia-Token": SECRETS["webhook token"]}),
                WebhookSender(f"{receiver}/webhooks/evolution", jwt_key=SECRETS["webhook token"]),
                WebhookSender(f"{receiver}/webhooks/evolution?token={SECRETS['webhook token']}"),
            )
            ids = [sender.deliver(voice_note_envelope(speech, instance=INSTANCE))[-1].body["voice_note_id"] for sender in senders]
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                with open_session(cycle.store_url) as session:
                    if all(get_voice_note(session, note).status == "replied" for note in ids):
                        return
                time.sleep(0.1)
            raise AssertionError(f"voice notes {ids} were not replied within 40 s")
    finally:
        dispatcher.stop()
        forget_blocks()


@pytest.fixture(scope="module")
def cycle(prefect_server, tmp_path_factory, postgres_with_password, redis_with_password, log_capture, clips) -> Iterator[Cycle]:  # noqa: F811
    """Set up, check health (a target DOWN: an alert), back up and restore, transcribe, and check health again."""
    store_url, app_url = postgres_with_password
    home = tmp_path_factory.mktemp("home")
    capture = CaptureServer()
    evolution = FakeEvolution(api_key=SECRETS["evolution key"], instances={INSTANCE: "open"})
    groq = FakeGroq(api_key=SECRETS["groq key"])
    groq.script_audio(clips.speech, SPOKEN, duration=2.8)
    result = Cycle(home=home, store_url=store_url, api_url=prefect_server, log_file=log_capture)
    with capture.serving() as capture_url, serve_app(evolution.app) as evolution_url, serve_app(groq.app) as groq_url:
        urls = {"capture": capture_url, "evolution": evolution_url, "groq": groq_url}
        set_up(result, environment(home, urls, store_url, app_url, redis_with_password), redis_with_password)
        first = asyncio.run(health_check(confirm_after_seconds=0))
        # A fresh install's backup target waits for its first backup to be due: UP, no alert.
        assert (first["redis-wrong"].state, first["backup"].state, first["redis"].state) == ("DOWN", "UP", "UP"), first
        back_up_and_restore(app_url, redis_with_password)
        transcribe(result, clips.speech)
        second = asyncio.run(health_check(confirm_after_seconds=0))
        assert second["backup"].state == "UP", second
    assert len(evolution.sent) == 3 and len(groq.transcriptions) == 3
    # What the alert channel was sent (its own password rides in Authorization, as Apprise must send it).
    result.received = [c.body.decode(errors="replace") for c in capture.received if c.path == "/ok/alerts"]
    result.heartbeats = [c.path for c in capture.received if c.path.startswith("/ok/heartbeat/")]
    yield result


def api_text(cycle: Cycle, path: str, body: dict | None = None) -> str:
    """Every page of a Prefect API `filter` endpoint, as the raw JSON text."""
    pages, offset = [], 0
    while True:
        response = httpx.post(f"{cycle.api_url}/{path}", json={**(body or {}), "offset": offset, "limit": 200}, timeout=30)
        response.raise_for_status()
        pages.append(response.text)
        if len(response.json()) < 200:
            return "\n".join(pages)
        offset += 200


def test_the_cycle_alerted_and_pinged_the_heartbeat_with_secrets_configured(cycle):
    assert len(cycle.heartbeats) == 2
    assert any("redis-wrong" in body for body in cycle.received) and any("REPORT" in body for body in cycle.received)


def test_no_secret_in_any_log_file_or_run_log(cycle):
    files = [path for path in [cycle.log_file, *cycle.home.rglob("*.log")] if path.is_file()]
    found = {str(path): leaked(path.read_text(errors="replace")) for path in files}
    found["prefect run logs"] = leaked(api_text(cycle, "logs/filter"))
    assert {where: names for where, names in found.items() if names} == {}
    assert "health check done" in cycle.log_file.read_text() and "restore of redis" in cycle.log_file.read_text()


def test_no_secret_in_what_setup_printed_or_the_channels_received(cycle):
    assert leaked("\n".join(cycle.printed)) == []
    assert [leaked(body) for body in cycle.received if leaked(body)] == []


def test_no_secret_in_any_artifact(cycle):
    artifacts = api_text(cycle, "artifacts/filter")
    assert "health" in artifacts
    assert leaked(artifacts) == []


def test_no_secret_in_any_stored_row(cycle):
    engine = get_engine(cycle.store_url)
    found = {}
    with engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            found[table] = leaked(repr(rows)) if rows else None
    assert {"alerts", "deliveries", "voice_notes", "backup_runs", "restores", "state_changes"} <= {
        t for t, n in found.items() if n is not None
    }
    assert {table: names for table, names in found.items() if names} == {}


def test_no_secret_in_any_block_document_the_api_shows(cycle):
    documents = httpx.post(f"{cycle.api_url}/block_documents/filter", json={}, timeout=30).json()
    by_type: dict[str, set[str]] = {}
    for document in documents:
        by_type.setdefault(document["block_type"]["slug"], set()).update(leaked(json.dumps(document)))
    assert {"health-targets", "backup-plan", "vigia-settings", "groq", "evolution-api", "alert-routes"} <= set(by_type)
    assert {slug: sorted(names) for slug, names in by_type.items() if names} == {}


def test_no_secret_in_flow_runs_task_runs_or_deployments(cycle):
    texts = {path: api_text(cycle, path) for path in ("flow_runs/filter", "task_runs/filter", "deployments/filter")}
    assert '"voice_note_ids"' in texts["flow_runs/filter"] and '"run_id"' in texts["flow_runs/filter"]
    found = {path: leaked(text_seen) for path, text_seen in texts.items()}
    assert {path: names for path, names in found.items() if names} == {}


def test_no_secret_in_prefect_events(cycle):
    pages = [httpx.post(f"{cycle.api_url}/events/filter", json={"limit": 50}, timeout=30).json()]
    while pages[-1].get("next_page") and len(pages) < 200:
        pages.append(httpx.get(pages[-1]["next_page"], timeout=30).json())
    events = json.dumps(pages)
    assert "prefect.flow-run.Completed" in events
    assert leaked(events) == []


def test_no_secret_in_backup_files_or_manifests(cycle):
    inputs = {"groq.key", "alerts.yaml"}  # the user's own secret files, given to Vigia
    files = [path for path in cycle.home.rglob("*") if path.is_file() and path.name not in inputs and path.suffix != ".log"]
    found = {str(path.relative_to(cycle.home)): leaked(path.read_bytes().decode("latin-1")) for path in files}
    assert any(path.endswith("manifest.json") for path in found)
    assert {path: names for path, names in found.items() if names} == {}
