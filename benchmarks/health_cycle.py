"""Benchmark one health-check cycle: the real flow on a real Prefect server against plain asyncio.

Fifty healthy targets on 127.0.0.1 (HTTP, TCP, PostgreSQL, Redis) are probed by `health_check`
and by a plain asyncio script doing the same probes, then again with one HTTP target hanging
until its 10 s timeout. Needs PostgreSQL (trust) on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

    uv run python benchmarks/health_cycle.py

The last line is `health_cycle: flow X.XX s (plain asyncio: Y.YY s, ratio R.RR)`.
Goals: flow ≤ plain + 2 s; the hanging target adds no more than its timeout + 2 s.
"""

import asyncio  # noqa: E402
import os
import shutil
import statistics  # noqa: E402
import tempfile
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from hermetic import PREFECT_HOME  # noqa: E402,I001 — first: sets up the environment before Prefect loads

from tests.fakes.server import serve_app  # noqa: E402

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DSN = "redis://127.0.0.1:6379/0"
HTTP_SERVERS = 3
COUNTS = {"http": 15, "tcp": 15, "postgres": 10, "redis": 10}
HUNG_TIMEOUT_SECONDS = 10.0
HUNG_SLEEP_SECONDS = 60.0
RUNS = 3


@dataclass(frozen=True)
class Spec:
    """One benchmark target, neutral between the flow's Block and the plain probes."""

    name: str
    kind: str
    address: str  # URL for http, host:port for tcp, DSN for postgres and redis
    timeout_seconds: float = 10.0


def build_health_app() -> FastAPI:
    """Return an app whose GET /health answers {"status": "ok"} at once."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build_hung_app() -> FastAPI:
    """Return an app whose GET /health answers only after a minute, or gives up when the client leaves."""
    app = FastAPI()

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        # Stop once the prober has timed out and hung up, so no handler is left parked at shutdown.
        deadline = time.monotonic() + HUNG_SLEEP_SECONDS
        while time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(0.1)
        return {"status": "ok"}

    return app


def build_specs(http_bases: list[str]) -> list[Spec]:
    """Return the 50 healthy targets, spread over the loopback HTTP servers, PostgreSQL and Redis."""
    specs = []
    for index in range(COUNTS["http"]):
        specs.append(Spec(f"http-{index:02d}", "http", f"{http_bases[index % len(http_bases)]}/health"))
    for index in range(COUNTS["tcp"]):
        specs.append(Spec(f"tcp-{index:02d}", "tcp", http_bases[index % len(http_bases)].removeprefix("http://")))
    specs += [Spec(f"postgres-{index:02d}", "postgres", POSTGRES_DSN) for index in range(COUNTS["postgres"])]
    specs += [Spec(f"redis-{index:02d}", "redis", REDIS_DSN) for index in range(COUNTS["redis"])]
    return specs


def to_block(specs: list[Spec]):
    """Return the HealthTargets Block for the specs."""
    from blocks.health_targets import HealthTarget, HealthTargets

    targets = []
    for spec in specs:
        fields = {"name": spec.name, "kind": spec.kind, "timeout_seconds": spec.timeout_seconds}
        if spec.kind == "http":
            fields.update(url=spec.address, json_field="status", json_value="ok")
        elif spec.kind == "tcp":
            fields.update(url=spec.address)
        else:
            fields.update(dsn=spec.address)
        targets.append(HealthTarget(**fields))
    return HealthTargets(targets=targets)


async def plain_probe(spec: Spec, http_client: httpx.AsyncClient) -> bool:
    """Probe one target with the libraries directly; True when it answered as a healthy one does."""
    try:
        if spec.kind == "http":
            response = await http_client.get(spec.address, timeout=spec.timeout_seconds)
            return response.status_code == 200 and response.json().get("status") == "ok"
        if spec.kind == "tcp":
            host, _, port = spec.address.rpartition(":")
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), spec.timeout_seconds)
            writer.close()
            await writer.wait_closed()
            return True
        if spec.kind == "postgres":
            async with await psycopg.AsyncConnection.connect(
                spec.address, connect_timeout=round(spec.timeout_seconds), autocommit=True
            ) as connection:
                cursor = await connection.execute("SELECT 1")
                return (await cursor.fetchone()) == (1,)
        client = aioredis.from_url(spec.address, socket_timeout=spec.timeout_seconds)
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()
    except (httpx.HTTPError, OSError, asyncio.TimeoutError, psycopg.Error, aioredis.RedisError):
        return False


async def plain_cycle(specs: list[Spec]) -> dict[str, bool]:
    """Probe every target at once with plain asyncio; return each target's outcome."""
    async with httpx.AsyncClient() as http_client:
        outcomes = await asyncio.gather(*(plain_probe(spec, http_client) for spec in specs))
    return dict(zip((spec.name for spec in specs), outcomes))


