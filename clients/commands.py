"""The one place that starts subprocesses: argv tuples, never a shell, an explicit timeout and env.

Secrets travel only in the environment (PGPASSWORD, REDISCLI_AUTH, RCLONE_CONFIG_*); every
command shown in an error or a log line has them masked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clients.errors import ClientError
from clients.redaction import mask_secrets

logger = logging.getLogger(__name__)
STDERR_TAIL_CHARS = 1500
CHUNK_BYTES = 1 << 20
# Debian packages that carry each tool, for the "not installed" instruction.
PACKAGES = {
    "pg_dump": "postgresql-client",
    "pg_restore": "postgresql-client",
    "psql": "postgresql-client",
    "redis-cli": "redis-tools",
    "redis-check-rdb": "redis-tools",
    "redis-server": "redis-server",
    "zstd": "zstd",
    "tar": "tar",
    "rclone": "rclone",
}
_SIGPIPE_CODES = (-13, 141)


class CommandFailed(ClientError):
    """A command exited non-zero or timed out; names the tool, its masked argv and stderr's tail."""

    def __init__(self, tool: str, argv: Sequence[str], returncode: int | None, stderr_tail: str, reason: str | None = None):
        self.tool = tool
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        detail = reason or error_line(stderr_tail) or "no message"
        status = "timed out" if returncode is None else f"exit {returncode}"
        super().__init__(f"{tool} failed ({status}): {detail}")


class ToolMissing(ClientError):
    """A command-line tool is not installed."""

    def __init__(self, tool: str):
        self.tool = tool
        package = PACKAGES.get(tool, tool)
        super().__init__(f"{tool} is not installed: install it with `apt-get install -y {package}` (or `make tools`)")


class WriteFailed(ClientError):
    """Writing a command's output failed (a full disk, a missing folder)."""


