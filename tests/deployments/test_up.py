"""`vigia up` for real: it starts, runs a first check, answers /health, stops cleanly (one Ctrl-C under `uv run`), resumes."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from deployments.platform_state import PlatformState, read_state
from tests.deployments.processes import processes_tagged
from tests.fakes.server import free_port

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
NO_STATE = PlatformState(pid=0, marker="")


def wait_for(predicate, seconds: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"vigia up exited with {process.returncode} while waiting for {what}: {process.stderr.read()}")
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def status_of(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


class Platform:
    def __init__(self, home: Path):
        self.home = home
        self.tag = uuid.uuid4().hex
        self.prefect_port, self.webhook_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.health = f"http://127.0.0.1:{self.webhook_port}/health"

    def start(self, argv_prefix: tuple[str, ...] = (), cwd: Path | None = None, start_new_session: bool = False) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env.update({"VIGIA_HOME": str(self.home), "VIGIA_TEST_TAG": self.tag})
        return subprocess.Popen(
            [
                *argv_prefix,
                "vigia",
                "up",
                "--prefect-port",
                str(self.prefect_port),
                "--webhook-port",
                str(self.webhook_port),
                "--dashboard-port",
                str(self.dashboard_port),
            ],
            cwd=cwd or self.home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=start_new_session,
        )

    def deployment_paused(self) -> bool:
        response = httpx.get(f"{self.api}/deployments/name/health-check/every-5-min", timeout=5)
        return response.json()["paused"]

    def stop(self, process: subprocess.Popen) -> tuple[int, str]:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for pid in {process.pid, *processes_tagged(self.tag)}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # leave nothing running for the tests after this one
            _, stderr = process.communicate()
            raise AssertionError(f"vigia up did not stop within 90 s of SIGINT: {stderr}") from None
        return process.returncode, stderr


@pytest.fixture
def platform(tmp_path):
    """A platform under test; whatever happens, nothing it started outlives the test."""
    platform = Platform(tmp_path)
    yield platform
    for pid in processes_tagged(platform.tag):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_up_runs_a_first_health_check_by_itself_resumes_after_a_kill_and_stops_cleanly(platform, tmp_path):
    first = platform.start()
    try:
        wait_for(lambda: status_of(platform.health) in (200, 503), 240, "the receiver", first)
        # No one runs a check: `vigia up` starts the first one through the served runner.
        wait_for(lambda: status_of(platform.health) == 200, 180, "/health to turn 200 after the first check", first)
        assert platform.deployment_paused() is False
        state = read_state(tmp_path)
        assert (state.pid, state.prefect_api_url, state.receiver_url, state.dashboard_url) == (
            first.pid,
            platform.api,
            platform.health.removesuffix("/health"),
            platform.dashboard,
        )
        assert {"prefect-server", "receiver", "dashboard", "serve"} <= set(state.parts)
    finally:
        # Killed outright, it leaves its children running; the next `vigia up` stops them and goes on.
        first.kill()
        first.communicate()
    assert processes_tagged(platform.tag) != []

    second = platform.start()
    try:
        # The killed run's receiver still answers until the new run has taken VIGIA_HOME over.
        wait_for(lambda: f'"pid": {second.pid}' in read_text(tmp_path / "up.json"), 120, "the new run to take VIGIA_HOME", second)
        wait_for(lambda: status_of(platform.health) == 200, 240, "the resumed platform to report the stored check", second)
        # The receiver no longer waits for Prefect; the runner re-applies the deployments once Prefect answers.
        wait_for(lambda: status_of(f"{platform.api}/health") == 200, 240, "the Prefect server", second)
        assert platform.deployment_paused() is False
        assert httpx.get(platform.health, timeout=5).json()["targets"]["prefect"] == "UP"
        wait_for(lambda: status_of(f"{platform.dashboard}/_stcore/health") == 200, 120, "the dashboard", second)
    finally:
        code, stderr = platform.stop(second)
    assert code == 0, stderr
    assert "processes left running by a vigia up that was killed" in stderr
    assert "Traceback" not in stderr
    wait_for(lambda: processes_tagged(platform.tag) == [], 30, "every child process to exit")
    assert status_of(f"{platform.api}/health") is None
    assert status_of(f"{platform.dashboard}/_stcore/health") is None
    assert not (tmp_path / "up.json").exists()


@pytest.mark.timeout(400)
def test_one_ctrl_c_under_uv_run_stops_everything_even_with_the_second_sigint_uv_forwards(platform, tmp_path):
    # As `make up` starts it, in a process group of its own as a terminal's foreground job.
    process = platform.start(argv_prefix=(UV, "run"), cwd=ROOT, start_new_session=True)
    try:
        wait_for(
            lambda: (
                {"serve", "receiver", "dashboard", "prefect-server"} <= set((read_state(tmp_path) or NO_STATE).parts)
                and status_of(f"{platform.dashboard}/_stcore/health") == 200
            ),
            240,
            "the platform",
            process,
        )
        # `vigia up` became the lean supervisor in place: still uv's own child, the process uv forwards signals to.
        supervisor = read_state(tmp_path).pid
        assert Path(f"/proc/{supervisor}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"deployments.up"]
        assert Path(f"/proc/{supervisor}/stat").read_text().rpartition(")")[2].split()[1] == str(process.pid)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: every process of the foreground group gets it
        _, stderr = process.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr
    assert processes_tagged(platform.tag) == []  # nothing outlives `uv run`
    assert not (tmp_path / "up.json").exists()
    assert "vigia: stopping (SIGINT)…" in stderr and "Traceback" not in stderr
    stopped = [line.split()[1] for line in stderr.splitlines() if " stopped after " in line]
    assert stopped.index("serve") < stopped.index("prefect-server") and stopped.index("receiver") < stopped.index("prefect-server")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_ctrl_c_after_the_terminal_pipe_went_away_still_stops_everything(platform, tmp_path):
    # `make up | tee log` and a Ctrl-C: tee dies first, and every line vigia up writes after that fails.
    process = platform.start(start_new_session=True)
    try:
        wait_for(
            lambda: {"serve", "receiver", "dashboard", "prefect-server"} <= set((read_state(tmp_path) or NO_STATE).parts),
            240,
            "the platform",
            process,
        )
        process.stdout.close()
        process.stderr.close()
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0
    assert processes_tagged(platform.tag) == []
    assert not (tmp_path / "up.json").exists()


def test_up_with_a_broken_setting_stops_with_one_clear_line(tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_TIMEZONE": "Mars/Olympus"}
    result = subprocess.run(["vigia", "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        "vigia: VIGIA_TIMEZONE: invalid value (unknown time zone 'Mars/Olympus'); "
        "accepts an IANA time zone such as America/Sao_Paulo or UTC\n"
    )


def test_up_refuses_a_public_bind_without_authentication(tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "VIGIA_BIND": "0.0.0.0"}
    env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
    result = subprocess.run(["vigia", "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "VIGIA_BIND=0.0.0.0 is not loopback: set PREFECT_SERVER_API_AUTH_STRING and VIGIA_DASHBOARD_PASSWORD first" in result.stderr
