"""Benchmark webhook → reply latency of voice-note transcription through the queue, on a real Prefect server.

The receiver runs as `vigia up` runs it (uvicorn, `create_app_from_environment`, its own process; it
only stores), and one or two transcribers run as `python -m deployments.transcriber`, each its own
process. The fake Evolution (sendText) and the fake Groq (answering every transcription after a fixed
1.0 s) run here on 127.0.0.1. For one transcriber and then two, a webhook sender posts voice notes
(real espeak-ng speech, OGG/Opus, inline base64) at one per second, then a burst of 20 at once, then
a burst of 100. The clock runs from the webhook POST to the moment the fake Evolution accepts the reply.

    uv run python benchmarks/transcription_latency.py [--prefect-postgres]

Default: the embedded set-up `make up` runs (Prefect on SQLite under VIGIA_HOME, the store on SQLite,
transcribers polling). `--prefect-postgres`: production (Prefect and the store on PostgreSQL,
transcribers woken by NOTIFY). The last line is
`transcription: p95 X s webhook→reply (Groq floor 1.00 s, overhead p95 Y s), burst20 p95 A s, burst100 p95 B s, receiver p95 C ms, lost 0, double 0`,
over both transcriber counts. Goals on the default: overhead p95 ≤ 1 s, burst20 p95 ≤ 4 s,
burst100 p95 ≤ 12 s, receiver p95 ≤ 50 ms, 0 lost, 0 double.
Knobs: BENCH_STEADY_NOTES (default 30), BENCH_TRANSCRIBERS (default "1,2"), BENCH_GROQ_CONCURRENCY
(default 16: the fake Groq's room, shared by the transcribers), BENCH_KEEP=1 (keep the store and logs),
BENCH_STOCK_PREFECT=1 (plain `prefect server start` instead of `python -m deployments.prefect_server`).
"""

import json  # noqa: E402
import os
import shutil
import statistics  # noqa: E402
import subprocess
import sys
import tempfile
import threading  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path

import httpx  # noqa: E402
import psycopg  # noqa: E402
from hermetic import PREFECT_HOME  # noqa: E402,I001 — first: sets up the environment before Prefect loads
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402
from webhook_sender import post_webhooks  # noqa: E402

from deployments.parts import UNUSED_SERVER_SERVICES  # noqa: E402
from tests.fakes.evolution import FakeEvolution  # noqa: E402
from tests.fakes.evolution_webhook import voice_note_envelope  # noqa: E402
from tests.fakes.groq import FakeGroq  # noqa: E402
from tests.fakes.server import free_port, serve_app  # noqa: E402

STEADY_NOTES = int(os.environ.get("BENCH_STEADY_NOTES", 30))
BURSTS = (20, 100)
TRANSCRIBERS = tuple(int(n) for n in os.environ.get("BENCH_TRANSCRIBERS", "1,2").split(","))
GROQ_CONCURRENCY = int(os.environ.get("BENCH_GROQ_CONCURRENCY", 16))
GROQ_FLOOR_SECONDS = 1.0
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFECT_DATABASE = "vigia_bench_prefect"
STORE_DATABASE = "vigia_bench_store"
REPLY_TIMEOUT_SECONDS = 60.0
# The Prefect server as `vigia up` runs it; BENCH_STOCK_PREFECT=1 runs plain `prefect server start` instead, for comparison.
SERVER_MODULE = ("prefect", "server", "start") if os.environ.get("BENCH_STOCK_PREFECT") else ("deployments.prefect_server",)
TOKEN = "benchmark-webhook-token-0123456789"
EVOLUTION_KEY = "evo-bench-key"
GROQ_KEY = "gsk_bench_key"
INSTANCE = "ops-bot"
ROOMY = {"groq_max_concurrency": GROQ_CONCURRENCY, "groq_requests_per_minute": 100_000, "groq_audio_seconds_per_hour": 100_000_000}


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
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "16k", str(ogg)],
        check=True,
        timeout=60,
    )
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
    TranscriptionSettings(**ROOMY).save("default", overwrite=True)
    AlertRoutes().save("default", overwrite=True)
    transcribe_voice_note.to_deployment(name="on-webhook", tags=["vigia"]).apply()


