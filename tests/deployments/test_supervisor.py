"""The supervisor `vigia up` runs its parts with: start by needs, restart with backoff, one alert for a part that
keeps dying, a failed start named with its log, a stop in reverse order. Real child processes, a hand-moved clock."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from deployments.supervisor import Part, PartFailed, Supervisor

SLEEPER = (sys.executable, "-c", "import time; print('serving', flush=True); time.sleep(120)")


class Clock:
    """A monotonic clock the test moves by hand (the children run in real time)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self):
        self.lines: list[str] = []
        self.alerts: list[tuple[str, int]] = []

    def say(self, line: str) -> None:
        self.lines.append(line)

    def alert(self, child) -> None:
        self.alerts.append((child.part.name, len(child.deaths)))


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def make_supervisor(tmp_path, recorder):
    made = []

    def make(parts: list[Part], clock=None) -> Supervisor:
        supervisor = Supervisor(parts, os.environ, tmp_path / "logs", recorder.say, recorder.alert, clock or Clock())
        made.append(supervisor)
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop()


def step_until(supervisor: Supervisor, predicate, seconds: float = 30, what: str = "the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        supervisor.step()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def kill_and_notice(supervisor: Supervisor, name: str) -> int:
    child = supervisor.children[name]
    pid = child.process.pid
    os.kill(pid, signal.SIGKILL)
    step_until(supervisor, lambda: child.process is None, what=f"{name}'s death to be noticed")
    return pid


def test_a_part_that_dies_is_restarted_after_its_backoff(make_supervisor, recorder):
    clock = Clock()
    supervisor = make_supervisor([Part("runner", SLEEPER)], clock)
    step_until(supervisor, lambda: supervisor.is_ready("runner"), what="the runner")
    first = kill_and_notice(supervisor, "runner")
    assert recorder.lines[-1].startswith("runner died (exit -9, 1 in 10 min); restarting in 1 s")

    supervisor.step()
    assert supervisor.children["runner"].process is None  # not before its backoff
    clock.now += 1
    step_until(supervisor, lambda: supervisor.is_ready("runner"), what="the restarted runner")
    second = supervisor.pids()["runner"]
    assert second != first
    assert recorder.lines[-1] == f"runner restarted (pid {second})"
    assert recorder.alerts == []


def test_a_part_that_keeps_dying_waits_longer_each_time_and_raises_one_critical_alert(make_supervisor, recorder):
    clock = Clock()
    supervisor = make_supervisor([Part("prefect-server", SLEEPER)], clock)
    step_until(supervisor, lambda: supervisor.is_ready("prefect-server"), what="the server")
    waits = []
    for _ in range(5):
        kill_and_notice(supervisor, "prefect-server")
        waits.append(recorder.lines[-1].split("restarting in ")[1].split(" s")[0])
        clock.now += 60
        step_until(supervisor, lambda: supervisor.is_ready("prefect-server"), what="the restarted server")
    assert waits == ["1", "2", "4", "8", "15"]
    assert recorder.alerts == [("prefect-server", 4)]  # once for the streak, on the fourth death

    clock.now += 601  # up for ten minutes: the streak is over
    supervisor.step()
    kill_and_notice(supervisor, "prefect-server")
    assert "(exit -9, 1 in 10 min); restarting in 1 s" in recorder.lines[-1]


def test_a_part_starts_once_what_it_needs_is_ready_and_stops_before_it(make_supervisor, recorder, tmp_path):
    marker = tmp_path / "migrated"
    migrate = Part(
        "migrate", (sys.executable, "-c", f"import time, pathlib; time.sleep(0.5); pathlib.Path({str(marker)!r}).touch()"), one_shot=True
    )
    supervisor = make_supervisor(
        [
            Part("receiver", SLEEPER, needs=("migrate",)),
            migrate,
            Part("serve", SLEEPER, needs=("receiver",)),
        ]
    )
    supervisor.step()
    assert set(supervisor.pids()) == {"migrate"}
    step_until(supervisor, lambda: "receiver" in supervisor.pids(), what="the receiver to start")
    assert marker.exists()  # only after the migration finished
    step_until(supervisor, lambda: supervisor.is_ready("serve"), what="serve")

    supervisor.stop()
    stopped = [line.split(" stopped")[0] for line in recorder.lines if " stopped after " in line]
    assert stopped == ["serve", "receiver"]
    assert supervisor.pids() == {}


def test_a_failed_one_shot_fails_the_start(make_supervisor):
    supervisor = make_supervisor([Part("setup", (sys.executable, "-c", "raise SystemExit(3)"), one_shot=True)])
    with pytest.raises(PartFailed, match=r"^setup failed \(exit 3\); see the lines above$"):
        step_until(supervisor, lambda: False, what="setup to fail")


def test_a_service_that_dies_before_it_was_ever_ready_is_tried_three_times_then_fails_the_start_with_its_log(make_supervisor, tmp_path):
    argv = (sys.executable, "-c", "import sys; print('port 8787 is already in use', flush=True); sys.exit(1)")
    supervisor = make_supervisor([Part("receiver", argv, ready_url="http://127.0.0.1:9/health")], clock=time.monotonic)
    with pytest.raises(PartFailed, match=r"^receiver exited with 1 while starting \(3 tries\): port 8787 is already in use"):
        step_until(supervisor, lambda: False, what="the receiver to fail")
    assert (tmp_path / "logs" / "receiver.log").read_text() == "port 8787 is already in use\n" * 3
