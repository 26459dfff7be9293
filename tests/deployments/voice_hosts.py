"""Voice notes across the cluster's hosts (cluster.py): the receiver on host rx, `vigia up --only receiver`, spooling
audio on rx's own disk (a tmpfs in its mount namespace: no other host sees it, as on two machines); a transcriber on
each worker host, `python -m deployments.transcriber` from its checkout; the fake Evolution and Groq served to the bridge
from host net, standing for the Internet."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from blocks.evolution import EvolutionApi
from blocks.groq import GroqApi
from blocks.transcription import TranscriptionSettings
from blocks.vigia import VigiaSettings
from tasks.groq_gate import GroqLimits, ensure_groq_limits
from tests.fakes.evolution import FakeEvolution
from tests.fakes.groq import FakeGroq
from tests.fakes.server import free_port, serve_app
from tests.polling import wait_until

from .cluster import AUTH, VIGIA, WORKERS, Cluster, base_environment

INSTANCE = "ops-bot"
EVOLUTION_KEY = "evo-global-key-multi-host"
GROQ_KEY = "gsk_multi_host_test_key"
TOKEN = "webhook-token-multi-host-0123456789"
SPOKEN = "the truck leaves the depot at nine"
# Room enough that only the shared concurrency (4 for both transcribers together) paces the burst.
LIMITS = GroqLimits(max_concurrency=4, requests_per_minute=600, audio_seconds_per_hour=1_000_000)


@dataclass
class VoiceHosts:
    """The receiver as Evolution (this test) reaches it, the fakes, the audio every note carries, the transcribers by host."""

    receiver_url: str
    evolution: FakeEvolution
    groq: FakeGroq
    clip: bytes
    transcribers: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    receiver: subprocess.Popen
    spool: Path  # VIGIA_HOME/spool/voice-notes on rx's own disk

    def transcriber_log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def spooled_on_receiver(self) -> list[str]:
        """The audio files in the receiver's spool, as rx sees its own disk (in the receiver's mount namespace)."""
        argv = ["nsenter", "--target", str(self.receiver.pid), "--mount", "--", "find", str(self.spool), "-type", "f"]
        found = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return sorted(found.stdout.split())


def speech_clip(folder: Path) -> bytes:
    """Two seconds of tone encoded as WhatsApp sends voice notes (OGG/Opus, 16 kbit/s)."""
    target = folder / "note.ogg"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2"]
        + ["-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k", str(target)],
        check=True,
        timeout=60,
    )
    return target.read_bytes()


@contextlib.contextmanager
def voice_hosts(cluster: Cluster) -> Iterator[VoiceHosts]:
    """The receiver on rx, transcribers on w1 and w2, the fakes on net, the Blocks pointing at them; the receiver and
    the transcribers are stopped after (the hosts stay, for the tests that follow)."""
    clip = speech_clip(cluster.tmp)
    evolution = FakeEvolution(api_key=EVOLUTION_KEY, instances={INSTANCE: "open"})
    groq = FakeGroq(api_key=GROQ_KEY)
    groq.script_audio(clip, SPOKEN, duration=2.0)
    groq.delay_seconds = 0.3  # Whisper's own time: the notes overlap, as in a real burst
    net = cluster.lan.add_host("net")
    with serve_app(evolution.app) as evolution_local, serve_app(groq.app) as groq_local:
        offered = {
            name: cluster.lan.offer(net, port, int(local.rsplit(":", 1)[1]), cluster.tmp, cluster.tmp / "socat.log")
            for name, port, local in (("evolution", 8080, evolution_local), ("groq", 8000, groq_local))
        }
        save_blocks(cluster, f"http://{offered['evolution']}", f"http://{offered['groq']}")
        receiver, receiver_process = start_receiver_host(cluster)
        logs = {name: cluster.tmp / f"{name}-transcriber.log" for name in WORKERS}
        transcribers = {name: start_transcriber(cluster, name, logs[name]) for name in WORKERS}
        spool = cluster.tmp / "rx-home" / "spool" / "voice-notes"
        hosts = VoiceHosts(receiver, evolution, groq, clip, transcribers, logs, receiver_process, spool)
        try:
            wait_until(lambda: listening(f"{receiver}/health"), 120, f"the receiver on rx; see {cluster.tmp / 'rx.log'}", every=0.25)
            for name in WORKERS:
                wait_until(lambda name=name: "started: up to" in hosts.transcriber_log(name), 120, f"the transcriber on {name}", every=0.25)
            yield hosts
        finally:
            for process in [*transcribers.values(), receiver_process]:
                stop_gracefully(process)


def save_blocks(cluster: Cluster, evolution_url: str, groq_url: str) -> None:
    """What `vigia setup` on srv saves with EVOLUTION_* and GROQ_* set, the fakes' addresses on the bridge in them; the
    deployment transcribers create runs of (prefect.yaml's, when the first test deployed it); Groq's shared limits."""
    VigiaSettings(home=str(cluster.tmp / "srv-home"), database_url=cluster.store_url).save("default", overwrite=True)
    EvolutionApi(url=evolution_url, api_key=EVOLUTION_KEY, instance=INSTANCE, timeout_seconds=5).save("default", overwrite=True)
    GroqApi(api_key=GROQ_KEY, base_url=groq_url, timeout_seconds=10).save("default", overwrite=True)
    TranscriptionSettings(
        groq_max_concurrency=LIMITS.max_concurrency,
        groq_requests_per_minute=LIMITS.requests_per_minute,
        groq_audio_seconds_per_hour=LIMITS.audio_seconds_per_hour,
    ).save("default", overwrite=True)
    asyncio.run(_ensure_deployment_and_limits())


async def _ensure_deployment_and_limits() -> None:
    from flows.transcribe_voice_note import transcribe_voice_note

    async with get_client() as client:
        try:
            await client.read_deployment_by_name("transcribe-voice-note/on-webhook")
        except ObjectNotFound:
            await (await transcribe_voice_note.ato_deployment(name="on-webhook", tags=["vigia"])).apply()
        for definition in LIMITS.definitions():  # `vigia setup` (the first test) made them with the defaults
            with contextlib.suppress(ObjectNotFound):
                await client.delete_global_concurrency_limit_by_name(definition.name)
    await ensure_groq_limits(LIMITS)


def start_receiver_host(cluster: Cluster) -> tuple[str, subprocess.Popen]:
    """`vigia up --only receiver` on host rx, VIGIA_HOME on a tmpfs only rx sees; return its URL as this test reaches it
    and its process."""
    host = cluster.lan.add_host("rx")
    home = cluster.tmp / "rx-home"
    home.mkdir()
    env = base_environment(home)
    env.update(
        {
            "PREFECT_API_URL": f"http://{cluster.server.address}:4200/api",
            "VIGIA_DATABASE_URL": cluster.store_url,
            "VIGIA_BIND": "0.0.0.0",
            "VIGIA_DASHBOARD_PASSWORD": "x",
            "VIGIA_WEBHOOK_TOKEN": TOKEN,
        }
    )
    # `ip netns exec` gives the command a mount namespace of its own (a slave of this one): the tmpfs stays in it.
    private_disk = 'mount -t tmpfs rx-disk "$VIGIA_HOME" && cd "$VIGIA_HOME" && exec "$@"'
    argv = host.argv("sh", "-c", private_disk, "sh", VIGIA, "up", "--only", "receiver")
    process = cluster.lan.start(argv, cluster.tmp / "rx.log", env)
    return "http://" + cluster.lan.expose(host, 8787, free_port(), cluster.tmp, cluster.tmp / "socat.log"), process


def start_transcriber(cluster: Cluster, name: str, log: Path) -> subprocess.Popen:
    """`python -m deployments.transcriber` on worker host `name`, from its checkout, with what a transcriber host needs."""
    env = base_environment(cluster.tmp / f"{name}-home")
    env.update(
        {
            "PREFECT_API_URL": f"http://{cluster.server.address}:4200/api",
            "PREFECT_API_AUTH_STRING": AUTH,
            "VIGIA_DATABASE_URL": cluster.store_url,
            "VIGIA_GROQ_MAX_CONCURRENCY": str(LIMITS.max_concurrency),
            "VIGIA_GROQ_RPM": str(LIMITS.requests_per_minute),
            "VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR": str(LIMITS.audio_seconds_per_hour),
        }
    )
    host = cluster.lan.hosts[name]
    return cluster.lan.start(host.argv(sys.executable, "-m", "deployments.transcriber"), log, env, cwd=cluster.checkouts[name])


def listening(health_url: str) -> bool:
    """Whether the receiver answers: 200, or 503 while no health check has run yet (none runs in this test)."""
    try:
        return httpx.get(health_url, timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def stop_gracefully(process: subprocess.Popen, seconds: float = 40) -> None:
    """SIGTERM to the process's group (a transcriber lets its batches finish); SIGKILL when it outlives `seconds`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
