"""Run the platform's parts as child processes: start each once what it needs is ready, restart one that dies
(with backoff), and stop them all in order. Imports nothing but the standard library and our own light modules (no
Prefect, pandas, Streamlit, httpx, Typer or SQLAlchemy): it stays up as long as the platform, and small."""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deployments.log_files import rotate_if_large

logger = logging.getLogger(__name__)
BACKOFF_SECONDS = (1, 2, 4, 8, 15, 30, 60)  # the wait before each successive restart of a part that keeps dying
STREAK_WINDOW_SECONDS = 600  # deaths this close together count as one streak; a part up this long starts afresh
ALERT_AFTER_DEATHS = 4  # a streak this long raises the `critical` alert (once per streak)
STOP_GRACE_SECONDS = 20
START_ATTEMPTS = 3  # a part that dies this many times before it was ever ready fails the start
HEALTH_EVERY_SECONDS = 5  # how often a ready part's health URL is asked


class PartFailed(Exception):
    """A part could not start: a one-shot step failed, or a service died or stayed silent before it was ever ready."""


class PartUnreachable(Exception):
    """A call to a part on this machine got no answer: refused, reset or timed out."""


@dataclass(frozen=True)
class Part:
    """One process of the platform and how to tell it is ready."""

    name: str
    argv: tuple[str, ...]
    needs: tuple[str, ...] = ()  # parts that must be ready before this one starts
    ready_url: str | None = None  # a service is ready once this answers one of `accept`; None: once started
    accept: tuple[int, ...] = (200,)
    headers: Mapping[str, str] = field(default_factory=dict)  # sent with the readiness check (Prefect's basic auth)
    one_shot: bool = False  # runs to completion once; exit 0 is ready, anything else fails the start
    start_seconds: float = 180  # how long the first start may take to be ready
    nice: int = 0  # added to the part's niceness: background work yields the CPU to what people open
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the supervisor's environment for children
    restart_env: Mapping[str, str] = field(default_factory=dict)  # on top of `env` once it has been ready
    # Alive is not enough: a ready part whose health URL fails for `unhealthy_seconds` (hung, stopped polling) is killed
    # and restarted like a dead one, unless `health_gate_url` (what it depends on: Prefect's API) fails too.
    health_url: str | None = None
    health_gate_url: str | None = None
    unhealthy_seconds: float = 30


@dataclass
class Child:
    """What the supervisor knows of one part: its process, whether it was ever ready, its recent deaths."""

    part: Part
    log_path: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready: bool = False
    ever_ready: bool = False
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None
    alerted: bool = False
    stamped: bool = False  # `vigia up` recorded what this part's first readiness means (a migrated database)
    health_checked_at: float | None = None
    health_seen: bool = False  # its health URL answered 200 since it was spawned
    unhealthy_since: float | None = None


