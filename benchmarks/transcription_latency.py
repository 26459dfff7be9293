"""Benchmark webhook → reply latency of voice-note transcription on a real Prefect server.

The receiver runs as `vigia up` runs it (uvicorn, `create_app_from_environment`, its own process,
executing each `transcribe-voice-note/on-webhook` run in-process). The fake Evolution (sendText)
and the fake Groq (answering every transcription after a fixed 1.0 s) run here on 127.0.0.1. A
webhook sender posts 60 voice notes (real espeak-ng speech, OGG/Opus, inline base64) at one per
second, then a burst of 20 at once. The clock runs from the webhook POST to the moment the fake
Evolution accepts the quoted reply.

    uv run python benchmarks/transcription_latency.py [--prefect-sqlite]

The last line is `transcription: p95 X.XX s webhook→reply (Groq floor 1.00 s, overhead p95 Y.YY s), burst p95 Z.ZZ s, lost N, double N`.
Goals: overhead p95 ≤ 2 s at one per second; the burst all replied with p95 ≤ 8 s; 0 lost; 0 double.
The Prefect server runs as in production (DESIGN §3), on a PostgreSQL database of its own;
`--prefect-sqlite` runs it on SQLite instead, as `vigia up` embeds it, to compare.
Knobs for diagnosis: BENCH_STEADY_NOTES, BENCH_BURST_NOTES, BENCH_KEEP=1 (keep the store and
receiver log), BENCH_DEBUG=1 (per-run Prefect timings and the CPU each process used).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hermetic import PREFECT_HOME  # noqa: E402,I001 — first: sets up the environment before Prefect loads

import json  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from contextlib import ExitStack  # noqa: E402

import httpx  # noqa: E402
import psycopg  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from tests.fakes.evolution import FakeEvolution  # noqa: E402
from tests.fakes.evolution_webhook import voice_note_envelope  # noqa: E402
from tests.fakes.groq import FakeGroq  # noqa: E402
from tests.fakes.server import free_port, serve_app  # noqa: E402

STEADY_NOTES = int(os.environ.get("BENCH_STEADY_NOTES", 60))
BURST_NOTES = int(os.environ.get("BENCH_BURST_NOTES", 20))
GROQ_FLOOR_SECONDS = 1.0
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFECT_DATABASE = "vigia_bench_prefect"
REPLY_TIMEOUT_SECONDS = 60.0
TOKEN = "benchmark-webhook-token-0123456789"
EVOLUTION_KEY = "evo-bench-key"
GROQ_KEY = "gsk_bench_key"
INSTANCE = "ops-bot"
RECEIVER_PIDS: list[int] = []


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StampedEvolution:
    """ASGI wrapper around the fake Evolution: stamps time.monotonic() per quoted message id when sendText answers 201."""

    def __init__(self, fake: FakeEvolution):
        self.app: ASGIApp = fake.app
        self.replies: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/message/sendText/"):
            await self.app(scope, receive, send)
            return
        body = bytearray()

        async def recording_receive() -> Message:
            message = await receive()
            body.extend(message.get("body", b""))
            return message

        async def stamped_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 201:
                quoted = json.loads(body).get("quoted", {}).get("key", {}).get("id", "?")
                with self.lock:
                    self.replies.setdefault(quoted, []).append(time.monotonic())
            await send(message)

        await self.app(scope, recording_receive, stamped_send)


def make_speech(folder: Path) -> bytes:
    """Three seconds of espeak-ng speech, encoded as WhatsApp sends voice notes (OGG/Opus 16 kbit/s)."""
    wav, ogg = folder / "speech.wav", folder / "speech.ogg"
    subprocess.run(["espeak-ng", "-v", "pt", "-w", str(wav), "a entrega está confirmada para amanhã às dez horas"], check=True, timeout=60)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k", str(ogg)],
                   check=True, timeout=60)
    return ogg.read_bytes()


def save_blocks(home: Path, store_url: str, evolution_url: str, groq_url: str) -> None:
    from blocks.alert_routes import AlertRoutes
    from blocks.evolution import EvolutionApi
    from blocks.groq import GroqApi
    from blocks.transcription import TranscriptionSettings
    from blocks.vigia import VigiaSettings
    from flows.transcribe_voice_note import transcribe_voice_note

    VigiaSettings(home=str(home), database_url=store_url).save("default", overwrite=True)
    EvolutionApi(url=evolution_url, api_key=EVOLUTION_KEY, instance=INSTANCE).save("default", overwrite=True)
    GroqApi(api_key=GROQ_KEY, base_url=groq_url, timeout_seconds=10).save("default", overwrite=True)
    TranscriptionSettings().save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    transcribe_voice_note.to_deployment(name="on-webhook", tags=["vigia"]).apply()


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_prefect_server(stack: ExitStack, database: str) -> str:
    """Start `prefect server start` as `vigia up` does, on SQLite or on a PostgreSQL database of its own; return its API URL."""
    port = free_port()
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    if database == "postgres":
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {PREFECT_DATABASE} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {PREFECT_DATABASE}")
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PREFECT_DATABASE}"
    else:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{PREFECT_HOME}/prefect.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )

    def stop() -> None:
        stop_process(process)
        if database == "postgres":
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {PREFECT_DATABASE} WITH (FORCE)")

    stack.callback(stop)
    api_url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return api_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the Prefect server did not start within 120 s")


def start_receiver(stack: ExitStack, home: Path, store_url: str, api_url: str) -> str:
    port = free_port()
    env = {**os.environ, "PREFECT_API_URL": api_url, "VIGIA_HOME": str(home), "VIGIA_DATABASE_URL": store_url,
           "VIGIA_WEBHOOK_TOKEN": TOKEN, "PREFECT_LOGGING_EXTRA_LOGGERS": "clients,store,deployments"}
    log = open(home / "receiver.log", "wb")
    stack.callback(log.close)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "deployments.webhook:create_app_from_environment", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )

    stack.callback(stop_process, process)
    RECEIVER_PIDS.append(process.pid)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                return url
        except httpx.HTTPError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise SystemExit(f"the receiver exited: {(home / 'receiver.log').read_text()[-2000:]}")
    raise SystemExit("the receiver did not answer within 60 s")


def post_note(url: str, speech: bytes, sent: dict, acks: list) -> None:
    envelope = voice_note_envelope(speech, instance=INSTANCE, seconds=3)
    message_id = envelope["data"]["key"]["id"]
    started = time.monotonic()
    response = httpx.post(f"{url}/webhooks/evolution", json=envelope, headers={"X-Vigia-Token": TOKEN}, timeout=30)
    acks.append(time.monotonic() - started)
    if response.status_code != 202:
        raise SystemExit(f"the receiver answered {response.status_code}: {response.text}")
    sent[message_id] = started


def wait_for_replies(evolution: StampedEvolution, sent: dict) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(message_id not in evolution.replies for message_id in sent):
        time.sleep(0.1)


def latencies(evolution: StampedEvolution, sent: dict) -> list[float]:
    return [evolution.replies[m][0] - started for m, started in sent.items() if m in evolution.replies]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else (values[0] if values else float("nan"))


def debug_runs() -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=200)
        for run in sorted(runs, key=lambda r: r.created)[-22:]:
            print(run.created.strftime("%S.%f")[:6], "start", (run.start_time - run.created).total_seconds() if run.start_time else None,
                  "run", run.total_run_time.total_seconds(), "end", (run.end_time - run.created).total_seconds() if run.end_time else None)

    asyncio.run(read())


def main() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from store.database import migrate

    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y espeak-ng ffmpeg")
    home = Path(tempfile.mkdtemp(prefix="vigia-bench-transcription-"))
    store_url = f"sqlite:///{home / 'vigia.db'}"
    migrate(store_url)
    speech = make_speech(home)
    fake_evolution = FakeEvolution(api_key=EVOLUTION_KEY, instances={INSTANCE: "open"})
    stamped = StampedEvolution(fake_evolution)
    fake_groq = FakeGroq(api_key=GROQ_KEY, delay_seconds=GROQ_FLOOR_SECONDS, requests_per_day=100_000)
    with ExitStack() as stack:
        if os.environ.get("BENCH_KEEP"):
            print(f"keeping {home} (store, receiver.log)")
        else:
            stack.callback(shutil.rmtree, home, True)
        stack.callback(shutil.rmtree, PREFECT_HOME, True)
        database = "sqlite" if "--prefect-sqlite" in sys.argv else "postgres"
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: start_prefect_server(stack, database)}))
        print(f"Prefect server on {database}")
        evolution_url = stack.enter_context(serve_app(stamped))
        groq_url = stack.enter_context(serve_app(fake_groq.app))
        save_blocks(home, store_url, evolution_url, groq_url)
        receiver = start_receiver(stack, home, store_url, PREFECT_API_URL.value())
        warm_up: dict[str, float] = {}
        post_note(receiver, speech, warm_up, [])  # the first run pays for imports and Block registration
        wait_for_replies(stamped, warm_up)
        steady: dict[str, float] = {}
        acks: list[float] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(STEADY_NOTES):
                due = time.monotonic() + 1.0
                pool.submit(post_note, receiver, speech, steady, acks)
                time.sleep(max(due - time.monotonic(), 0))
        wait_for_replies(stamped, steady)
        burst: dict[str, float] = {}
        with ThreadPoolExecutor(max_workers=BURST_NOTES) as pool:
            for _ in range(BURST_NOTES):
                pool.submit(post_note, receiver, speech, burst, acks)
        wait_for_replies(stamped, burst)
        if os.environ.get("BENCH_DEBUG"):
            debug_runs()
            children = [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
            print(f"receiver CPU {cpu_seconds(RECEIVER_PIDS[0]):.1f} s, this process {time.process_time():.1f} s, "
                  f"children {[(pid, round(cpu_seconds(pid), 1)) for pid in children]}")
        steady_latency, burst_latency = latencies(stamped, steady), latencies(stamped, burst)
        every = {**steady, **burst}
        lost = sum(1 for message_id in every if message_id not in stamped.replies)
        double = sum(1 for message_id in every if len(stamped.replies.get(message_id, [])) > 1)
    print(f"steady: median {statistics.median(steady_latency):.2f} s, max {max(steady_latency):.2f} s; "
          f"burst: median {statistics.median(burst_latency):.2f} s, max {max(burst_latency):.2f} s; "
          f"receiver answers: p95 {p95(acks) * 1000:.0f} ms, max {max(acks) * 1000:.0f} ms")
    steady_p95 = p95(steady_latency)
    print(f"transcription: p95 {steady_p95:.2f} s webhook→reply (Groq floor {GROQ_FLOOR_SECONDS:.2f} s, overhead p95 "
          f"{steady_p95 - GROQ_FLOOR_SECONDS:.2f} s), burst p95 {p95(burst_latency):.2f} s, lost {lost}, double {double}")


if __name__ == "__main__":
    main()
