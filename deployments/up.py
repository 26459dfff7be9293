"""`vigia up`: run the whole platform under a light supervisor until Ctrl-C (or SIGTERM, SIGHUP).

    python -m deployments.up --prefect-port 4200 --webhook-port 8787 --dashboard-port 8501

`vigia up` execs into this (same pid), so the process that stays up for days carries none of the CLI's imports: the
supervisor loads the standard library and our own light modules only (no Prefect, httpx, Typer, pydantic or
SQLAlchemy). Migrating the store and saving the Blocks run in short-lived children (deployments.bootstrap), and a part
that keeps dying is reported by another (deployments.part_alert)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from deployments.migration_stamps import prefect_stamp, record_migrated, store_stamp
from deployments.parts import (
    DEFAULT_ROLES,
    HEALTH_CHECK_DEPLOYMENT,
    PartsError,
    Ports,
    Urls,
    build_parts,
    child_environment,
    free_loopback_port,
    parse_roles,
    platform_urls,
    prefect_database_url,
    prefect_headers,
)
from deployments.platform_state import PlatformState, read_state, remove_state, write_state
from deployments.settings import Settings, load_settings_or_exit
from deployments.supervisor import Child, PartFailed, PartUnreachable, Supervisor, call_part, signal_group

__all__ = ["PlatformError", "Ports", "main", "run_up"]
STEP_SECONDS = 0.25
PRINTED_PARTS = ("prefect-server", "receiver", "dashboard")
FIRST_CHECK_TRIES = 30  # a minute of tries, FIRST_CHECK_RETRY_SECONDS apart
FIRST_CHECK_RETRY_SECONDS = 2.0


class PlatformError(Exception):
    """The platform cannot start on this VIGIA_HOME (another `vigia up` holds it)."""


class StopRequest:
    """Set by SIGINT, SIGTERM or SIGHUP. Never raises: a second Ctrl-C (`uv run` forwards one ~200 ms after the
    terminal's) must not cut the ordered stop short."""

    def __init__(self):
        self.signal_name: str | None = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.signal_name = self.signal_name or signal.Signals(signum).name

    def __bool__(self) -> bool:
        return self.signal_name is not None


def run_up(
    settings: Settings,
    ports: Ports,
    say: Callable[[str], None],
    show: Callable[[str], None],
    roles: tuple[str, ...] = DEFAULT_ROLES,
) -> int:
    """Run the parts `roles` name (the whole platform by default) until a stop signal; return the exit code (0 stopped
    on request, 1 failed, 2 bad setting)."""
    say, show = _never_failing(say), _never_failing(show)
    if not settings.bind_is_loopback and not (settings.prefect_auth_string and settings.dashboard_password):
        say(f"VIGIA_BIND={settings.bind} is not loopback: set PREFECT_SERVER_API_AUTH_STRING and VIGIA_DASHBOARD_PASSWORD first")
        return 2
    try:
        prefect_database = prefect_database_url()
    except PartsError as error:
        say(str(error))
        return 2
    stop = StopRequest()
    urls, marker = platform_urls(settings, ports), uuid.uuid4().hex
    try:
        claim_home(settings.home, marker, urls, say)
    except PlatformError as error:
        say(str(error))
        return 1
    env = child_environment(settings, urls, marker)
    alerts = PartAlerts(env, settings.home / "logs")
    supervisor = Supervisor(build_parts(settings, ports, urls, prefect_database, roles), env, settings.home / "logs", say, alerts.send)
    code = 0
    try:
        state = PlatformState(os.getpid(), marker, urls.prefect_api, urls.receiver, urls.dashboard)
        watch(supervisor, state, settings, prefect_database, stop, say, show)
        say(f"stopping ({stop.signal_name})…")
    except PartFailed as error:
        say(str(error))
        code = 1
    finally:
        supervisor.stop()
        alerts.stop()
        kill_leftovers(marker, say)
        remove_state(settings.home, marker)
    return code


def watch(
    supervisor: Supervisor,
    state: PlatformState,
    settings: Settings,
    prefect_database: str | None,
    stop: StopRequest,
    say: Callable[[str], None],
    show: Callable[[str], None],
) -> None:
    """Step the supervisor until a stop signal: print the URLs once they answer, start one health check, keep up.json current.

    Raises:
        PartFailed: when a part cannot start.
    """
    printed = False
    check_tries, next_check_at = 0, 0.0  # the first health check: tried once serve is ready, again while Prefect's SQLite is busy
    while not stop:
        supervisor.step()
        if state.parts != (pids := supervisor.pids()):
            state = PlatformState(state.pid, state.marker, state.prefect_api_url, state.receiver_url, state.dashboard_url, pids)
            write_state(settings.home, state)
        record_stamps(supervisor, settings, prefect_database)
        if not printed and all(supervisor.is_ready(name) for name in PRINTED_PARTS if name in supervisor.children):
            printed = True
            show_urls(state, show, set(supervisor.children))
        if check_tries < FIRST_CHECK_TRIES and time.monotonic() >= next_check_at and supervisor.is_ready("serve"):
            check_tries, next_check_at = check_tries + 1, time.monotonic() + FIRST_CHECK_RETRY_SECONDS
            if start_health_check(state, settings, say, last_try=check_tries == FIRST_CHECK_TRIES):
                check_tries = FIRST_CHECK_TRIES
        time.sleep(STEP_SECONDS)


def record_stamps(supervisor: Supervisor, settings: Settings, prefect_database: str | None) -> None:
    """Once a database is migrated, record it, so the next start skips that migration (deployments.migration_stamps)."""
    for part, name, stamp in (
        ("migrate", "store", lambda: store_stamp(settings.database_url)),
        ("prefect-server", "prefect", lambda: prefect_stamp(settings.home, prefect_database)),
    ):
        child = supervisor.children.get(part)
        if child is not None and child.ready and not child.stamped:
            child.stamped = True
            record_migrated(settings.home, name, stamp())


def show_urls(state: PlatformState, show: Callable[[str], None], running: frozenset[str] | set[str] = frozenset(PRINTED_PARTS)) -> None:
    """Print where each part running here answers (the Prefect UI also when another host serves it)."""
    show(f"Prefect UI:       {state.prefect_ui_url}")
    if "receiver" in running:
        show(f"webhook receiver: {state.receiver_url}  (GET /health)")
    if "dashboard" in running:
        show(f"SLA dashboard:    {state.dashboard_url}")
    show("Vigia is up; Ctrl-C stops everything.")


def start_health_check(state: PlatformState, settings: Settings, say: Callable[[str], None], last_try: bool) -> bool:
    """Create a run of health-check/every-5-min now (the served runner takes it), so /health, `vigia status` and
    the dashboard have something real to say within a minute of the start, not at the next five-minute mark.

    Returns:
        Whether the run was created; a refusal (Prefect's SQLite answers 503 while the runner writes its
        schedules) is said only on the last try. One key per start: a try that did land is never doubled.
    """
    api_url = state.prefect_api_url
    headers = prefect_headers(settings)
    try:
        found = _prefect_json(f"{api_url}/deployments/name/{HEALTH_CHECK_DEPLOYMENT}", headers)
        payload = {"idempotency_key": f"vigia-up-first-check-{state.marker}"}
        created = _prefect_json(f"{api_url}/deployments/{found['id']}/create_flow_run", headers, payload)
    except PartUnreachable as error:
        if last_try:
            say(f"the first health check was not started ({error}); it runs at the next five-minute mark")
        return False
    say(f"first health check started: flow run {created['name']}")
    return True


def _prefect_json(url: str, headers: dict[str, str], payload: dict | None = None) -> dict:
    """Prefect's JSON answer to a GET (a POST of `payload`).

    Raises:
        PartUnreachable: when Prefect does not answer, refuses (any status but 2xx) or answers something else than JSON.
    """
    status, body = call_part(url, headers, payload, timeout=10)
    method = "GET" if payload is None else "POST"
    if not 200 <= status < 300:
        raise PartUnreachable(f"{method} {url}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise PartUnreachable(f"{method} {url}: HTTP {status} with a body that is not JSON") from None


class PartAlerts:
    """Sends the `critical` alert for a part that keeps dying from a child (`python -m deployments.part_alert`), never waiting."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs = env, logs
        self.sending: list[subprocess.Popen] = []

    def send(self, child: Child) -> None:
        """Start the alert's child; reap the ones that finished."""
        self.sending = [process for process in self.sending if process.poll() is None]
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "alerts.log", "ab") as log:
            self.sending.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "deployments.part_alert",
                        "--part",
                        child.part.name,
                        "--deaths",
                        str(len(child.deaths)),
                        "--log",
                        str(child.log_path),
                    ],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )

    def stop(self, grace_seconds: float = 10) -> None:
        """Give alerts still being sent a moment to finish, then stop them."""
        deadline = time.monotonic() + grace_seconds
        for process in self.sending:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()


