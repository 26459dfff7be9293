"""Fixtures for backup tests: rclone remotes served on 127.0.0.1 (WebDAV, SFTP, crypt over WebDAV),
a PostgreSQL source database of the session's own, and throwaway redis-servers."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from blocks.backup_plan import BackupPlan, BackupSource
from blocks.vigia import VigiaSettings
from tests.conftest import POSTGRES_ADMIN
from tests.fakes.server import free_port
from tests.polling import wait_until

LOOPBACK = "127.0.0.1"
DAV_USER, DAV_PASS = "bk", "bk-pass-loopback"
CRYPT_PASSWORD = "crypt-secret-1"
SOURCE_SCHEMA = """
CREATE SCHEMA "Sales";
CREATE SEQUENCE "Sales"."Order_Seq" START 100;
CREATE TABLE "Sales"."CustomerOrders" (
    "Id" integer PRIMARY KEY DEFAULT nextval('"Sales"."Order_Seq"'), "Customer Name" text NOT NULL, "Payload" jsonb, attachment oid
);
CREATE TABLE public.execution_data (id serial PRIMARY KEY, data text);
INSERT INTO "Sales"."CustomerOrders" ("Customer Name", "Payload")
    SELECT 'customer ' || g, jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')) FROM generate_series(1, 250) g;
INSERT INTO public.execution_data (data) SELECT repeat(md5(g::text), 20) FROM generate_series(1, 400) g;
CREATE VIEW "Sales"."BigOrders" AS SELECT "Id", "Customer Name" FROM "Sales"."CustomerOrders" WHERE "Id" > 300;
UPDATE "Sales"."CustomerOrders" SET attachment = lo_from_bytea(0, convert_to('the large object', 'UTF8')) WHERE "Id" = 100;
"""


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) == 0


def obscure(secret: str) -> str:
    return subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="session")
def remotes(tmp_path_factory) -> Iterator[dict[str, Path]]:
    """`bkdav:` (WebDAV, no hashes), `bksftp:` (SFTP, md5/sha1 commands set), `bkcrypt:` (crypt over bkdav:encrypted)
    and `bkdead:` (WebDAV on a closed port), defined only by RCLONE_CONFIG_* variables; yields the served folders."""
    root = tmp_path_factory.mktemp("remotes")
    folders = {"bkdav": root / "webdav", "bksftp": root / "sftp"}
    ports = {"bkdav": free_port(), "bksftp": free_port()}
    processes = []
    for name, kind in (("bkdav", "webdav"), ("bksftp", "sftp")):
        folders[name].mkdir()
        processes.append(
            subprocess.Popen(
                [
                    "rclone",
                    "serve",
                    kind,
                    str(folders[name]),
                    "--addr",
                    f"{LOOPBACK}:{ports[name]}",
                    "--user",
                    DAV_USER,
                    "--pass",
                    DAV_PASS,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    env = {
        "RCLONE_CONFIG": "/dev/null",
        "RCLONE_CONFIG_BKDAV_TYPE": "webdav",
        "RCLONE_CONFIG_BKDAV_URL": f"http://{LOOPBACK}:{ports['bkdav']}",
        "RCLONE_CONFIG_BKDAV_VENDOR": "other",
        "RCLONE_CONFIG_BKDAV_USER": DAV_USER,
        "RCLONE_CONFIG_BKDAV_PASS": obscure(DAV_PASS),
        "RCLONE_CONFIG_BKSFTP_TYPE": "sftp",
        "RCLONE_CONFIG_BKSFTP_HOST": LOOPBACK,
        "RCLONE_CONFIG_BKSFTP_PORT": str(ports["bksftp"]),
        "RCLONE_CONFIG_BKSFTP_USER": DAV_USER,
        "RCLONE_CONFIG_BKSFTP_PASS": obscure(DAV_PASS),
        "RCLONE_CONFIG_BKSFTP_MD5SUM_COMMAND": "md5sum",
        "RCLONE_CONFIG_BKSFTP_SHA1SUM_COMMAND": "sha1sum",
        "RCLONE_CONFIG_BKCRYPT_TYPE": "crypt",
        "RCLONE_CONFIG_BKCRYPT_REMOTE": "bkdav:encrypted",
        "RCLONE_CONFIG_BKCRYPT_PASSWORD": obscure(CRYPT_PASSWORD),
        "RCLONE_CONFIG_BKCRYPT_PASSWORD2": obscure("crypt-salt-2"),
        "RCLONE_CONFIG_BKDEAD_TYPE": "webdav",
        "RCLONE_CONFIG_BKDEAD_URL": f"http://{LOOPBACK}:{free_port()}",
        "RCLONE_CONFIG_BKDEAD_VENDOR": "other",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        for name, port in ports.items():
            wait_until(lambda port=port: listening(port), 20, f"rclone serve for {name}")
        yield folders
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def source_database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, with quoted mixed-case names, a sequence, a large object and a view."""
    name = f"vigia_bk_{os.getpid()}_{free_port()}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SOURCE_SCHEMA)
    yield url
    drop_databases(f"vigia_bk_{os.getpid()}_%")
    drop_databases("vigia_scratch_%")


def drop_databases(pattern: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        names = [row[0] for row in admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))]
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_redis(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--repl-diskless-sync-delay",
            "0",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: listening(port), 20, f"redis-server on {port}")
    return process, port


@pytest.fixture
def redis_pair(tmp_path) -> Iterator[tuple[str, str]]:
    """A source redis-server with strings, a hash and keys with TTLs, and an empty target."""
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    source, source_port = start_redis(tmp_path / "source")
    target, target_port = start_redis(tmp_path / "target")
    client = redis.Redis(port=source_port)
    client.mset({f"string:{n}": f"value {n}" for n in range(50)})
    client.hset("hash:user", mapping={"name": "Ana", "phone": "+5511999990000"})
    client.set("ttl:session", "token", ex=3600)
    client.close()
    try:
        yield f"redis://127.0.0.1:{source_port}/0", f"redis://127.0.0.1:{target_port}/0"
    finally:
        for process in (source, target):
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def files_to_back_up(tmp_path) -> Path:
    folder = tmp_path / "configs"
    (folder / "nested").mkdir(parents=True)
    (folder / ".env").write_text("GROQ_API_KEY=gsk_example\n")
    (folder / "nested" / "bot.json").write_text('{"name": "bot"}\n')
    return folder


def make_plan(tmp_path: Path, remote: str | None, store_url: str, **sources) -> BackupPlan:
    """A plan with the store plus the given sources: postgres=URL, redis=URL, files=Path."""
    items = []
    if "postgres" in sources:
        items.append(BackupSource(name="postgres-app", kind="postgres", url=sources["postgres"]))
    if "redis" in sources:
        items.append(BackupSource(name="redis", kind="redis", url=sources["redis"]))
    if "files" in sources:
        items.append(BackupSource(name="files", kind="files", paths=[str(sources["files"])]))
    items.append(BackupSource(name="store", kind="store", url=store_url))
    return BackupPlan(sources=items, local_dir=str(tmp_path / "backups"), remote=remote)


@pytest.fixture
def save_blocks(prefect_server, tmp_path):
    """Save vigia-settings/default (this test's store) and backup-plan/default; alerts go to the log."""
    from blocks.alert_routes import AlertRoutes

    def save(plan: BackupPlan, store_url: str) -> None:
        VigiaSettings(home=str(tmp_path), database_url=store_url).save("default", overwrite=True)
        AlertRoutes().save("default", overwrite=True)
        plan.save("default", overwrite=True)

    return save


def served_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