def run_flow(block_name: str, **parameters) -> tuple[float, dict[str, str], str]:
    """Run the health-check flow once; return its wall time, each target's state and the run id."""
    from flows.health_check import health_check

    started = time.perf_counter()
    state = asyncio.run(health_check(targets_block=block_name, return_state=True, **parameters))
    seconds = time.perf_counter() - started
    if not state.is_completed():
        raise RuntimeError(f"health-check ended {state.type.value}: {state.message}")
    states = {name: target_state.state for name, target_state in state.result().items()}
    return seconds, states, str(state.state_details.flow_run_id)


def run_plain(specs: list[Spec]) -> tuple[float, dict[str, bool]]:
    """Run the plain asyncio cycle once; return its wall time and each target's outcome."""
    started = time.perf_counter()
    outcomes = asyncio.run(plain_cycle(specs))
    return time.perf_counter() - started, outcomes


def server_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def read_task_durations(flow_run_id: str) -> list[tuple[str, float]]:
    """Return (task name, seconds) for every task run of one flow run, in start order."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    runs = sorted(runs, key=lambda run: run.start_time or run.expected_start_time)
    return [(run.name, run.total_run_time.total_seconds()) for run in runs]


def measure_pair(
    label: str,
    flow: Callable[[], tuple[float, dict, str]],
    plain: Callable[[], tuple[float, dict]],
    expect: Callable[[dict, dict], None],
    server_pid: int,
) -> tuple[float, float, str]:
    """Time the flow and the plain cycle RUNS times each, interleaved; return both medians and the last run id."""
    flow_times, plain_times, cpu_times, run_id = [], [], [], ""
    for attempt in range(1, RUNS + 1):
        cpu_before = server_cpu_seconds(server_pid)
        flow_seconds, states, run_id = flow()
        cpu_times.append(server_cpu_seconds(server_pid) - cpu_before)
        plain_seconds, outcomes = plain()
        expect(states, outcomes)
        flow_times.append(flow_seconds)
        plain_times.append(plain_seconds)
        print(
            f"  {label} run {attempt}/{RUNS}: flow {flow_seconds:.2f} s (Prefect server CPU {cpu_times[-1]:.2f} s), plain {plain_seconds:.2f} s"
        )
    return statistics.median(flow_times), statistics.median(plain_times), run_id


def expect_all_up(states: dict[str, str], outcomes: dict[str, bool]) -> None:
    """Fail the benchmark if any target was not healthy, so a broken stack cannot pass for a fast one."""
    not_up = sorted(name for name, state in states.items() if state != "UP")
    failed = sorted(name for name, ok in outcomes.items() if not ok)
    if not_up or failed or len(states) != len(outcomes):
        raise RuntimeError(f"unexpected results: flow not UP {not_up}, plain failed {failed}")


def expect_only_hung_down(states: dict[str, str], outcomes: dict[str, bool]) -> None:
    """Fail the benchmark unless exactly the hanging target failed, in both runs."""
    not_up = sorted(name for name, state in states.items() if state != "UP")
    failed = sorted(name for name, ok in outcomes.items() if not ok)
    if not_up != ["http-hung"] or states["http-hung"] != "DOWN" or failed != ["http-hung"]:
        raise RuntimeError(f"unexpected results: flow not UP {not_up} ({states.get('http-hung')}), plain failed {failed}")


def line(label: str, flow_seconds: float, plain_seconds: float) -> str:
    """Return one result line in the issue's format."""
    return f"{label}: flow {flow_seconds:.2f} s (plain asyncio: {plain_seconds:.2f} s, ratio {flow_seconds / plain_seconds:.2f})"