def claim_home(home: Path, marker: str, urls: Urls, say: Callable[[str], None]) -> None:
    """Take VIGIA_HOME for this run and record where its parts will answer; stop what a killed `vigia up` left running.

    Raises:
        PlatformError: when another `vigia up` is running on the same VIGIA_HOME.
    """
    home.mkdir(parents=True, exist_ok=True)
    previous = read_state(home)
    if previous is not None:
        if is_vigia_process(previous.pid):
            raise PlatformError(f"vigia up is already running on {home} (pid {previous.pid}); stop it first")
        leftovers = processes_with_marker(previous.marker)
        for pid in leftovers:
            signal_group(pid, signal.SIGKILL, group=False)
        if leftovers:
            say(f"stopped {len(leftovers)} processes left running by a vigia up that was killed")
    write_state(home, PlatformState(os.getpid(), marker, urls.prefect_api, urls.receiver, urls.dashboard))


def kill_leftovers(marker: str, say: Callable[[str], None]) -> None:
    """Kill whatever still carries this run's marker: flow runs start in sessions of their own."""
    leftovers = processes_with_marker(marker)
    for pid in leftovers:
        signal_group(pid, signal.SIGKILL, group=False)
    if leftovers:
        say(f"killed {len(leftovers)} processes the parts left behind")


