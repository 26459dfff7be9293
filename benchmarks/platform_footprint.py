"""Benchmark the platform's footprint: `vigia up` cold and warm, idle memory, quick commands, against bare Prefect.

`vigia up` runs as users run it (`uv run vigia up --prefect-port P --webhook-port W --dashboard-port D`,
VIGIA_HOME a fresh temp dir, PREFECT_API_URL unset), first on the empty home (cold), then again on
the same home (warm). A start is timed from spawn until every printed URL answers: the Prefect
UI's /api/health, the receiver's /health (200 or 503) and the dashboard's /_stcore/health. After
the warm start and `--idle-seconds` of idling, the RSS (VmRSS) and PSS (smaps_rollup) of every
process of the tree are summed. `vigia status` and `vigia --help` (after one `vigia check`, so
status has rows to read) and `python -c pass` are timed as medians of 5. The floor is a bare
`uv run prefect server start` on its own SQLite (temp PREFECT_HOME, analytics off), started
twice: time to /api/health and idle memory. Everything is stopped with one SIGINT to its process group;
stragglers carrying this run's environment marker are killed at the end.

    uv run python benchmarks/platform_footprint.py [--idle-seconds 60]

The last two lines are `cli: vigia status X s, vigia --help Y s (python -c pass: Z s)` and
`platform: warm start X s (bare Prefect server: Y s, ratio R), cold start C s, idle RSS M MB (bare
Prefect server: N MB)`, MB being MiB; the bare server's start is its second (warm) one. Goals
(DESIGN §14): idle RSS ≤ 700 MB, warm start ≤ 1.5× bare Prefect, quick commands ≤ 1 s.
"""

import argparse  # noqa: E402
import os
import shutil
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile
import time  # noqa: E402
import uuid
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
from hermetic import PREFECT_HOME, REPOSITORY  # noqa: E402,I001 — first: sets up the environment before Prefect loads

from tests.deployments.processes import processes_with  # noqa: E402
from tests.fakes.server import free_port  # noqa: E402

MARKER_VARIABLE = "VIGIA_BENCH_MARKER"
MARKER = uuid.uuid4().hex
START_DEADLINE_SECONDS = 600
STOP_DEADLINE_SECONDS = 90
RUNS = 5
VENV_PYTHON = REPOSITORY / ".venv" / "bin" / "python"


@dataclass
class Started:
    """A process group this benchmark started, its log, and how long it took to answer."""

    name: str
    process: subprocess.Popen
    log_path: Path
    seconds: float = 0.0


@dataclass(frozen=True)
class Memory:
    """Summed memory of a process tree, in KiB, with the largest processes named."""

    rss_kib: int
    pss_kib: int
    processes: list[tuple[str, int]]  # (short command, RSS KiB), largest first


def environment(**extra: str) -> dict[str, str]:
    """Return this run's environment for a child: no PREFECT_API_URL, telemetry off, the marker set."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update({MARKER_VARIABLE: MARKER, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}, **extra)
    return env


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Started:
    """Start argv in a process group of its own, its output to a log file."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, cwd=REPOSITORY, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Started(name, process, log_path)


def wait_until_answering(started: Started, checks: dict[str, tuple[int, ...]], began: float) -> None:
    """Poll every URL until each answers with an accepted status; fail if the process exits or time runs out."""
    pending = dict(checks)
    with httpx.Client(timeout=2) as client:
        while pending:
            if started.process.poll() is not None:
                raise RuntimeError(f"{started.name} exited with {started.process.returncode}: {tail(started.log_path)}")
            if time.monotonic() - began > START_DEADLINE_SECONDS:
                raise RuntimeError(f"{started.name}: {', '.join(pending)} not answering after {START_DEADLINE_SECONDS} s")
            for url, accepted in list(pending.items()):
                try:
                    if client.get(url).status_code in accepted:
                        del pending[url]
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
    started.seconds = time.monotonic() - began


