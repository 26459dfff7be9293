"""From one machine to several, for real: hosts are network namespaces on one bridge (tests/deployments/netns.py).
`vigia up --only server` runs Prefect on PostgreSQL on one host and `vigia worker` runs on two others, each from its
own checkout, all reaching the store across the bridge. Runs on pool vigia are taken by the remote workers; prefect.yaml,
deployed after `vigia setup`, runs a health check on a worker into the shared store; and when one worker's link is cut
mid-run, the next run completes on the other and the cut run is marked Crashed by the zombie sweep."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from prefect.client.orchestration import get_client

from tests.fakes.evolution_webhook import WebhookSender, voice_note_envelope
from tests.polling import wait_until

from .cluster import AUTH, ROOT, VIGIA, WORKERS, Cluster, read_json, running_cluster
from .netns import NamespacesUnavailable
from .test_worker import PULL_FROM_CHECKOUT, deploy_where_it_ran, run_state, start_run
from .voice_hosts import INSTANCE, TOKEN, voice_hosts

BURST = 20  # voice notes posted at once to the receiver


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster (cluster.py), one for the module: its start is ~45 s, so the test that cuts a worker off comes last."""
    try:
        with running_cluster(tmp_path_factory.mktemp("cluster")) as built:
            yield built
    except NamespacesUnavailable as error:
        pytest.skip(f"network namespaces are not permitted here: {error}")


def run_to_the_end(deployment_id: str, out: Path, seconds: float = 0.0, timeout: float = 120) -> tuple[str, float]:
    """Start a run and wait for it to complete; return where it ran and how long it took to start (creation to first line)."""
    created = time.time()
    run_id = asyncio.run(start_run(deployment_id, out, seconds))
    wait_until(lambda: asyncio.run(run_state(run_id)) == "COMPLETED", timeout, f"run {run_id} to complete", every=0.25)
    seen = json.loads(out.read_text())
    return seen["VIGIA_WORKER_HOST"], seen["started"] - created


def namespace_of(cluster: Cluster, host: str) -> str:
    return f"net:[{os.stat(f'/var/run/netns/{cluster.lan.hosts[host].namespace}').st_ino}]"


async def health_check_run(parameters: dict) -> str:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("health-check/every-5-min")
        return str((await client.create_flow_run_from_deployment(deployment.id, parameters=parameters)).id)


async def started_after(run_id: str) -> float:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
        return (run.start_time - run.created).total_seconds()


