"""rclone: uploads and downloads through rclone-python, hash checks and listings through `rclone` argv.

rclone-python joins its command into a shell string, so only paths we generated pass through
it (`check_remote` rejects anything else). Remotes come from `RCLONE_CONFIG_<NAME>_*` variables
or rclone's own config file; credentials never appear in a remote spec, a log or an error.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

from rclone_python import rclone
from rclone_python.logs import logger as rclone_python_logger
from rclone_python.utils import RcloneException

from clients import commands
from clients.errors import ClientError
from clients.redaction import mask_secrets

# rclone-python logs through its own RichHandler and keeps it to itself; send it our way instead.
for _handler in list(rclone_python_logger.handlers):
    rclone_python_logger.removeHandler(_handler)
rclone_python_logger.propagate = True
rclone_python_logger.setLevel(logging.WARNING)

_SAFE = re.compile(r"^(?:[A-Za-z0-9_-]+:)?[A-Za-z0-9_./-]*$")
TRANSFER_ARGS = ["--retries", "2", "--low-level-retries", "3", "--contimeout", "15s", "--timeout", "5m"]
TIMEOUT_SECONDS = 3600


class RcloneError(ClientError):
    """rclone failed; the message names the remote and rclone's reason, never credentials."""


def check_remote(spec: str) -> str:
    """Return a remote spec (`name:path` or a local folder) that is safe to hand to rclone-python.

    Raises:
        RcloneError: for characters a shell would interpret, or an inline connection string.
    """
    spec = spec.rstrip("/") or spec
    if not _SAFE.match(spec) or ".." in spec.split("/"):
        raise RcloneError(
            f"remote {spec!r} is not usable: write `name:folder` or an absolute folder using only letters, digits and . _ / - "
            "(define the remote with RCLONE_CONFIG_<NAME>_* variables)"
        )
    return spec


def join(remote: str, *parts: str) -> str:
    """Join path parts onto a remote spec."""
    path = remote if remote.endswith((":", "/")) else remote + "/"
    return check_remote(path + "/".join(part.strip("/") for part in parts))


def upload(local_dir: Path, remote_dir: str, *, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Copy a local folder's files into a remote folder.

    Raises:
        RcloneError: with rclone's real reason, even when it failed before transferring anything.
    """
    check_remote(str(local_dir))
    _transfer(rclone.copy, str(local_dir), check_remote(remote_dir), on_progress, "upload to")


def download(remote_file: str, local_file: Path, *, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Copy one remote file to a local path.

    Raises:
        RcloneError: as `upload`.
    """
    check_remote(str(local_file))
    _transfer(rclone.copyto, check_remote(remote_file), str(local_file), on_progress, "download from")


def checksum(sum_file: Path, remote_dir: str) -> list[str]:
    """Check the remote files against a `sha256sum`-format file by downloading them; return the problems.

    A plain `rclone check` only compares sizes on remotes without hashes (WebDAV, crypt); this reads the bytes.

    Raises:
        RcloneError: when the remote cannot be read at all.
    """
    argv = ("rclone", "checksum", "sha256", str(sum_file), check_remote(remote_dir), "--download", "--one-way", *TRANSFER_ARGS)
    result = commands.run(argv, timeout=TIMEOUT_SECONDS, env=commands.environment(), check=False)
    if result.returncode == 0:
        return []
    problems = [_problem(line) for line in result.stderr.splitlines() if " ERROR : " in line]
    if not problems:
        raise RcloneError(f"checking {remote_dir} failed: {mask_secrets(commands.last_line(result.stderr)) or 'no message'}")
    return problems


def list_folders(remote: str) -> list[str]:
    """Return the names of the folders directly under a remote folder ([] when it does not exist yet).

    Raises:
        RcloneError: when the remote cannot be reached.
    """
    argv = ("rclone", "lsjson", check_remote(remote), "--dirs-only", "--max-depth", "1", *TRANSFER_ARGS)
    result = commands.run(argv, timeout=300, env=commands.environment(), check=False)
    if result.returncode == 3 or "directory not found" in result.stderr:
        return []
    if result.returncode != 0:
        raise RcloneError(f"listing {remote} failed: {mask_secrets(commands.last_line(result.stderr)) or 'no message'}")
    return sorted(entry["Name"] for entry in json.loads(result.stdout or "[]"))


def fetch_files(remote: str, local_dir: Path, pattern: str) -> None:
    """Copy the remote files matching an rclone filter pattern (e.g. `/*/manifest.json`) into a local folder.

    Raises:
        RcloneError: when the remote cannot be read.
    """
    argv = ("rclone", "copy", check_remote(remote), str(local_dir), "--include", pattern, *TRANSFER_ARGS)
    result = commands.run(argv, timeout=TIMEOUT_SECONDS, env=commands.environment(), check=False)
    if result.returncode != 0 and "directory not found" not in result.stderr:
        raise RcloneError(f"reading {remote} failed: {mask_secrets(commands.last_line(result.stderr)) or 'no message'}")


def remove_folder(remote_dir: str) -> None:
    """Delete a remote folder and everything in it.

    Raises:
        RcloneError: with rclone's reason.
    """
    try:
        rclone.purge(check_remote(remote_dir))
    except RcloneException as error:
        raise RcloneError(f"deleting {remote_dir} failed: {_reason(error, remote_dir)}") from error


def version() -> str:
    """Return rclone's version, for the manifest."""
    return commands.run(("rclone", "version"), timeout=30, env=commands.environment()).stdout.splitlines()[0].strip()


def _transfer(operation, source: str, destination: str, on_progress, verb: str) -> None:
    commands.require("rclone")

    def listener(update: dict) -> None:
        if on_progress:
            on_progress(int(update.get("sent", 0)), int(update.get("total", 0)))

    remote = destination if verb == "upload to" else source
    try:
        operation(source, destination, show_progress=False, listener=listener, args=list(TRANSFER_ARGS))
    except RcloneException as error:
        raise RcloneError(f"{verb} {remote} failed: {_reason(error, remote)}") from error


def _reason(error: RcloneException, remote: str) -> str:
    message = (error.error_msg or "").strip()
    if not message:
        # A fatal start-up error (unknown remote, refused connection) is plain text that
        # rclone-python drops: ask rclone again, with argv, to get the real reason.
        probe = commands.run(
            ("rclone", "lsjson", _root(remote), "--max-depth", "1", *TRANSFER_ARGS), timeout=300, env=commands.environment(), check=False
        )
        message = commands.last_line(probe.stderr) or "rclone gave no reason"
    return mask_secrets(commands.last_line(message))


def _root(remote: str) -> str:
    name, colon, _ = remote.partition(":")
    return f"{name}:" if colon and "/" not in name else remote


def _problem(line: str) -> str:
    problem = mask_secrets(line.split(" ERROR : ", 1)[1].strip())
    return problem.replace(": files differ", ": SHA-256 differs from the one recorded")
