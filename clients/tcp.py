"""TCP connects, for ports that speak no protocol we probe."""

from __future__ import annotations

import asyncio
import os
import time

from clients.errors import ClientError


class TcpError(ClientError):
    """A TCP connection could not be opened."""


def parse_address(address: str) -> tuple[str, int]:
    """Split `host:port` (or `[v6]:port`).

    Raises:
        TcpError: when it is not host:port with a port from 1 to 65535.
    """
    host, separator, port = address.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TcpError(f"malformed address {address!r}: expected host:port")
    return host, int(port)


async def connect(address: str, *, timeout: float) -> float:
    """Open and close a TCP connection; return the connect latency in ms.

    Raises:
        TcpError: when the address is malformed, refused or times out.
    """
    host, port = parse_address(address)
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError as error:
        raise TcpError(f"connect to {host}:{port} timed out after {timeout:g} s") from error
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise TcpError(f"cannot connect to {host}:{port}: {reason}") from error
    latency_ms = (time.perf_counter() - started) * 1000
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # the peer may reset a connection we only opened to test
    return latency_ms