class Supervisor:
    """Starts parts as their needs are met, restarts the ones that die, and stops all of them in reverse order."""

    def __init__(
        self,
        parts: list[Part],
        env: Mapping[str, str],
        logs: Path,
        say: Callable[[str], None],
        alert: Callable[[Child], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.children = {part.name: Child(part, logs / f"{part.name}.log") for part in parts}
        self.env = dict(env)
        self.logs = logs
        self.say = say
        self.alert = alert
        self.clock = clock

    def is_ready(self, name: str) -> bool:
        """Whether the part is running and ready now (a one-shot: it finished well)."""
        return name in self.children and self.children[name].ready

    def pids(self) -> dict[str, int]:
        """The pid of every part running now, by name."""
        return {name: c.process.pid for name, c in self.children.items() if c.process is not None and c.process.poll() is None}

    def step(self) -> None:
        """One pass: notice deaths, restart the due ones, start what can start, and check readiness.

        Raises:
            PartFailed: when a one-shot step fails, or a service fails before it was ever ready.
        """
        now = self.clock()
        for child in self.children.values():
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    self._spawn(child)
                elif child.restart_at is None and not child.deaths and self._needs_met(child.part):
                    self._spawn(child)
            elif child.process.poll() is not None:
                self._exited(child, now)
            elif not child.ready:
                self._check_ready(child, now)
            else:
                if child.deaths and now - child.started_at > STREAK_WINDOW_SECONDS:
                    child.deaths, child.alerted = [], False  # up long enough: the streak is over
                rotate_if_large(child.log_path)
                self._check_health(child, now)

    def stop(self) -> None:
        """Stop every part, those that need others first, with SIGINT (a Prefect runner ignores SIGTERM when idle),
        then SIGKILL what is still there after the grace period."""
        for layer in self._stop_layers():
            started = self.clock()
            running = [c for c in layer if c.process is not None and c.process.poll() is None]
            for child in running:
                # A one-shot step is simply ended (SIGTERM: no KeyboardInterrupt traceback on the terminal it shares).
                signal_group(child.process.pid, signal.SIGTERM if child.part.one_shot else signal.SIGINT)
            for child in running:
                self._wait_or_kill(child, started + STOP_GRACE_SECONDS)
                self.say(f"{child.part.name} stopped after {self.clock() - started:.1f} s")
            for child in layer:
                child.process, child.ready, child.restart_at = None, False, None

    def _spawn(self, child: Child) -> None:
        part = child.part
        self.logs.mkdir(parents=True, exist_ok=True)
        # One-shots print to the terminal (setup's summary, a bad setting's one line); services write a log.
        output = None if part.one_shot else open(child.log_path, "ab")
        try:
            # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which stops parts in order.
            child.process = subprocess.Popen(
                part.argv,
                env={**self.env, **part.env, **(part.restart_env if child.ever_ready else {})},
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_niceness(part.nice),
            )
        finally:
            if output is not None:
                output.close()
        child.started_at, child.ready, child.restart_at = self.clock(), False, None
        child.health_checked_at, child.unhealthy_since, child.health_seen = None, None, False
        if child.deaths:
            self.say(f"{part.name} restarted (pid {child.process.pid})")

    def _exited(self, child: Child, now: float) -> None:
        part, code = child.part, child.process.returncode
        if part.one_shot:
            if code != 0:
                raise PartFailed(f"{part.name} failed (exit {code}); see the lines above")
            child.ready = True
            return
        child.process, child.ready = None, False
        child.deaths = [t for t in child.deaths if now - t < STREAK_WINDOW_SECONDS] + [now]
        if not child.ever_ready and len(child.deaths) >= START_ATTEMPTS:  # a port in use, a bad setting: not worth more
            raise PartFailed(f"{part.name} exited with {code} while starting ({START_ATTEMPTS} tries): {tail(child.log_path)}")
        wait = BACKOFF_SECONDS[min(len(child.deaths), len(BACKOFF_SECONDS)) - 1]
        child.restart_at = now + wait
        self.say(f"{part.name} died (exit {code}, {len(child.deaths)} in 10 min); restarting in {wait} s: {tail(child.log_path)}")
        if len(child.deaths) >= ALERT_AFTER_DEATHS and not child.alerted:
            child.alerted = True
            self.alert(child)

    def _check_ready(self, child: Child, now: float) -> None:
        part = child.part
        if part.one_shot:
            return
        if part.ready_url is None or answers(part.ready_url, part.accept, part.headers):
            child.ready = child.ever_ready = True
            return
        if not child.ever_ready and now - child.started_at > part.start_seconds:
            raise PartFailed(f"{part.name} did not answer at {part.ready_url} within {part.start_seconds:.0f} s; see {child.log_path}")

    def _check_health(self, child: Child, now: float) -> None:
        """Kill a ready part whose health URL has failed for its `unhealthy_seconds`; `_exited` then restarts it."""
        part = child.part
        if part.health_url is None or (child.health_checked_at is not None and now - child.health_checked_at < HEALTH_EVERY_SECONDS):
            return
        child.health_checked_at = now
        if answers(part.health_url, (200,)):
            child.unhealthy_since, child.health_seen = None, True
            return
        # Not its fault while what it depends on is down, nor while it starts: a part may be ready (the runner's
        # deployments exist from its last life) before its health endpoint listens (after it described prefect.yaml).
        starting = not child.health_seen and now - child.started_at < part.start_seconds
        if starting or (part.health_gate_url and not answers(part.health_gate_url, (200,), part.headers)):
            child.unhealthy_since = None
            return
        child.unhealthy_since = now if child.unhealthy_since is None else child.unhealthy_since
        if now - child.unhealthy_since >= part.unhealthy_seconds:
            self.say(f"{part.name} failed its health check for {now - child.unhealthy_since:.0f} s at {part.health_url}; killing it")
            signal_group(child.process.pid, signal.SIGKILL)  # a stopped process takes no SIGINT
            child.process.wait()
            self._exited(child, now)

    def _needs_met(self, part: Part) -> bool:
        return all(self.children[name].ready or self.children[name].ever_ready for name in part.needs if name in self.children)

    def _stop_layers(self) -> list[list[Child]]:
        """Parts grouped by depth in the needs graph, deepest first: a part stops before what it needs."""
        depth: dict[str, int] = {}

        def depth_of(name: str) -> int:
            if name not in depth:
                needs = [n for n in self.children[name].part.needs if n in self.children]
                depth[name] = 1 + max((depth_of(n) for n in needs), default=-1)
            return depth[name]

        layers: dict[int, list[Child]] = {}
        for name, child in self.children.items():
            layers.setdefault(depth_of(name), []).append(child)
        return [layers[d] for d in sorted(layers, reverse=True)]

    def _wait_or_kill(self, child: Child, deadline: float) -> None:
        try:
            child.process.wait(timeout=max(0.1, deadline - self.clock()))
        except subprocess.TimeoutExpired:
            self.say(f"{child.part.name} did not stop within {STOP_GRACE_SECONDS} s; killing it")
            signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _niceness(increment: int) -> Callable[[], None] | None:
    if not increment:
        return None
    return lambda: os.nice(increment)


def answers(url: str, accept: tuple[int, ...], headers: Mapping[str, str] | None = None) -> bool:
    """Whether `url` answers with one of the `accept` statuses within a second."""
    try:
        status, _ = call_part(url, headers, timeout=1)
    except PartUnreachable:
        return False
    return status in accept


class _EveryStatus(urllib.request.HTTPErrorProcessor):
    """Every status is an answer for the caller to judge: no HTTPError for a 503, and a redirect is not followed (as httpx)."""

    def http_response(self, request, response):
        return response

    https_response = http_response


# The parts listen on this machine: never through a proxy the environment names.
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}), _EveryStatus())


def call_part(url: str, headers: Mapping[str, str] | None = None, payload: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """GET `url` (POST `payload` as JSON when given) and return the status and the body, whatever the status.

    The standard library's client, not httpx: the supervisor must stay small.

    Raises:
        PartUnreachable: when nothing answers within `timeout` seconds, naming the URL and the reason.
    """
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _LOOPBACK.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:  # URLError is an OSError: refused, reset, timed out
        raise PartUnreachable(f"{request.get_method()} {url}: {getattr(error, 'reason', None) or error}") from error


def tail(path: Path, lines: int = 3) -> str:
    """The last lines of a part's log, joined on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return f"no log at {path}"
    return " | ".join(text[-lines:]) or f"nothing in {path}"


def signal_group(pid: int, signum: int, group: bool = True) -> None:
    """Send `signum` to a process group (or one process); one already gone is fine."""
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
