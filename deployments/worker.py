"""`vigia worker`: a Prefect process worker on the work pool `vigia`, with the environment `vigia up` gives its parts.

    python -m deployments.worker [--name NAME] [--pool vigia] [--queue QUEUE]

Prefect's process worker has been seen to ignore SIGTERM while idle (research §10: alive 30 s later in 2 of 3 trials;
PrefectHQ/prefect#22528), so a plain `systemctl stop` or `docker stop` could wait and then kill it. This light parent (no Prefect import) runs the worker in
a session of its own and turns the first SIGTERM, SIGINT or SIGHUP into one SIGINT, which the worker obeys; the worker
also gets SIGINT should this parent die. Flow runs start in the directory `VIGIA_CHECKOUT` names (prefect.yaml's pull
step), by default the checkout this module is in."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from deployments.parts import Ports, child_environment, platform_urls
from deployments.platform_state import running_platform
from deployments.settings import Settings, load_settings_or_exit

POOL = "vigia"  # deployments.work_pool.POOL (not imported: this parent loads no Prefect)
CHECKOUT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1


class WorkerError(Exception):
    """The worker cannot start: no Prefect server is known."""


def worker_environment(settings: Settings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment of `vigia up`'s parts, pointed at PREFECT_API_URL (or the platform running on VIGIA_HOME), with
    VIGIA_CHECKOUT defaulting to this checkout.

    Raises:
        WorkerError: when neither names a Prefect server.
    """
    urls = platform_urls(settings, Ports())
    if settings.prefect_api_url is None:
        state = running_platform(settings.home)
        if state is None or not state.prefect_api_url:
            raise WorkerError(
                f"no Prefect server known: set PREFECT_API_URL (http://HOST:4200/api), or run `vigia up` on VIGIA_HOME={settings.home}"
            )
        urls = replace(urls, prefect_api=state.prefect_api_url)
    env = child_environment(settings, urls, marker=f"worker-{uuid.uuid4().hex}", environ=environ)
    env.setdefault("VIGIA_CHECKOUT", str(CHECKOUT))
    return env


def worker_argv(name: str, pool: str = POOL, queue: str | None = None) -> list[str]:
    """Prefect's own `prefect worker start` for a process worker (it creates the pool if it is missing)."""
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name]
    return argv + (["--work-queue", queue] if queue else [])


def run_worker(argv: list[str], env: Mapping[str, str]) -> int:
    """Run the worker until it ends or a stop signal; return 0 when it stopped on request, else its exit code."""
    worker = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_interrupt_on_parent_death)
    # Beside it, the sweep that marks Crashed (and alerts) the runs whose process died, here or on another host.
    sweeper = subprocess.Popen(
        [sys.executable, "-m", "tasks.zombies"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_interrupt_on_parent_death,
    )
    stopping: list[str] = []

    def stop(signum, frame) -> None:
        if not stopping:  # once: a second SIGINT makes Prefect abandon its runs with a traceback
            stopping.append(signal.Signals(signum).name)
            print(f"vigia: stopping the worker ({stopping[0]})…", file=sys.stderr, flush=True)
            for process in (worker, sweeper):
                try:
                    os.killpg(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    code = worker.wait()
    if sweeper.poll() is None:
        os.killpg(sweeper.pid, signal.SIGINT)
    try:
        sweeper.wait(timeout=10)
    except subprocess.TimeoutExpired:
        sweeper.kill()
    return 0 if stopping and code in (0, 1, 130, -signal.SIGINT) else code


def _interrupt_on_parent_death() -> None:
    """In the worker, before exec: Linux sends it SIGINT when this parent dies (even by SIGKILL)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass  # not Linux: the worker then outlives a killed parent, as a bare `prefect worker start` would


def main(argv: list[str] | None = None) -> int:
    """Read the settings (exit 2 naming each bad one) and run the worker; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m deployments.worker", description="Run a Prefect process worker on pool vigia.")
    parser.add_argument("--name", default=f"vigia-{socket.gethostname()}-{os.getpid()}", help="The worker's name in the Prefect UI.")
    parser.add_argument("--pool", default=POOL, help="The work pool to take runs from.")
    parser.add_argument("--queue", default=None, help="Only this work queue of the pool (default: all of them).")
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    try:
        env = worker_environment(settings)
    except WorkerError as error:
        print(f"vigia: {error}", file=sys.stderr, flush=True)
        return 2
    print(f"vigia: worker {args.name} on pool {args.pool} at {env['PREFECT_API_URL']}, runs in {env['VIGIA_CHECKOUT']}", file=sys.stderr)
    return run_worker(worker_argv(args.name, args.pool, args.queue), env)


if __name__ == "__main__":
    sys.exit(main())
