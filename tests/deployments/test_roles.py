"""Roles: `vigia up --only …` runs just the parts named on this host; an unknown name is one line and exit 2."""

import os
import subprocess
import time

import pytest

from deployments.parts import Ports, platform_urls, prefect_server_part
from deployments.platform_state import read_state
from deployments.settings import load_settings

from .processes import processes_tagged
from .test_up import NO_STATE, Platform, platform, status_of, wait_for  # noqa: F401


def start_only(platform: Platform, only: str, **environ: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"VIGIA_HOME": str(platform.home), "VIGIA_TEST_TAG": platform.tag, **environ})
    ports = ("--prefect-port", str(platform.prefect_port), "--webhook-port", str(platform.webhook_port))
    argv = ["vigia", "up", *ports, "--dashboard-port", str(platform.dashboard_port), "--only", only]
    return subprocess.Popen(argv, cwd=platform.home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(400)
def test_up_only_server_and_dashboard_runs_just_those_parts_and_stops_cleanly(platform, tmp_path):
    process = start_only(platform, "server,dashboard")
    try:
        wait_for(
            lambda: (
                status_of(f"{platform.api}/health") == 200
                and status_of(f"{platform.dashboard}/_stcore/health") == 200
                and set((read_state(tmp_path) or NO_STATE).parts) == {"prefect-server", "dashboard"}
            ),
            240,
            "the Prefect server and the dashboard",
            process,
        )
        time.sleep(3)  # a few supervisor steps more: nothing else starts
        assert set(read_state(tmp_path).parts) == {"prefect-server", "dashboard"}
        assert status_of(platform.health) is None
    finally:
        code, stderr = platform.stop(process)
    assert code == 0, stderr
    stopped = sorted(line.split()[1] for line in stderr.splitlines() if " stopped after " in line)
    assert stopped == ["dashboard", "prefect-server"]
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == ["dashboard.log", "prefect-server.log"]
    assert not (tmp_path / "vigia.db").exists()  # no receiver, so no store migration on this host
    assert processes_tagged(platform.tag) == []


def test_up_only_with_an_unknown_part_names_it_and_the_valid_ones_in_one_line(tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path)}
    result = subprocess.run(["vigia", "up", "--only", "server,worker"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "vigia: --only: unknown part 'worker'; valid: server, receiver, dashboard, runner, transcriber\n"
    assert not (tmp_path / "up.json").exists()


def test_the_prefect_server_listens_on_vigia_bind_so_workers_on_other_hosts_reach_it():
    local = load_settings({}, env_file=None)
    assert prefect_server_part(local, Ports(), platform_urls(local, Ports()), None).argv[3:5] == ("--host", "127.0.0.1")
    shared = load_settings(
        {"VIGIA_BIND": "0.0.0.0", "PREFECT_SERVER_API_AUTH_STRING": "vigia:s3cret", "VIGIA_DASHBOARD_PASSWORD": "x"}, env_file=None
    )
    urls = platform_urls(shared, Ports())
    assert prefect_server_part(shared, Ports(), urls, None).argv[3:5] == ("--host", "0.0.0.0")
    assert urls.prefect_api == "http://127.0.0.1:4200/api"  # how this host reaches it
    named = load_settings({"VIGIA_BIND": "10.7.0.1", "PREFECT_SERVER_API_AUTH_STRING": "vigia:s3cret"}, env_file=None)
    assert platform_urls(named, Ports()).prefect_api == "http://10.7.0.1:4200/api"


@pytest.mark.timeout(400)
def test_up_only_receiver_and_transcriber_uses_the_prefect_server_named_and_runs_a_transcriber_of_its_own(
    platform, tmp_path, prefect_server
):
    process = start_only(platform, "receiver,transcriber", PREFECT_API_URL=prefect_server)
    try:
        wait_for(
            lambda: (
                status_of(platform.health) in (200, 503) and set((read_state(tmp_path) or NO_STATE).parts) == {"receiver", "transcriber"}
            ),
            240,
            "the receiver and the transcriber",
            process,
        )
        assert read_state(tmp_path).prefect_api_url == prefect_server
        time.sleep(3)
        assert set(read_state(tmp_path).parts) == {"receiver", "transcriber"}  # the transcriber stays up
    finally:
        code, stderr = platform.stop(process)
    assert code == 0, stderr
    assert sorted(line.split()[1] for line in stderr.splitlines() if " stopped after " in line) == ["receiver", "transcriber"]
    assert (tmp_path / "vigia.db").exists()  # the receiver's store, migrated here
    assert not (tmp_path / "prefect").exists() or not (tmp_path / "prefect" / "prefect.db").exists()
    assert "Traceback" not in (tmp_path / "logs" / "transcriber.log").read_text()


def test_up_only_server_on_a_host_that_names_another_prefect_server_says_so_in_one_line(tmp_path):
    env = {**os.environ, "VIGIA_HOME": str(tmp_path), "PREFECT_API_URL": "http://10.0.0.9:4200/api"}
    result = subprocess.run(["vigia", "up", "--only", "server"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert (
        result.stderr
        == "vigia: --only server: PREFECT_API_URL names another Prefect server (http://10.0.0.9:4200/api); unset it on this host\n"
    )
