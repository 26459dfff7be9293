"""The served runner exposes its health (Prefect's runner webserver) and `vigia up`'s supervisor uses it: a runner alive
but stopped (SIGSTOP: it polls no more) is killed and restarted like a dead part, unless Prefect itself is down.

A real Prefect runner polling the session's Prefect server, run as the `serve` part `vigia up` builds (its environment,
health URL and limits), with a bare runner in place of prefect.yaml's deployments; a clock the test can move ahead; then the same through a real `vigia up`."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import replace

import pytest

from deployments.parts import RUNNER_UNHEALTHY_SECONDS, Ports, build_parts, platform_urls
from deployments.platform_state import PlatformState, read_state
from deployments.settings import load_settings
from deployments.supervisor import Part, Supervisor
from tests.deployments.test_supervisor import SLEEPER, Clock, Recorder, step_until
from tests.deployments.test_up import platform, status_of, wait_for  # noqa: F401  the platform fixture
from tests.fakes.server import free_port

BARE_RUNNER = (sys.executable, "-c", "import asyncio; from prefect.runner import Runner; asyncio.run(Runner(limit=1).start())")


class MovableClock:
    """Real monotonic time, plus whatever the test moves it ahead by."""

    def __init__(self):
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


def served_runner_part(tmp_path, prefect_api: str, **changes):
    settings = load_settings({"VIGIA_HOME": str(tmp_path), "PREFECT_API_URL": prefect_api}, env_file=None)
    ports = Ports(runner=free_port())
    [serve] = [part for part in build_parts(settings, ports, platform_urls(settings, ports), None) if part.name == "serve"]
    return replace(serve, argv=BARE_RUNNER, needs=(), ready_url=None, **changes)


@pytest.fixture
def supervised(tmp_path, prefect_server):
    made = []

    def make(part):
        recorder, clock = Recorder(), MovableClock()
        env = {**os.environ, "PREFECT_API_URL": prefect_server}
        supervisor = Supervisor([part], env, tmp_path / "logs", recorder.say, recorder.alert, clock)
        made.append(supervisor)
        step_until(supervisor, lambda: supervisor.children["serve"].health_seen, 120, "the supervisor to see the runner healthy")
        return supervisor, recorder, clock

    yield make
    for supervisor in made:
        for pid in supervisor.pids().values():
            os.kill(pid, signal.SIGCONT)
        supervisor.stop()


@pytest.mark.timeout(300)
def test_a_stopped_runner_fails_its_health_check_and_is_restarted_like_a_dead_part(tmp_path, prefect_server, supervised):
    part = served_runner_part(tmp_path, prefect_server)
    assert part.env["PREFECT_RUNNER_SERVER_HOST"] == "127.0.0.1" and part.health_url.startswith("http://127.0.0.1:")
    supervisor, recorder, clock = supervised(part)
    stopped = supervisor.pids()["serve"]
    os.kill(stopped, signal.SIGSTOP)
    child = supervisor.children["serve"]
    step_until(supervisor, lambda: child.unhealthy_since is not None, 30, "the supervisor to see the runner unhealthy")
    assert supervisor.pids() == {"serve": stopped}  # not at once: a runner may miss a poll or two
    clock.ahead += RUNNER_UNHEALTHY_SECONDS + 5  # time passes with the runner still stopped
    step_until(supervisor, lambda: supervisor.pids().get("serve") not in (None, stopped), 60, "the runner to be restarted")
    failed = re.fullmatch(rf"serve failed its health check for (\d+) s at {re.escape(part.health_url)}; killing it", recorder.lines[0])
    assert failed and int(failed.group(1)) >= RUNNER_UNHEALTHY_SECONDS, recorder.lines
    assert recorder.lines[1].startswith("serve died (exit -9, 1 in 10 min); restarting in 1 s")  # counted like any death
    assert recorder.lines[2] == f"serve restarted (pid {supervisor.pids()['serve']})"
    assert not os.path.exists(f"/proc/{stopped}")
    step_until(supervisor, lambda: status_of(part.health_url) == 200, 120, "the restarted runner to be healthy")


@pytest.mark.timeout(300)
def test_a_runner_is_not_blamed_while_the_prefect_server_it_polls_is_down(tmp_path, prefect_server, supervised):
    part = served_runner_part(tmp_path, prefect_server, health_gate_url=f"http://127.0.0.1:{free_port()}/api/health")
    supervisor, recorder, clock = supervised(part)
    stopped = supervisor.pids()["serve"]
    os.kill(stopped, signal.SIGSTOP)  # its health fails, and so does the (closed) Prefect it depends on
    for _ in range(3):
        clock.ahead += RUNNER_UNHEALTHY_SECONDS
        supervisor.step()
    assert supervisor.pids() == {"serve": stopped}
    assert recorder.lines == []


def test_a_part_whose_health_endpoint_never_answered_is_given_its_start_time_first(tmp_path):
    recorder, clock = Recorder(), Clock()
    part = Part("serve", SLEEPER, health_url=f"http://127.0.0.1:{free_port()}/health", start_seconds=120, unhealthy_seconds=30)
    supervisor = Supervisor([part], os.environ, tmp_path / "logs", recorder.say, recorder.alert, clock)
    try:
        step_until(supervisor, lambda: supervisor.is_ready("serve"), what="the part")
        first = supervisor.pids()["serve"]
        for ahead in (0, 119, 125):  # still describing prefect.yaml, say: its endpoint listens later
            clock.now = 1000 + ahead
            supervisor.step()
        assert (supervisor.pids(), recorder.lines) == ({"serve": first}, [])
        clock.now += 30  # past its start time, and failing for 30 s since
        supervisor.step()
        assert recorder.lines[0] == f"serve failed its health check for 30 s at {part.health_url}; killing it"
        assert supervisor.pids() == {}
    finally:
        supervisor.stop()


def environ_of(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_vigia_up_restarts_its_runner_once_it_is_stopped_and_its_health_fails_for_30_s(platform, tmp_path):
    process = platform.start()
    try:
        serve = wait_for(lambda: (read_state(tmp_path) or PlatformState(0, "")).parts.get("serve"), 240, "the runner to start", process)
        health = f"http://127.0.0.1:{environ_of(serve)['PREFECT_RUNNER_SERVER_PORT']}/health"
        wait_for(lambda: status_of(health) == 200, 180, "the runner's health endpoint", process)
        os.kill(serve, signal.SIGSTOP)  # alive, polling nothing, answering nothing
        # 30 s failing, after up to its start time (120 s) if the supervisor had not yet seen this runner healthy itself.
        restarted = wait_for(lambda: read_state(tmp_path).parts.get("serve") not in (None, serve), 300, "the runner's restart", process)
        assert restarted and not os.path.exists(f"/proc/{serve}")
        wait_for(lambda: status_of(health) == 200, 180, "the restarted runner's health endpoint", process)
    finally:
        code, stderr = platform.stop(process)
    assert code == 0, stderr
    assert re.search(rf"vigia: serve failed its health check for 3\d s at {re.escape(health)}; killing it\n", stderr), stderr
    assert "vigia: serve died (exit -9, 1 in 10 min); restarting in 1 s" in stderr