def main() -> None:
    """Start the loopback stack and a Prefect server, time both cycles, print the result lines."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from blocks.vigia import VigiaSettings
    from store.database import get_engine, migrate

    total_started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix="vigia-bench-home-"))
    url = f"sqlite:///{home / 'vigia.db'}"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        http_bases = [stack.enter_context(serve_app(build_health_app())) for _ in range(HTTP_SERVERS)]
        hung_base = stack.enter_context(serve_app(build_hung_app()))
        started = time.perf_counter()
        stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        server_pid = SubprocessASGIServer._instances[None].server_process.pid
        print(f"Prefect server up in {time.perf_counter() - started:.1f} s (heartbeat every {PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value()} s)")
        migrate(url)
        stack.callback(get_engine(url).dispose)

        specs = build_specs(http_bases)
        hung_specs = specs + [Spec("http-hung", "http", f"{hung_base}/health", HUNG_TIMEOUT_SECONDS)]
        VigiaSettings(home=str(home), database_url=url).save("default", overwrite=True)
        to_block(specs).save("bench", overwrite=True)
        to_block(hung_specs).save("bench-hung", overwrite=True)
        kinds = ", ".join(f"{count} {kind}" for kind, count in COUNTS.items())
        print(f"{len(specs)} targets ({kinds}) on {HTTP_SERVERS} HTTP servers, PostgreSQL and Redis, all on 127.0.0.1")

        warm_flow, _, _ = run_flow("bench")
        warm_plain, _ = run_plain(specs)
        print(f"warm-up (not counted): flow {warm_flow:.2f} s, plain {warm_plain:.2f} s")

        flow_seconds, plain_seconds, run_id = measure_pair(
            "healthy", lambda: run_flow("bench"), lambda: run_plain(specs), expect_all_up, server_pid
        )
        tasks = asyncio.run(read_task_durations(run_id))
        print("  last healthy flow run, task by task: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in tasks))

        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            quiet = statistics.median(run_flow("bench")[0] for _ in range(RUNS))
        print(f"  for comparison, flow with heartbeats off: {quiet:.2f} s (median of {RUNS})")

        # confirm_after_seconds=0 sends the failing target straight to DOWN, so the flow never
        # enters its re-probe loop: the cycle costs one probe round, as the plain script does.
        hung_flow, hung_plain, _ = measure_pair(
            "one hanging",
            lambda: run_flow("bench-hung", confirm_after_seconds=0),
            lambda: run_plain(hung_specs),
            expect_only_hung_down,
            server_pid,
        )
        print(
            f"  the hanging target added {hung_flow - flow_seconds:.2f} s to the flow "
            f"(goal ≤ {HUNG_TIMEOUT_SECONDS + 2:.0f} s) and {hung_plain - plain_seconds:.2f} s to plain asyncio"
        )
        print(f"  flow − plain: {flow_seconds - plain_seconds:.2f} s healthy, {hung_flow - hung_plain:.2f} s hanging (goal ≤ 2 s)")
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)
    print(f"total benchmark wall time {time.perf_counter() - total_started:.0f} s")
    print(line(f"health_cycle (one target hanging {HUNG_TIMEOUT_SECONDS:.0f} s)", hung_flow, hung_plain))
    print(line("health_cycle", flow_seconds, plain_seconds))


if __name__ == "__main__":
    main()