@pytest.mark.timeout(600)
def test_prefect_yaml_deployed_after_vigia_setup_runs_a_health_check_on_a_remote_worker_into_the_shared_store(cluster):
    setup = subprocess.run(
        cluster.server.argv(VIGIA, "setup"),
        env=cluster.server_env(),
        cwd=cluster.tmp / "srv-home",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert setup.returncode == 0, setup.stderr
    assert "work pool vigia: process, kept" in setup.stdout
    deploy_env = cluster.server_env(PREFECT_API_AUTH_STRING=AUTH)
    deploy_env.pop("VIGIA_CHECKOUT", None)
    deployed = subprocess.run(
        cluster.server.argv(sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"),
        env=deploy_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    run_id = asyncio.run(health_check_run({"confirm_after_seconds": 0}))
    wait_until(lambda: asyncio.run(run_state(run_id)) in ("COMPLETED", "FAILED", "CRASHED"), 240, "the health check to finish", every=0.25)
    assert asyncio.run(run_state(run_id)) == "COMPLETED"
    # Both workers may try to submit it (each polls every second): the one that lost logs "Aborted submission" of it.
    lines = {name: [line for line in cluster.worker_log(name).splitlines() if run_id in line] for name in WORKERS}
    ran_on = [name for name in WORKERS if lines[name] and not any("Aborted submission" in line for line in lines[name])]
    assert len(ran_on) == 1, lines
    with psycopg.connect(cluster.store_url_here) as connection:
        targets = {row[0] for row in connection.execute("SELECT DISTINCT target FROM probe_results")}
    assert {"prefect", "disk", "memory"} <= targets
    print(f"multi-host health check: on {ran_on[0]}, started {asyncio.run(started_after(run_id)):.2f} s after it was created")


async def deploy_limited_like_the_backup() -> str:
    """A where-it-ran deployment on pool vigia with the backup's own concurrency limit from prefect.yaml; return its id."""
    from prefect.client.schemas.objects import ConcurrencyOptions

    from deployments.definitions import read_definitions

    [backup] = [d for d in read_definitions() if d.entrypoint == "flows/backup.py:backup"]
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("where-it-ran")
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="limited-like-the-backup",
            work_pool_name="vigia",
            work_queue_name="default",
            entrypoint="tests/deployments/worker_flows.py:where_it_ran",
            pull_steps=PULL_FROM_CHECKOUT,
            tags=["vigia"],
            concurrency_limit=backup.concurrency_limit.limit,
            concurrency_options=ConcurrencyOptions(collision_strategy=backup.concurrency_limit.collision_strategy),
        )
    return str(deployment_id)


@pytest.mark.timeout(600)
def test_the_backups_limit_of_one_run_holds_across_two_workers(cluster, monkeypatch):
    monkeypatch.setenv("VIGIA_TIMEZONE", "UTC")  # prefect.yaml's {{ $VIGIA_TIMEZONE }}
    deployment_id = asyncio.run(deploy_limited_like_the_backup())
    first_out, second_out = cluster.tmp / "first.json", cluster.tmp / "second.json"
    first = asyncio.run(start_run(deployment_id, first_out, seconds=20))
    wait_until(lambda: read_json(first_out), 120, "the first run to start", every=0.25)
    second = asyncio.run(start_run(deployment_id, second_out, seconds=0))  # a second backup while one runs: two idle workers
    wait_until(
        lambda: asyncio.run(run_state(second)) in ("CANCELLED", "COMPLETED", "FAILED", "CRASHED"), 120, "the second run to end", every=0.25
    )
    wait_until(lambda: asyncio.run(run_state(first)) == "COMPLETED", 120, "the first run to complete", every=0.25)
    assert asyncio.run(run_state(second)) == "CANCELLED"  # CANCEL_NEW, as prefect.yaml says for the backup
    assert not second_out.exists()  # it never started, on either worker


@pytest.mark.timeout(600)
def test_a_burst_at_a_receiver_on_one_host_is_answered_once_each_by_transcribers_on_two_others(cluster):
    with voice_hosts(cluster) as hosts:
        envelopes = [voice_note_envelope(hosts.clip, instance=INSTANCE) for _ in range(BURST)]
        message_ids = [envelope["data"]["key"]["id"] for envelope in envelopes]
        for message_id in message_ids:  # what Evolution gives a host that does not have the receiver's spooled audio
            hosts.evolution.media[message_id] = (hosts.clip, "audio/ogg; codecs=opus")
        sender = WebhookSender(f"{hosts.receiver_url}/webhooks/evolution", headers={"X-Vigia-Token": TOKEN})
        started = time.monotonic()
        posted = [sender.deliver(envelope) for envelope in envelopes]
        spooled_after_posting = hosts.spooled_on_receiver()  # on rx's disk alone: the transcribers' hosts cannot read it
        wait_until(lambda: {row[2] for row in voice_note_rows(cluster)} == {"replied"}, 180, "every note to be replied", every=0.25)
        burst_seconds = time.monotonic() - started
        # Answered elsewhere, the audio leaves rx too: the receiver removes what no note names any more.
        wait_until(lambda: not hosts.spooled_on_receiver(), 30, "the receiver's spool on rx to be emptied", every=0.25)
    by_host = {name: hosts.transcriber_log(name) for name in WORKERS}  # a run's line comes when it ends: read once they stopped
    assert [[attempt.status for attempt in attempts] for attempts in posted] == [[202]] * BURST
    assert spooled_after_posting and not hosts.spool.exists()  # seen from outside rx, its spool is not there
    rows = voice_note_rows(cluster)
    assert sorted(row[1] for row in rows) == sorted(message_ids)  # nothing lost, nothing stored twice
    assert {(row[2], row[3]) for row in rows} == {("replied", 1)}
    assert Counter(sent.quoted_id for sent in hosts.evolution.sent) == Counter(message_ids)  # one reply each
    # The receiver's spool is on rx alone: each note's audio was fetched again from Evolution by the host that answered it.
    assert Counter(request["message"]["key"]["id"] for request in hosts.evolution.media_requests) == Counter(message_ids)
    answered = Counter(next(name for name, log in by_host.items() if row[4] in log) for row in rows)
    assert set(answered) == set(WORKERS), answered
    print(
        f"multi-host voice notes: {BURST} replied in {burst_seconds:.1f} s, by host {dict(sorted(answered.items()))}; "
        f"{len(spooled_after_posting)} audio files spooled on rx after posting, none left after"
    )


def voice_note_rows(cluster: Cluster) -> list[tuple]:
    with psycopg.connect(cluster.store_url_here) as connection:
        return connection.execute("SELECT id, message_id, status, attempts, flow_run_id FROM voice_notes ORDER BY id").fetchall()


@pytest.mark.timeout(600)
def test_remote_workers_take_the_runs_and_a_cut_workers_next_run_completes_on_the_other(cluster):
    deployment_id = asyncio.run(deploy_where_it_ran(queue="default"))
    # Remote pickup: each run is taken by one of the workers, from its own checkout, in its own namespace.
    pickups, hosts_seen = [], set()
    for number in range(4):
        out = cluster.tmp / f"run-{number}.json"
        host, pickup = run_to_the_end(deployment_id, out)
        seen = json.loads(out.read_text())
        assert (seen["cwd"], seen["netns"], seen["store_answers"]) == (str(cluster.checkouts[host]), namespace_of(cluster, host), True)
        pickups.append(pickup)
        hosts_seen.add(host)

    # A worker's link cut mid-run: the next run completes on the other worker.
    long_out = cluster.tmp / "long.json"
    long_run = asyncio.run(start_run(deployment_id, long_out, seconds=600))
    victim = wait_until(lambda: (read_json(long_out) or {}).get("VIGIA_WORKER_HOST"), 120, "the long run to start", every=0.25)
    cut_at = time.time()
    cluster.lan.hosts[victim].cut()
    survivor, _ = run_to_the_end(deployment_id, cluster.tmp / "after-cut.json")
    recovery = time.time() - cut_at
    # Its worker can tell Prefect nothing any more; the other worker's zombie sweep marks it Crashed (tasks/zombies.py).
    wait_until(lambda: asyncio.run(run_state(long_run)) == "CRASHED", 180, "the cut run to be marked Crashed", every=0.25)
    crash_marked = time.time() - cut_at

    timings = {"pickup_seconds": [round(p, 2) for p in pickups], "hosts": sorted(hosts_seen), "cut": victim}
    timings.update(recovery_seconds=round(recovery, 2), crash_marked_seconds=round(crash_marked, 1))
    print(f"multi-host timings: {json.dumps(timings)}")
    assert survivor != victim
    assert max(pickups) < 30
