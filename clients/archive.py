"""Files and folders as `tar | zstd`, and their listing back for verification."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from clients import commands
from clients.commands import PipelineResult, Stage


def count_entries(paths: Sequence[Path]) -> int:
    """Count what tar will archive: every file, folder and link under the paths."""
    total = 0
    for path in paths:
        total += 1
        if path.is_dir() and not path.is_symlink():
            for _, folders, files in os.walk(path):
                total += len(folders) + len(files)
    return total


def archive_paths(paths: Sequence[Path], output: Path, *, timeout: float, on_bytes: Callable[[int], None] | None = None) -> PipelineResult:
    """Archive files and folders as `tar -c | zstd` into `output`, each stored under its absolute path.

    Raises:
        CommandFailed: naming tar or zstd.
    """
    members = [str(path.resolve()).lstrip("/") for path in paths]
    tar = ("tar", "--create", "--file=-", "--directory=/", "--", *members)
    stages = [Stage(tar, commands.environment()), Stage(("zstd", "-3", "-T0", "-q", "-c"), commands.environment())]
    return commands.run_pipeline(stages, timeout=timeout, output=output, on_bytes=on_bytes)


def list_archive(archive: Path, *, timeout: float) -> int:
    """Decompress and list an archive; return how many entries it holds.

    Raises:
        CommandFailed: when zstd or tar finds it damaged.
    """
    listing = archive.with_name(archive.name + ".list")
    try:
        stages = [Stage(("zstd", "-d", "-q", "-c"), commands.environment()), Stage(("tar", "--list", "--file=-"), commands.environment())]
        commands.run_pipeline(stages, timeout=timeout, stdin_path=archive, output=listing)
        return sum(1 for line in listing.read_text(errors="replace").splitlines() if line)
    finally:
        listing.unlink(missing_ok=True)


def extract_archive(archive: Path, destination: Path, *, timeout: float, on_bytes: Callable[[int], None] | None = None) -> PipelineResult:
    """Extract an archive under `destination` (the absolute paths become relative to it).

    Raises:
        CommandFailed: naming zstd or tar.
    """
    destination.mkdir(parents=True, exist_ok=True)
    stages = [
        Stage(("zstd", "-d", "-q", "-c"), commands.environment()),
        Stage(("tar", "--extract", "--file=-", f"--directory={destination}"), commands.environment()),
    ]
    return commands.run_pipeline(stages, timeout=timeout, stdin_path=archive, on_bytes=on_bytes)


def compress_file(source: Path, output: Path, *, timeout: float) -> PipelineResult:
    """Compress one file with zstd into `output` (SHA-256 computed while writing)."""
    return commands.run_pipeline(
        [Stage(("zstd", "-3", "-T0", "-q", "-c"), commands.environment())], timeout=timeout, stdin_path=source, output=output
    )


def decompress_file(source: Path, output: Path, *, timeout: float) -> PipelineResult:
    """Decompress one zstd file into `output`."""
    return commands.run_pipeline(
        [Stage(("zstd", "-d", "-q", "-c"), commands.environment())], timeout=timeout, stdin_path=source, output=output
    )


def file_sha256(path: Path) -> tuple[int, str]:
    """Return a file's size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(commands.CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