def stop_process(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_prefect_server(stack: ExitStack, database: str, home: Path) -> str:
    """Start `prefect server start` as `vigia up` does, on SQLite or on a PostgreSQL database of its own; return its API URL."""
    port = free_port()
    env = {**os.environ, **UNUSED_SERVER_SERVICES, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    if database == "postgres":
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {PREFECT_DATABASE} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {PREFECT_DATABASE}")
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PREFECT_DATABASE}"
    else:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{home}/prefect.db"
    process = subprocess.Popen(
        [sys.executable, "-m", *SERVER_MODULE, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
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
    env = child_env(home, store_url, api_url)
    log = open(home / "receiver.log", "wb")
    stack.callback(log.close)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "deployments.webhook:create_app_from_environment",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            os.environ.get("BENCH_RECEIVER_LOG_LEVEL", "warning"),
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    stack.callback(stop_process, process)
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


def wait_for_replies(evolution: StampedEvolution, sent: dict) -> None:
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and any(message_id not in evolution.replies for message_id in sent):
        time.sleep(0.1)


def latencies(evolution: StampedEvolution, sent: dict) -> list[float]:
    return [evolution.replies[m][0] - started for m, started in sent.items() if m in evolution.replies]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else (values[0] if values else float("nan"))


def child_env(home: Path, store_url: str, api_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "VIGIA_HOME": str(home),
        "VIGIA_DATABASE_URL": store_url,
        "VIGIA_WEBHOOK_TOKEN": TOKEN,
        "PREFECT_LOGGING_EXTRA_LOGGERS": "clients,store,deployments,tasks",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        "VIGIA_GROQ_MAX_CONCURRENCY": str(GROQ_CONCURRENCY),
        "VIGIA_GROQ_RPM": "100000",
        "VIGIA_GROQ_AUDIO_SECONDS_PER_HOUR": "100000000",
    }


def start_transcriber(stack: ExitStack, home: Path, store_url: str, api_url: str, number: int) -> subprocess.Popen:
    log = open(home / f"transcriber-{number}.log", "ab")
    stack.callback(log.close)
    process = subprocess.Popen(
        [sys.executable, "-m", "deployments.transcriber"],
        cwd=home,
        env=child_env(home, store_url, api_url),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    stack.callback(stop_process, process)
    return process


def post_all(url: str, speech: bytes, count: int, every_seconds: float, acks: list) -> dict[str, float]:
    """Post `count` notes, one per `every_seconds` (0: all at once), from webhook_sender.py; return their send times.

    Like Evolution's HTTP agent, the sender keeps 32 connections alive and runs in a process of its own:
    32 httpx threads in this process (which also serves the fake Groq and Evolution) measured their
    own time under the GIL as the receiver's.
    """
    notes = []
    for _ in range(count):
        envelope = voice_note_envelope(speech, instance=INSTANCE, seconds=3)
        notes.append([envelope["data"]["key"]["id"], json.dumps(envelope)])
    sent: dict[str, float] = {}
    for message_id, started, ack_seconds, status in post_webhooks(url, TOKEN, notes, every_seconds):
        if status != 202:
            raise SystemExit(f"the receiver answered {status} to voice note {message_id}")
        sent[message_id] = started
        acks.append(ack_seconds)
    return sent


def run_phases(receiver: str, stamped: StampedEvolution, speech: bytes, acks: dict[str, list]) -> dict[str, dict[str, float]]:
    """Steady one per second, then each burst; each phase waits for its replies before the next; the receiver's acks by phase."""
    phases = {}
    for name, count, every in (("steady", STEADY_NOTES, 1.0), *((f"burst{size}", size, 0.0) for size in BURSTS)):
        phases[name] = post_all(receiver, speech, count, every, acks.setdefault(name, []))
        wait_for_replies(stamped, phases[name])
    return phases


def store_url_for(database: str, home: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{home / 'vigia.db'}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {STORE_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {STORE_DATABASE}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{STORE_DATABASE}"


def summarise(label: str, stamped: StampedEvolution, phases: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    found = {name: latencies(stamped, sent) for name, sent in phases.items()}
    print(
        f"{label}: "
        + "; ".join(
            f"{name} p95 {p95(values):.2f} s (median {statistics.median(values):.2f}, max {max(values):.2f}, "
            f"{len(values)}/{len(phases[name])} replied)"
            for name, values in found.items()
            if values
        )
    )
    return found


def main() -> None:
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y espeak-ng ffmpeg")
    database = "postgres" if "--prefect-postgres" in sys.argv else "sqlite"
    print(
        f"Prefect and store on {database}; fake Groq {GROQ_FLOOR_SECONDS:.2f} s per note, Groq limits: {GROQ_CONCURRENCY} at once, "
        "100000 per minute (the fake's room, set through VIGIA_GROQ_*)"
    )
    every_phase: dict[str, list[float]] = {}
    acks: dict[str, list[float]] = {}
    lost = double = 0
    for transcribers in TRANSCRIBERS:
        found, run_lost, run_double = measure(database, transcribers, acks)
        for name, values in found.items():
            every_phase.setdefault(name, []).extend(values)
        lost, double = lost + run_lost, double + run_double
    steady_p95 = p95(every_phase["steady"])
    print("receiver p95 by phase: " + ", ".join(f"{name} {p95(values) * 1000:.0f} ms" for name, values in acks.items()))
    print(
        f"transcription: p95 {steady_p95:.2f} s webhook→reply (Groq floor {GROQ_FLOOR_SECONDS:.2f} s, overhead p95 "
        f"{steady_p95 - GROQ_FLOOR_SECONDS:.2f} s), burst20 p95 {p95(every_phase['burst20']):.2f} s, "
        f"burst100 p95 {p95(every_phase['burst100']):.2f} s, receiver p95 {p95([a for values in acks.values() for a in values]) * 1000:.0f} ms, lost {lost}, double {double}"
    )


def measure(database: str, transcribers: int, acks: dict[str, list[float]]) -> tuple[dict[str, list[float]], int, int]:
    """One whole set-up (Prefect, store, receiver, N transcribers, fakes) through every phase."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from store.database import migrate

    home = Path(tempfile.mkdtemp(prefix="vigia-bench-transcription-"))
    store_url = store_url_for(database, home)
    migrate(store_url)
    speech = make_speech(home)
    stamped = StampedEvolution(FakeEvolution(api_key=EVOLUTION_KEY, instances={INSTANCE: "open"}))
    fake_groq = FakeGroq(api_key=GROQ_KEY, delay_seconds=GROQ_FLOOR_SECONDS, requests_per_day=100_000)
    with ExitStack() as stack:
        if os.environ.get("BENCH_KEEP"):
            print(f"keeping {home} (store, logs)")
        else:
            stack.callback(shutil.rmtree, home, True)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: start_prefect_server(stack, database, home)}))
        evolution_url = stack.enter_context(serve_app(stamped))
        groq_url = stack.enter_context(serve_app(fake_groq.app))
        save_blocks(home, store_url, evolution_url, groq_url)
        receiver = start_receiver(stack, home, store_url, PREFECT_API_URL.value())
        for number in range(transcribers):
            start_transcriber(stack, home, store_url, PREFECT_API_URL.value(), number + 1)
        warm_up = post_all(receiver, speech, 1, 0.0, [])  # the first run pays for imports and Block registration
        wait_for_replies(stamped, warm_up)
        phase_acks: dict[str, list[float]] = {}
        phases = run_phases(receiver, stamped, speech, phase_acks)
        for name, values in phase_acks.items():
            acks.setdefault(name, []).extend(values)
        every_ack = [a for values in phase_acks.values() for a in values]
        found = summarise(
            f"Prefect and store on {database}, {transcribers} transcriber(s), receiver p95 {p95(every_ack) * 1000:.0f} ms", stamped, phases
        )
        every = {message_id: at for sent in phases.values() for message_id, at in sent.items()}
        lost = sum(1 for message_id in every if message_id not in stamped.replies)
        double = sum(1 for message_id in every if len(stamped.replies.get(message_id, [])) > 1)
    if database == "postgres":
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {STORE_DATABASE} WITH (FORCE)")
    return found, lost, double


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(PREFECT_HOME, True)
