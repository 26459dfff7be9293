"""Benchmark the daily backup and a restore against the seed's script and a restore by hand.

Builds an n8n-like database (about 500 MB of JSON text in one table, plus a pgbench set), then,
in one run, times the seed's `pg_dump db | gzip > f.sql.gz` + `rclone copy` to a loopback WebDAV
remote against `vigia backup run` (pg_dump -Fc -Z0 | zstd, SHA-256, rclone-python upload,
`rclone checksum --download`, verify by restoring into a scratch database), and
`vigia restore` against `zstd -dc | pg_restore` by hand. Needs PostgreSQL (trust) on 127.0.0.1.

    uv run python benchmarks/backup_vs_seed.py

Last lines:
    backup: X s dump+upload, Y s with verification (seed script: Z s, ratio R)
    restore: X s (zstd -dc | pg_restore by hand: Y s, ratio R)
Goals: dump+upload ≤ 0.6× the seed; restore ≤ 1.2× by hand. The benchmark databases are dropped at the end.
"""

from hermetic import PREFECT_HOME  # noqa: F401,I001 — first: sets up the environment before Prefect loads

import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SOURCE = f"vigia_bench_{os.getpid()}"
RESTORED_BY_HAND = f"{SOURCE}_hand"
RESTORED_BY_VIGIA = f"{SOURCE}_vigia"
JSON_ROWS = 170_000  # ~3 KB of JSON text each: about 500 MB
PGBENCH_SCALE = 5


def url(database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{database}"


def timed(argv: list[str], **kwargs) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, **kwargs)
    return time.perf_counter() - started


def build_database() -> None:
    """The n8n shape: execution_entity rows, and execution_data holding each run's JSON as text."""
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{SOURCE}"')
    with psycopg.connect(url(SOURCE), autocommit=True) as connection:
        connection.execute("""
            CREATE TABLE execution_entity (id serial PRIMARY KEY, "workflowId" text, finished boolean, "startedAt" timestamptz, "stoppedAt" timestamptz, status text);
            CREATE TABLE execution_data ("executionId" integer PRIMARY KEY REFERENCES execution_entity (id), "workflowData" text, data text);
        """)
        connection.execute(f"""
            INSERT INTO execution_entity ("workflowId", finished, "startedAt", "stoppedAt", status)
            SELECT 'wf-' || (g % 40), true, now() - g * interval '1 minute', now() - g * interval '1 minute' + interval '2 s', 'success'
            FROM generate_series(1, {JSON_ROWS}) g
        """)
        connection.execute(f"""
            INSERT INTO execution_data ("executionId", "workflowData", data)
            SELECT g, '{{"name": "WhatsApp bot", "nodes": 12}}',
                   (SELECT json_agg(json_build_object('id', md5(g::text || i), 'email', md5(i::text || g) || '@example.com',
                                                      'node', 'HTTP Request', 'status', 'success', 'ms', i * 7))::text
                    FROM generate_series(1, 20) i)
            FROM generate_series(1, {JSON_ROWS}) g
        """)
        connection.execute("VACUUM ANALYZE")
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(PGBENCH_SCALE), "-h", "127.0.0.1", "-U", "postgres", SOURCE], check=True, capture_output=True
    )


