"""Send webhooks as Evolution's Node agent does: keep-alive connections, no interpreter of the benchmark's in between.

Run by transcription_latency.py in a process of its own, so the receiver's acknowledgement time is not
the time a Python client spends under the GIL it shares with the fake Groq and Evolution. Reads one JSON
object on stdin — {"url", "headers", "connections", "every_seconds", "notes": [[message_id, body], …]} —
sends note i at start + i × every_seconds (0: all at once, at most `connections` in flight) and
writes [[message_id, sent_monotonic, ack_seconds, status], …] on stdout. time.monotonic() is the
system's CLOCK_MONOTONIC, the same clock the benchmark stamps replies with.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

CONNECTIONS = 32  # Evolution's HTTP agent keeps this many alive


class Connection:
    """One HTTP/1.1 keep-alive connection that posts a body and reads the status and the answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


async def send_all(spec: dict) -> list[list]:
    target = urlsplit(spec["url"])
    headers = "".join(f"{name}: {value}\r\n" for name, value in spec["headers"].items())
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(min(spec["connections"], len(spec["notes"]))):
        idle.put_nowait(Connection(*await asyncio.open_connection(target.hostname, target.port)))
    start = time.monotonic()
    results: list[list] = []

    async def send(index: int, message_id: str, body: str) -> None:
        await asyncio.sleep(max(start + index * spec["every_seconds"] - time.monotonic(), 0))
        content = body.encode()
        head = f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\n{headers}Content-Length: {len(content)}\r\n\r\n".encode()
        connection = await idle.get()
        sent = time.monotonic()
        try:
            status = await connection.post(head, content)
        finally:
            idle.put_nowait(connection)
        results.append([message_id, sent, time.monotonic() - sent, status])

    await asyncio.gather(*(send(index, message_id, body) for index, (message_id, body) in enumerate(spec["notes"])))
    while not idle.empty():
        idle.get_nowait().writer.close()
    return results


def post_webhooks(receiver: str, token: str, notes: list[list[str]], every_seconds: float) -> list[list]:
    """Post [[message_id, body], …] to the receiver's Evolution webhook from a process of this script's own.

    Returns [[message_id, sent_monotonic, ack_seconds, status], …].
    """
    spec = {
        "url": f"{receiver}/webhooks/evolution",
        "headers": {"X-Vigia-Token": token, "Content-Type": "application/json"},
        "connections": CONNECTIONS,
        "every_seconds": every_seconds,
        "notes": notes,
    }
    sender = subprocess.run([sys.executable, __file__], input=json.dumps(spec), capture_output=True, text=True, check=True)
    return json.loads(sender.stdout)


if __name__ == "__main__":
    json.dump(asyncio.run(send_all(json.load(sys.stdin))), sys.stdout)
