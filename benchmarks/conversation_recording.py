"""Benchmark what recording chat metadata costs the receiver: its p95 acknowledgement with VIGIA_CONVERSATIONS on and off.

The receiver runs as `vigia up` runs it (uvicorn, `create_app_from_environment`, its own process, a
SQLite store under a fresh VIGIA_HOME; no transcriber, so nothing else competes). Evolution's traffic
is a chat's: for every voice note, three customer text messages and one answer the bot sent
(`send.message`), posted from a process of its own with 32 keep-alive connections (webhook_sender.py).
Each round sends 200 webhooks at 20 a second, then 100 at once; rounds alternate off and on,
ROUNDS each (BENCH_ROUNDS, default 3). With recording off, text messages and answers are answered
200 without a write; on, every one is stored (metadata only) and paired with its chat.

    uv run python benchmarks/conversation_recording.py

The last line is `recording: receiver p95 X ms with conversations (without: Y ms, ratio R)`; the goal
(issue 17) is X − Y ≤ 5 ms.
"""

from hermetic import REPOSITORY  # noqa: F401, I001 — first: sets up the environment before anything loads

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from pathlib import Path  # noqa: E402

from transcription_latency import TOKEN, make_speech, p95, start_receiver  # noqa: E402
from webhook_sender import post_webhooks  # noqa: E402

from store.database import migrate  # noqa: E402
from tests.fakes.evolution_webhook import sent_message_envelope, text_envelope, voice_note_envelope  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
INSTANCE = "ops-bot"
CHATS = 40


def traffic(rng: random.Random, speech: bytes, count: int) -> list[list[str]]:
    """`count` webhooks of a bot's chats: per voice note, three customer texts and one bot answer."""
    bodies = []
    for number in range(count):
        chat = f"55119{rng.randrange(10**7, 10**8)}@s.whatsapp.net" if number % 7 == 0 else f"5511900000{number % CHATS:03d}@s.whatsapp.net"
        kind = number % 5
        if kind == 0:
            envelope = voice_note_envelope(speech, instance=INSTANCE, seconds=3, chat_jid=chat)
        elif kind == 4:
            envelope = sent_message_envelope("Claro, já verifico.", instance=INSTANCE, chat_jid=chat)
        else:
            envelope = text_envelope("Bom dia, meu pedido chegou?", instance=INSTANCE, chat_jid=chat)
        bodies.append([envelope["data"]["key"]["id"], json.dumps(envelope)])
    return bodies


def send(receiver: str, bodies: list[list[str]], every_seconds: float, voice: dict[str, list[float]] | None = None) -> list[float]:
    acks = []
    for message_id, _, ack_seconds, status in post_webhooks(receiver, TOKEN, bodies, every_seconds):
        if status not in (200, 202):
            raise SystemExit(f"the receiver answered {status} to message {message_id}")
        acks.append(ack_seconds)
        if voice is not None:
            voice["voice notes" if status == 202 else "chat messages"].append(ack_seconds)
    return acks


def one_round(recording: bool, speech: bytes, rng: random.Random, kinds: dict[str, list[float]]) -> list[float]:
    home = Path(tempfile.mkdtemp(prefix="vigia-bench-recording-"))
    store_url = f"sqlite:///{home / 'vigia.db'}"
    migrate(store_url)
    os.environ["VIGIA_CONVERSATIONS"] = "true" if recording else "false"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, True)
        receiver = start_receiver(stack, home, store_url, "http://127.0.0.1:9/api")  # the receiver never calls Prefect
        send(receiver, traffic(rng, speech, 10), 0.0)  # warm: imports, the first connection, the key file
        return send(receiver, traffic(rng, speech, 200), 0.05, kinds) + send(receiver, traffic(rng, speech, 100), 0.0, kinds)


def main() -> None:
    speech_home = Path(tempfile.mkdtemp(prefix="vigia-bench-speech-"))
    speech = make_speech(speech_home)
    shutil.rmtree(speech_home, True)
    rng = random.Random(5)
    acks: dict[bool, list[float]] = {False: [], True: []}
    kinds: dict[bool, dict[str, list[float]]] = {flag: {"voice notes": [], "chat messages": []} for flag in (False, True)}
    for _ in range(ROUNDS):
        for recording in (False, True):
            values = one_round(recording, speech, rng, kinds[recording])
            acks[recording].extend(values)
            print(f"recording {'on ' if recording else 'off'}: p95 {p95(values) * 1000:.1f} ms over {len(values)} webhooks")
    for recording in (False, True):
        by_kind = ", ".join(f"{kind} {p95(values) * 1000:.1f} ms" for kind, values in kinds[recording].items())
        print(f"recording {'on ' if recording else 'off'}: p95 by kind: {by_kind}")
    on, off = p95(acks[True]) * 1000, p95(acks[False]) * 1000
    print(f"recording: receiver p95 {on:.1f} ms with conversations (without: {off:.1f} ms, ratio {on / off:.2f})")


if __name__ == "__main__":
    main()
