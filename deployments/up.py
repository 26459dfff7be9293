"""`vigia up`: run the whole platform — Prefect server, store, Blocks, deployments, receiver, dashboard — until Ctrl-C."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from deployments.definitions import read_definitions
from deployments.log_files import rotate_if_large
from deployments.settings import Settings

logger = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 20
SERVER_START_SECONDS = 180


class PlatformError(Exception):
    """A part of the platform did not start or stopped on its own."""


@dataclass(frozen=True)
class Ports:
    """Where each part listens."""

    prefect: int = 4200
    webhook: int = 8787
    dashboard: int = 8501


@dataclass
class Child:
    """A process `vigia up` started and must stop."""

    name: str
    process: subprocess.Popen
    log_path: Path


class Platform:
    """Starts the parts in order and stops every one of them, whatever happens."""

    def __init__(self, settings: Settings, ports: Ports, say: Callable[[str], None]):
        self.settings = settings
        self.ports = ports
        self.say = say
        self.marker = uuid.uuid4().hex
        self.children: list[Child] = []
        self.logs = settings.home / "logs"
        self.api_url = settings.prefect_api_url or f"http://127.0.0.1:{ports.prefect}/api"
        self.state_file = settings.home / "up.json"
        self.env = self._child_environment()

    def claim_home(self) -> None:
        """Take VIGIA_HOME for this run; clean up what a killed `vigia up` left running there.

        Raises:
            PlatformError: when another `vigia up` is running on the same VIGIA_HOME.
        """
        self.settings.home.mkdir(parents=True, exist_ok=True)
        previous = _read_json(self.state_file)
        if previous:
            if _is_alive(previous.get("pid", -1)):
                raise PlatformError(f"vigia up is already running on {self.settings.home} (pid {previous['pid']}); stop it first")
            leftovers = processes_with_marker(str(previous.get("marker", "")))
            for pid in leftovers:
                _signal_group(pid, signal.SIGKILL, group=False)
            if leftovers:
                self.say(f"stopped {len(leftovers)} processes left running by a vigia up that was killed")
        self.state_file.write_text(json.dumps({"pid": os.getpid(), "marker": self.marker}))

    def start_prefect(self) -> None:
        """Start a Prefect server on SQLite under VIGIA_HOME, unless PREFECT_API_URL names one; wait until healthy."""
        if self.settings.prefect_api_url:
            self.say(f"using the Prefect server at {self.api_url}")
        else:
            self._spawn("prefect-server", [
                sys.executable, "-m", "prefect", "server", "start",
                "--host", "127.0.0.1", "--port", str(self.ports.prefect), "--analytics-off",
            ])
        self._wait_healthy("prefect-server", f"{self.api_url}/health", SERVER_START_SECONDS)

    def start_services(self) -> None:
        """Start the runner serving prefect.yaml, the webhook receiver and the dashboard; wait until each answers."""
        self._spawn("serve", [sys.executable, "-m", "deployments.serve"])
        for definition in read_definitions(environ=self.env):
            path = f"{definition.load_flow().name}/{definition.name}"
            self._wait_healthy("serve", f"{self.api_url}/deployments/name/{path}", 120)
        self._spawn("receiver", [
            sys.executable, "-m", "uvicorn", "deployments.webhook:create_app_from_environment", "--factory",
            "--host", self.settings.bind, "--port", str(self.ports.webhook), "--log-level", "warning",
        ])
        self._wait_healthy("receiver", f"http://{self._local(self.settings.bind)}:{self.ports.webhook}/health", 60, accept=(200, 503))
        self._spawn("dashboard", [sys.executable, "-m", "deployments.cli", "dashboard", "--port", str(self.ports.dashboard)])
        self._wait_healthy("dashboard", f"http://{self._local(self.settings.bind)}:{self.ports.dashboard}/_stcore/health", 90)

    def watch(self) -> None:
        """Block until Ctrl-C (or SIGTERM), or until a child stops on its own.

        Raises:
            PlatformError: naming the child that stopped and the tail of its log.
        """
        while True:
            for child in self.children:
                if child.process.poll() is not None:
                    raise PlatformError(f"{child.name} stopped on its own (exit {child.process.returncode}): {self._tail(child)}")
                rotate_if_large(child.log_path)
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop every child with SIGINT (an idle Prefect worker ignores SIGTERM), then kill stragglers."""
        started = time.monotonic()
        for child in reversed(self.children):
            if child.process.poll() is None:
                _signal_group(child.process.pid, signal.SIGINT)
        deadline = started + STOP_GRACE_SECONDS
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {STOP_GRACE_SECONDS} s; killing it")
                _signal_group(child.process.pid, signal.SIGKILL)
                child.process.wait()
            self.say(f"{child.name} stopped after {time.monotonic() - started:.1f} s")
        # Flow runs start in sessions of their own; anything still carrying our marker goes too.
        for pid in processes_with_marker(self.marker):
            _signal_group(pid, signal.SIGKILL, group=False)
        if _read_json(self.state_file).get("marker") == self.marker:
            self.state_file.unlink(missing_ok=True)

    def _child_environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "VIGIA_UP_MARKER": self.marker,
            "VIGIA_HOME": str(self.settings.home),
            "VIGIA_TIMEZONE": self.settings.timezone,  # prefect.yaml's schedules use {{ $VIGIA_TIMEZONE }}
            "PREFECT_API_URL": self.api_url,
            "PREFECT_HOME": str(self.settings.home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_LOGGING_EXTRA_LOGGERS": "clients,store,deployments",
            "PREFECT_UI_API_URL": self.api_url,
        })
        if self.settings.prefect_auth_string:
            env["PREFECT_API_AUTH_STRING"] = self.settings.prefect_auth_string
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            # A session of its own, so a terminal's Ctrl-C reaches only `vigia up`, which stops
            # the children in order.
            process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.children.append(Child(name, process, log_path))

    def _wait_healthy(self, name: str, url: str, seconds: float, accept: tuple[int, ...] = (200,)) -> None:
        child = next((c for c in self.children if c.name == name), None)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if child is not None and child.process.poll() is not None:
                raise PlatformError(f"{name} exited with {child.process.returncode} while starting: {self._tail(child)}")
            try:
                if httpx.get(url, timeout=2).status_code in accept:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise PlatformError(f"{name} did not answer at {url} within {seconds:.0f} s; see {child.log_path if child else url}")

    @staticmethod
    def _local(bind: str) -> str:
        return "127.0.0.1" if bind in ("0.0.0.0", "::", "localhost") else bind

    @staticmethod
    def _tail(child: Child) -> str:
        try:
            lines = child.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"no log at {child.log_path}"
        return " | ".join(lines[-3:]) or f"nothing in {child.log_path}"


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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _is_alive(pid: int) -> bool:
    try:
        return pid > 0 and "vigia" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _signal_group(pid: int, signum: int, group: bool = True) -> None:
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