def processes_with_marker(marker: str) -> list[int]:
    """Return the pids of live processes whose environment carries this `vigia up` marker."""
    needle = f"VIGIA_UP_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue  # gone, or not ours to read
    return found


def is_vigia_process(pid: int) -> bool:
    """Whether `pid` is alive and a `vigia` process (not a pid reused by something else)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        return pid > 0 and pid != os.getpid() and any(name in command for name in ("vigia", "deployments.cli", "deployments.up"))
    except OSError:
        return False


def _never_failing(write: Callable[[str], None]) -> Callable[[str], None]:
    """A writer that drops what it cannot write: a terminal or pipe that went away (`make up | tee` and a Ctrl-C
    that ends tee first) must never abandon the stop half-way."""

    def write_or_drop(line: str) -> None:
        try:
            write(line)
        except OSError:
            pass

    return write_or_drop


def main(argv: list[str] | None = None) -> int:
    """Read the settings (exit 2 naming each bad one) and run the platform; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m deployments.up",
        description="Run the whole platform until Ctrl-C: Prefect server, store, Blocks, every deployment, the receiver, the dashboard.",
    )
    parser.add_argument("--prefect-port", type=int, default=Ports.prefect, help="Port of the Prefect server and UI.")
    parser.add_argument("--webhook-port", type=int, default=Ports.webhook, help="Port of the webhook receiver.")
    parser.add_argument("--dashboard-port", type=int, default=Ports.dashboard, help="Port of the SLA dashboard.")
    parser.add_argument(
        "--runner-port", type=int, default=0, help="Port of the served runner's health endpoint (127.0.0.1); 0: a free one."
    )
    parser.add_argument("--only", help="Run only these parts, a comma list of: server, receiver, dashboard, runner, transcriber.")
    args = parser.parse_args(argv)
    try:
        roles = parse_roles(args.only)
    except PartsError as error:
        print(f"vigia: {error}", file=sys.stderr, flush=True)
        return 2
    settings = load_settings_or_exit()
    if args.only is not None and "server" in roles and settings.prefect_api_url:
        print(
            f"vigia: --only server: PREFECT_API_URL names another Prefect server ({settings.prefect_api_url}); unset it on this host",
            file=sys.stderr,
        )
        return 2
    ports = Ports(
        prefect=args.prefect_port, webhook=args.webhook_port, dashboard=args.dashboard_port, runner=args.runner_port or free_loopback_port()
    )
    return run_up(
        settings,
        ports,
        say=lambda line: print(f"vigia: {line}", file=sys.stderr, flush=True),
        show=lambda line: print(line, flush=True),
        roles=roles,
    )


if __name__ == "__main__":
    sys.exit(main())