@dataclass(frozen=True)
class Stage:
    """One process of a pipeline: its argv and its environment."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class CommandResult:
    """A finished command: masked argv, exit status, output, duration."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class PipelineResult:
    """A finished pipeline: bytes written, their SHA-256 (when written to a file), duration."""

    size_bytes: int
    sha256: str | None
    seconds: float
    stderr_tails: tuple[str, ...]


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment with `extra` on top, for a child."""
    return {**os.environ, **(extra or {})}


def mask_argv(argv: Sequence[str], secrets: Sequence[str] = ()) -> tuple[str, ...]:
    """Return argv with URL passwords and the given secrets masked."""
    return tuple(mask_secrets(str(arg), secrets) for arg in argv)


def last_line(text: str) -> str:
    """Return the last non-empty line of a command's output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def error_line(text: str) -> str:
    """Return the line of a tool's stderr that says what went wrong: its first error line, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower() or "fatal" in line.lower()]
    return errors[0] if errors else (lines[-1] if lines else "")


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    secrets: Sequence[str] = (),
    check: bool = True,
    cwd: Path | None = None,
) -> CommandResult:
    """Run one command to completion and return its output.

    Raises:
        ToolMissing: when the tool is not installed.
        CommandFailed: on a non-zero exit (with `check`) or a timeout.
    """
    argv = tuple(str(arg) for arg in argv)
    masked = mask_argv(argv, secrets)
    started = time.perf_counter()
    try:
        completed = subprocess.run(argv, env=dict(env), capture_output=True, timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    except FileNotFoundError as error:
        raise ToolMissing(argv[0]) from error
    except subprocess.TimeoutExpired as error:
        tail = mask_secrets((error.stderr or b"").decode(errors="replace")[-STDERR_TAIL_CHARS:], secrets)
        raise CommandFailed(Path(argv[0]).name, masked, None, tail, f"timed out after {timeout:g} s") from error
    stdout = mask_secrets(completed.stdout.decode(errors="replace"), secrets)
    stderr = mask_secrets(completed.stderr.decode(errors="replace"), secrets)
    result = CommandResult(masked, completed.returncode, stdout, stderr, time.perf_counter() - started)
    logger.debug("%s exited %d in %.1f s", " ".join(masked), completed.returncode, result.seconds)
    if check and completed.returncode != 0:
        raise CommandFailed(Path(argv[0]).name, masked, completed.returncode, stderr[-STDERR_TAIL_CHARS:] or stdout[-STDERR_TAIL_CHARS:])
    return result


def run_pipeline(
    stages: Sequence[Stage],
    *,
    timeout: float,
    stdin_path: Path | None = None,
    output: Path | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> PipelineResult:
    """Run processes as a pipe, checking every stage's exit status.

    With `output`, the last stage's stdout is written to `output.partial` while its SHA-256 is
    computed, fsynced, and renamed to `output` only when every stage succeeded. With `stdin_path`,
    the first stage reads that file; `on_bytes(n)` reports progress through it (or the output).

    Raises:
        ToolMissing, CommandFailed: the failing stage, named (a failed first stage is never hidden).
        WriteFailed: when the output cannot be written (full disk).
    """
    started = time.perf_counter()
    processes: list[subprocess.Popen] = []
    stderr_files = [tempfile.TemporaryFile() for _ in stages]
    partial = output.with_name(output.name + ".partial") if output else None
    timed_out = threading.Event()
    source = _ProgressReader(stdin_path, on_bytes if output is None else None) if stdin_path else None
    try:
        previous = None
        for index, (stage, stderr_file) in enumerate(zip(stages, stderr_files)):
            stdin = previous.stdout if previous else (subprocess.PIPE if source else subprocess.DEVNULL)
            last = index == len(stages) - 1
            stdout = subprocess.PIPE if (not last or output) else subprocess.DEVNULL
            try:
                process = subprocess.Popen(stage.argv, stdin=stdin, stdout=stdout, stderr=stderr_file, env=dict(stage.env))
            except FileNotFoundError as error:
                raise ToolMissing(stage.argv[0]) from error
            if previous is not None:
                previous.stdout.close()  # the next stage owns it: a dying reader gives the writer SIGPIPE
            processes.append(process)
            previous = process
        watchdog = threading.Timer(timeout, _kill_all, (processes, timed_out))
        watchdog.daemon = True
        watchdog.start()
        feeder = source.feed(processes[0]) if source else None
        try:
            size, digest = _drain(processes[-1], partial, on_bytes, processes) if partial else (0, None)
            if feeder:
                feeder.join()
            codes = [process.wait() for process in processes]
        finally:
            watchdog.cancel()
        tails = tuple(_tail(file, stage.secrets) for file, stage in zip(stderr_files, stages))
        _raise_for_status(stages, codes, tails, timed_out.is_set(), timeout, source.error if source else None)
        if partial:
            partial.replace(output)
        return PipelineResult(size, digest, time.perf_counter() - started, tails)
    finally:
        _kill_all(processes, None)
        for file in stderr_files:
            file.close()
        if partial and partial.exists():
            partial.unlink()


@contextmanager
def background(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    ready: Callable[[], bool],
    timeout: float,
    log_path: Path,
    secrets: Sequence[str] = (),
) -> Iterator[subprocess.Popen]:
    """Start a long-running process, wait until `ready()` holds, and stop it on exit.

    Raises:
        ToolMissing: when the tool is not installed.
        CommandFailed: when it exits or is not ready within `timeout`, with its masked argv and log's tail.
    """
    argv = tuple(str(arg) for arg in argv)
    masked = mask_argv(argv, secrets)
    with open(log_path, "wb") as log:
        try:
            process = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except FileNotFoundError as error:
            raise ToolMissing(argv[0]) from error
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None:
                raise CommandFailed(Path(argv[0]).name, masked, process.returncode, _read_tail(log_path, secrets))
            if time.monotonic() > deadline:
                raise CommandFailed(Path(argv[0]).name, masked, None, _read_tail(log_path, secrets), f"not ready after {timeout:g} s")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def require(tool: str) -> None:
    """Fail early, with the package to install, when a tool is missing.

    Raises:
        ToolMissing: when `tool` is not on PATH.
    """
    if shutil.which(tool) is None:
        raise ToolMissing(tool)


class _ProgressReader:
    """Feeds a file into a process's stdin from a thread, reporting bytes read."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None] | None):
        self.path = path
        self.on_bytes = on_bytes
        self.error: str | None = None

    def feed(self, process: subprocess.Popen) -> threading.Thread:
        thread = threading.Thread(target=self._copy, args=(process,), daemon=True)
        thread.start()
        return thread

    def _copy(self, process: subprocess.Popen) -> None:
        try:
            with open(self.path, "rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    process.stdin.write(chunk)
                    if self.on_bytes:
                        self.on_bytes(len(chunk))
        except BrokenPipeError:
            pass  # the reader stopped early; its own exit status tells why
        except OSError as error:
            self.error = f"cannot read {self.path}: {error.strerror}"
        finally:
            try:
                process.stdin.close()
            except OSError:
                pass


def _drain(process: subprocess.Popen, partial: Path, on_bytes, processes) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(partial, "wb") as sink:
            while chunk := process.stdout.read(CHUNK_BYTES):
                sink.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
            sink.flush()
            os.fsync(sink.fileno())
    except OSError as error:
        _kill_all(processes, None)
        raise WriteFailed(f"cannot write {partial.name} in {partial.parent}: {error.strerror}; free some space and run again") from error
    return size, digest.hexdigest()


def _raise_for_status(stages, codes, tails, timed_out: bool, timeout: float, read_error: str | None) -> None:
    if timed_out:
        raise CommandFailed(
            Path(stages[0].argv[0]).name, mask_argv(stages[0].argv, stages[0].secrets), None, tails[0], f"timed out after {timeout:g} s"
        )
    if read_error:
        raise WriteFailed(read_error)
    failed = [index for index, code in enumerate(codes) if code != 0]
    if not failed:
        return
    # A stage killed by SIGPIPE only saw its reader die: blame the reader (or whoever failed first).
    real = [index for index in failed if codes[index] not in _SIGPIPE_CODES] or failed
    index = real[0]
    stage = stages[index]
    raise CommandFailed(Path(stage.argv[0]).name, mask_argv(stage.argv, stage.secrets), codes[index], tails[index])


def _kill_all(processes, flag: threading.Event | None) -> None:
    if flag is not None:
        flag.set()
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _tail(file, secrets: Sequence[str]) -> str:
    file.seek(0, os.SEEK_END)
    file.seek(max(0, file.tell() - STDERR_TAIL_CHARS))
    return mask_secrets(file.read().decode(errors="replace"), secrets)


def _read_tail(path: Path, secrets: Sequence[str]) -> str:
    try:
        return mask_secrets(path.read_bytes()[-STDERR_TAIL_CHARS:].decode(errors="replace"), secrets)
    except OSError:
        return ""