def start_vigia(name: str, home: Path, log_dir: Path) -> Started:
    """Run `uv run vigia up` on `home` with free ports; return once every printed URL answers."""
    prefect, webhook, dashboard = free_port(), free_port(), free_port()
    argv = ["uv", "run", "vigia", "up", "--prefect-port", str(prefect), "--webhook-port", str(webhook), "--dashboard-port", str(dashboard)]
    began = time.monotonic()
    started = spawn(name, argv, environment(VIGIA_HOME=str(home)), log_dir)
    wait_until_answering(
        started,
        {
            f"http://127.0.0.1:{prefect}/api/health": (200,),
            f"http://127.0.0.1:{webhook}/health": (200, 503),
            f"http://127.0.0.1:{dashboard}/_stcore/health": (200,),
        },
        began,
    )
    return started


def start_bare_prefect(prefect_home: Path, log_dir: Path) -> Started:
    """Run a bare `uv run prefect server start` on its own SQLite; return once /api/health answers."""
    port = free_port()
    argv = ["uv", "run", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"]
    began = time.monotonic()
    started = spawn("bare-prefect", argv, environment(PREFECT_HOME=str(prefect_home)), log_dir)
    wait_until_answering(started, {f"http://127.0.0.1:{port}/api/health": (200,)}, began)
    return started


def stop(started: Started) -> float:
    """Send one SIGINT to the process group and wait for it to exit (SIGKILL past the deadline); return the seconds."""
    began = time.monotonic()
    try:
        os.killpg(started.process.pid, signal.SIGINT)
        started.process.wait(timeout=STOP_DEADLINE_SECONDS)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        print(f"  {started.name} did not stop within {STOP_DEADLINE_SECONDS} s after SIGINT; killing its group")
        os.killpg(started.process.pid, signal.SIGKILL)
        started.process.wait()
    return time.monotonic() - began


def parents() -> dict[int, int]:
    """Return every live process's parent pid."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return found


def marked_processes() -> set[int]:
    """Return the pids of live processes whose environment carries this run's marker."""
    return set(processes_with(MARKER_VARIABLE, MARKER))


def tree(root: int) -> set[int]:
    """Return root and every descendant (plus any process carrying the marker that was re-parented away)."""
    by_parent: dict[int, list[int]] = {}
    for pid, parent in parents().items():
        by_parent.setdefault(parent, []).append(pid)
    found, queue = set(), [root]
    while queue:
        pid = queue.pop()
        if pid not in found:
            found.add(pid)
            queue.extend(by_parent.get(pid, []))
    return found | marked_processes()


def tree_memory(root: int) -> Memory:
    """Sum VmRSS and Pss over the process tree under root."""
    rss_total = pss_total = 0
    processes = []
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited, or a kernel thread
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        pss = next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
        rss_total, pss_total = rss_total + rss, pss_total + pss
        processes.append((short_command(command), rss))
    return Memory(rss_total, pss_total, sorted(processes, key=lambda item: -item[1]))


def short_command(command: str) -> str:
    """Return a process's command without interpreter paths: `prefect server start`, `deployments.serve`."""
    words = [Path(word).name if word.startswith("/") else word for word in command.split()]
    words = [word for word in words if not word.startswith("python") and word != "-m"]
    return " ".join(words[:3])


def median_seconds(argv: list[str], env: dict[str, str], runs: int = RUNS) -> tuple[float, str]:
    """Return the median wall time of `runs` runs of argv, and the last run's exit code and final line."""
    samples, outcome = [], ""
    for _ in range(runs):
        began = time.monotonic()
        done = subprocess.run(argv, cwd=REPOSITORY, env=env, capture_output=True, timeout=120)
        samples.append(time.monotonic() - began)
        said = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        outcome = f"exit {done.returncode}" + (f": {said[-1][:160]}" if done.returncode and said else "")
    return statistics.median(samples), outcome


def tail(path: Path, lines: int = 5) -> str:
    """Return the last lines of a log, joined, for an error message."""
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return f"no log at {path}"


def mib(kib: int) -> float:
    """KiB to MiB."""
    return kib / 1024


def measure_cli(home: Path) -> dict[str, float]:
    """Time the quick commands against the running platform on `home` (one `vigia check` first)."""
    env = environment(VIGIA_HOME=str(home))
    began = time.monotonic()
    argv = ["uv", "run", "vigia", "check", "--confirm-after", "0"]
    check = subprocess.run(argv, cwd=REPOSITORY, env=env, capture_output=True, timeout=300)
    said = (check.stdout + check.stderr).decode(errors="replace").strip().splitlines()
    print(
        f"vigia check (once, so status has rows): exit {check.returncode} in {time.monotonic() - began:.1f} s: {said[-1] if said else ''}"
    )
    status, status_outcome = median_seconds(["uv", "run", "vigia", "status"], env)
    help_seconds, help_outcome = median_seconds(["uv", "run", "vigia", "--help"], env)
    bare, _ = median_seconds([str(VENV_PYTHON), "-c", "pass"], env)
    print(
        f"quick commands, median of {RUNS}: vigia status {status:.2f} s ({status_outcome}), "
        f"vigia --help {help_seconds:.2f} s ({help_outcome}), python -c pass {bare:.3f} s"
    )
    return {"status": status, "help": help_seconds, "python": bare}


def measure_platform(work: Path, idle_seconds: float) -> tuple[Started, Started, Memory, dict[str, float]]:
    """Cold start, stop, warm start, idle, memory and quick commands, stop; return the two starts, the memory and the CLI times."""
    home = work / "home"
    cold = start_vigia("vigia-up-cold", home, work)
    print(f"cold start: every URL answered after {cold.seconds:.1f} s; stopped in {stop(cold):.1f} s (exit {cold.process.returncode})")
    warm = start_vigia("vigia-up-warm", home, work)
    try:
        print(f"warm start: every URL answered after {warm.seconds:.1f} s; idling {idle_seconds:.0f} s")
        time.sleep(idle_seconds)
        memory = tree_memory(warm.process.pid)
        cli = measure_cli(home)
    finally:
        print(f"warm platform stopped in {stop(warm):.1f} s (exit {warm.process.returncode})")
    return cold, warm, memory, cli


def measure_bare_prefect(work: Path, idle_seconds: float) -> tuple[Started, Started, Memory]:
    """Start the bare Prefect server cold (it creates its database), stop it, start it warm, idle, read its memory, stop it."""
    home = work / "bare-prefect-home"
    cold = start_bare_prefect(home, work)
    print(f"bare Prefect server, cold: /api/health answered after {cold.seconds:.1f} s; stopped in {stop(cold):.1f} s")
    warm = start_bare_prefect(home, work)
    try:
        print(f"bare Prefect server, warm: /api/health answered after {warm.seconds:.1f} s; idling {idle_seconds:.0f} s")
        time.sleep(idle_seconds)
        return cold, warm, tree_memory(warm.process.pid)
    finally:
        print(f"bare Prefect server stopped in {stop(warm):.1f} s (exit {warm.process.returncode})")


def kill_stragglers() -> None:
    """SIGKILL whatever still carries this run's marker, and say so."""
    stragglers = marked_processes()
    for pid in stragglers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    print(f"stragglers killed at the end: {len(stragglers)}" + (f" ({sorted(stragglers)})" if stragglers else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="How long the platform idles before its memory is read.")
    arguments = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vigia-bench-footprint-"))
    try:
        cold, warm, memory, cli = measure_platform(work, arguments.idle_seconds)
        bare_cold, bare, bare_memory = measure_bare_prefect(work, arguments.idle_seconds)
    finally:
        kill_stragglers()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)
    largest = ", ".join(f"{command} {mib(rss):.0f}" for command, rss in memory.processes[:6])
    print(f"idle tree after {arguments.idle_seconds:.0f} s: {len(memory.processes)} processes, RSS by process (MB): {largest}")
    print(
        f"idle PSS {mib(memory.pss_kib):.0f} MB (bare Prefect server: {mib(bare_memory.pss_kib):.0f} MB); "
        f"cold starts: vigia up {cold.seconds:.1f} s, bare Prefect server {bare_cold.seconds:.1f} s"
    )
    print(f"cli: vigia status {cli['status']:.2f} s, vigia --help {cli['help']:.2f} s (python -c pass: {cli['python']:.3f} s)")
    print(
        f"platform: warm start {warm.seconds:.1f} s (bare Prefect server: {bare.seconds:.1f} s, "
        f"ratio {warm.seconds / bare.seconds:.2f}), cold start {cold.seconds:.1f} s, "
        f"idle RSS {mib(memory.rss_kib):.0f} MB (bare Prefect server: {mib(bare_memory.rss_kib):.0f} MB)"
    )


if __name__ == "__main__":
    main()