def drop_databases() -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        for name in (SOURCE, RESTORED_BY_HAND, RESTORED_BY_VIGIA):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for (name,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'vigia\\_scratch\\_postgres\\_bench%%'"
        ).fetchall():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def serve_webdav(stack: ExitStack, folder: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        ["rclone", "serve", "webdav", str(folder), "--addr", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    stack.callback(process.wait, 10)
    stack.callback(process.terminate)
    os.environ.update(
        {
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CONFIG_BENCHDAV_TYPE": "webdav",
            "RCLONE_CONFIG_BENCHDAV_URL": f"http://127.0.0.1:{port}",
            "RCLONE_CONFIG_BENCHDAV_VENDOR": "other",
        }
    )
    deadline = time.monotonic() + 20
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        if time.monotonic() > deadline:
            raise TimeoutError("rclone serve webdav did not start")
        time.sleep(0.05)


def seed_script(workdir: Path) -> float:
    """The seed: `pg_dump db | gzip > f.sql.gz` then `rclone copy` to the remote, as one shell script."""
    script = (
        f"set -euo pipefail; pg_dump -h 127.0.0.1 -U postgres {SOURCE} | gzip > {workdir}/n8n.sql.gz; rclone copy {workdir} benchdav:seed"
    )
    return timed(["bash", "-c", script])


def main() -> None:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from blocks.alert_routes import AlertRoutes
    from blocks.backup_plan import BackupPlan, BackupSource
    from blocks.vigia import VigiaSettings
    from store.backups import get_run
    from store.database import get_engine, migrate, open_session

    total = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="vigia-bench-backup-"))
    store_url = f"sqlite:///{home / 'vigia.db'}"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        stack.callback(drop_databases)
        started = time.perf_counter()
        build_database()
        with psycopg.connect(url(SOURCE)) as connection:
            size = connection.execute("SELECT pg_database_size(current_database()), sum(length(data)) FROM execution_data").fetchone()
        print(
            f"n8n-like database {SOURCE}: {size[0] / 2**20:.0f} MiB on disk, {size[1] / 2**20:.0f} MiB of JSON text, built in {time.perf_counter() - started:.1f} s"
        )
        serve_webdav(stack, home / "webdav")
        stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        migrate(store_url)
        stack.callback(get_engine(store_url).dispose)
        VigiaSettings(home=str(home), database_url=store_url).save("default", overwrite=True)
        AlertRoutes().save("default", overwrite=True)
        BackupPlan(
            sources=[
                BackupSource(name="postgres-bench", kind="postgres", url=url(SOURCE)),
                BackupSource(name="store", kind="store", url=store_url),
            ],
            local_dir=str(home / "backups"),
            remote="benchdav:vigia",
        ).save("default", overwrite=True)
        env = {
            **os.environ,
            "PREFECT_API_URL": PREFECT_API_URL.value(),
            "VIGIA_HOME": str(home),
            "VIGIA_DATABASE_URL": store_url,
            "VIGIA_BACKUP_POSTGRES": url(SOURCE),
            "VIGIA_BACKUP_REMOTE": "benchdav:vigia",
            "PREFECT_LOGGING_LEVEL": "WARNING",
        }

        seed_dir = home / "seed"
        seed_dir.mkdir()
        seed_seconds = seed_script(seed_dir)
        print(f"seed script: {seed_seconds:.1f} s ({(seed_dir / 'n8n.sql.gz').stat().st_size / 2**20:.0f} MiB gzip)")

        started = time.perf_counter()
        ran = subprocess.run(["vigia", "backup", "run", "--no-prune"], env=env, capture_output=True, text=True)
        vigia_seconds = time.perf_counter() - started
        if ran.returncode != 0:
            raise SystemExit(f"vigia backup run failed: {ran.stderr[-2000:]}")
        print(ran.stdout.strip())
        run_id = re.search(r"^backup (\S+) verified", ran.stdout, re.M).group(1)
        with open_session(store_url) as session:
            run = get_run(session, run_id)
        dump_upload = run.dump_seconds + run.upload_seconds

        dump = home / "backups" / run_id / "postgres-bench.pgdump.zst"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{RESTORED_BY_HAND}"')
        hand = timed(
            [
                "bash",
                "-c",
                f"set -euo pipefail; zstd -dc {dump} | pg_restore --no-owner --exit-on-error -h 127.0.0.1 -U postgres -d {RESTORED_BY_HAND}",
            ]
        )
        started = time.perf_counter()
        restored = subprocess.run(
            ["vigia", "restore", run_id, "--source", "postgres-bench", "--to", url(RESTORED_BY_VIGIA)],
            env=env,
            capture_output=True,
            text=True,
        )
        restore_wall = time.perf_counter() - started
        if restored.returncode != 0:
            raise SystemExit(f"vigia restore failed: {restored.stderr[-2000:]}")
        print(restored.stdout.strip())
        restore_seconds = float(re.search(r" in ([\d.]+) s ", restored.stdout).group(1))
        print(
            f"(vigia restore wall time with process start: {restore_wall:.1f} s; whole benchmark so far {time.perf_counter() - total:.0f} s)"
        )
    print(
        f"backup: {dump_upload:.1f} s dump+upload, {vigia_seconds:.1f} s with verification (seed script: {seed_seconds:.1f} s, ratio {dump_upload / seed_seconds:.2f})"
    )
    print(f"restore: {restore_seconds:.1f} s (zstd -dc | pg_restore by hand: {hand:.1f} s, ratio {restore_seconds / hand:.2f})")


if __name__ == "__main__":
    main()
