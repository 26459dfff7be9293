"""Hosts for tests, as Linux network namespaces on one bridge (iproute2): each host has its own loopback and one
link, `eth0`, which a test can cut. The bridge lives in a namespace of its own, so nothing changes outside them.

PostgreSQL and the Prefect API are reached across namespaces by socat: a namespace's TCP port forwards to a Unix
socket (Unix sockets are not per network namespace), and a port on this machine's 127.0.0.1 forwards into one."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.deployments.processes import processes_tagged

SUBNET = "10.231.0"
POSTGRES_SOCKET = "/var/run/postgresql/.s.PGSQL.5432"


class NamespacesUnavailable(Exception):
    """This machine does not let us create network namespaces (not root, no CAP_SYS_ADMIN, no iproute2)."""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@dataclass
class Host:
    """One namespace on the bridge: its name and its address on eth0."""

    namespace: str
    address: str

    def cut(self) -> None:
        """Take this host's only link down: it can reach no other host (nor the store) any more."""
        ip("-n", self.namespace, "link", "set", "eth0", "down")

    def argv(self, *command: str) -> list[str]:
        """`command` run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]


@dataclass
class Network:
    """Hosts on one bridge; every process a test starts through it is stopped when it is torn down."""

    prefix: str
    tag: str
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    def add_host(self, name: str) -> Host:
        """A namespace wired to the bridge, its eth0 up at the next address of the subnet."""
        number = len(self.hosts) + 1
        namespace, ours, theirs = f"{self.prefix}-{name}", f"{self.prefix}{number}h", f"{self.prefix}{number}b"
        ip("netns", "add", namespace)
        ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
        ip("link", "set", ours, "netns", namespace)
        ip("link", "set", theirs, "netns", self.lan)
        ip("-n", self.lan, "link", "set", theirs, "master", "br0")
        ip("-n", self.lan, "link", "set", theirs, "up")
        ip("-n", namespace, "link", "set", ours, "name", "eth0")
        ip("-n", namespace, "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        self.hosts[name] = host = Host(namespace, f"{SUBNET}.{number}")
        return host

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
        """Start a process tagged with VIGIA_TEST_TAG (so teardown finds its children too), its output in `log`."""
        environ = {**(env if env is not None else os.environ), "VIGIA_TEST_TAG": self.tag}
        with open(log, "ab") as output:
            process = subprocess.Popen(
                argv, env=environ, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.processes.append(process)
        return process

    def serve_postgres(self, host: Host, log: Path) -> str:
        """Make this machine's PostgreSQL answer at host:5432 for every host on the bridge; return that address."""
        self.start(host.argv("socat", f"TCP-LISTEN:5432,bind={host.address},fork,reuseaddr", f"UNIX-CONNECT:{POSTGRES_SOCKET}"), log)
        return f"{host.address}:5432"

    def expose(self, host: Host, port: int, local_port: int, socket_dir: Path, log: Path) -> str:
        """Make host:port answer on this machine's 127.0.0.1:local_port (for the test itself); return that address."""
        unix = socket_dir / f"{host.namespace}-{port}.sock"
        self.start(host.argv("socat", f"UNIX-LISTEN:{unix},fork,unlink-early", f"TCP:{host.address}:{port}"), log)
        deadline = time.monotonic() + 10
        while not unix.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.start(["socat", f"TCP-LISTEN:{local_port},bind=127.0.0.1,fork,reuseaddr", f"UNIX-CONNECT:{unix}"], log)
        return f"127.0.0.1:{local_port}"

    def offer(self, host: Host, port: int, local_port: int, socket_dir: Path, log: Path) -> str:
        """Make this machine's 127.0.0.1:local_port (a server of the test's) answer at host:port for every host on the
        bridge; return that address once it listens."""
        unix = socket_dir / f"offer-{local_port}.sock"
        self.start(["socat", f"UNIX-LISTEN:{unix},fork,unlink-early", f"TCP:127.0.0.1:{local_port}"], log)
        self.start(host.argv("socat", f"TCP-LISTEN:{port},bind={host.address},fork,reuseaddr", f"UNIX-CONNECT:{unix}"), log)
        deadline = time.monotonic() + 10
        while not (unix.exists() and listens(host, port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"{host.address}:{port}"

    def tear_down(self) -> None:
        """Stop every process (and what they started), then delete the namespaces and with them the links."""
        for pid in processes_tagged(self.tag):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for namespace in [host.namespace for host in self.hosts.values()] + [self.lan]:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def listens(host: Host, port: int) -> bool:
    """Whether something listens on TCP `port` in this host's namespace."""
    found = subprocess.run(host.argv("ss", "-Hltn", f"sport = :{port}"), capture_output=True, text=True, timeout=10)
    return bool(found.stdout.strip())


@contextlib.contextmanager
def network():
    """A bridge in a namespace of its own, ready for hosts; everything is removed on exit.

    Raises:
        NamespacesUnavailable: naming why, when namespaces or socat are not available here.
    """
    if shutil.which("ip") is None or shutil.which("socat") is None:
        raise NamespacesUnavailable("iproute2 (ip) and socat are needed")
    built = Network(prefix=f"v{uuid.uuid4().hex[:5]}", tag=uuid.uuid4().hex)
    try:
        ip("netns", "add", built.lan)
    except (subprocess.CalledProcessError, OSError) as error:
        raise NamespacesUnavailable(f"`ip netns add` failed: {getattr(error, 'stderr', '') or error}".strip()) from None
    try:
        ip("-n", built.lan, "link", "add", "br0", "type", "bridge")
        ip("-n", built.lan, "link", "set", "br0", "up")
        yield built
    finally:
        built.tear_down()
