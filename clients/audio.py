"""Audio files through ffprobe and ffmpeg: duration, and splitting into pieces small enough to upload."""

from __future__ import annotations

import math
from pathlib import Path

from clients import commands
from clients.errors import ClientError

PROBE_TIMEOUT_SECONDS = 10
SPLIT_TIMEOUT_SECONDS = 120


class AudioError(ClientError):
    """ffprobe or ffmpeg could not read or split an audio file."""


def probe_duration(path: Path) -> float:
    """Return an audio file's duration in seconds.

    Raises:
        AudioError: when ffprobe is missing, fails, or reports no duration.
    """
    argv = ("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", str(path))
    try:
        result = commands.run(argv, timeout=PROBE_TIMEOUT_SECONDS, env=commands.environment())
    except ClientError as error:
        raise AudioError(f"cannot read the duration of {path.name}: {error}") from error
    try:
        return float(result.stdout.strip().splitlines()[0])
    except (IndexError, ValueError) as error:
        raise AudioError(f"ffprobe reported no duration for {path.name}") from error


def split_audio(path: Path, *, max_bytes: int, directory: Path) -> list[Path]:
    """Split an audio file into pieces of at most about `max_bytes`, by time, without re-encoding.

    Returns:
        The pieces in order, `<stem>-000.<ext>`…; the file itself when it is small enough.

    Raises:
        AudioError: when ffmpeg is missing or fails, or a piece is still too large.
    """
    size = path.stat().st_size
    if size <= max_bytes:
        return [path]
    duration = probe_duration(path)
    # Aim at 90 % of the limit: pieces cut at packet boundaries and carry their own headers.
    pieces = math.ceil(size / (max_bytes * 0.9))
    piece_seconds = max(duration / pieces, 1.0)
    directory.mkdir(parents=True, exist_ok=True)
    pattern = directory / f"{path.stem}-%03d{path.suffix}"
    argv = (
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(path),
        "-map",
        "0:a",
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        f"{piece_seconds:.3f}",
        "-reset_timestamps",
        "1",
        str(pattern),
    )
    try:
        commands.run(argv, timeout=SPLIT_TIMEOUT_SECONDS, env=commands.environment())
    except ClientError as error:
        raise AudioError(f"cannot split {path.name}: {error}") from error
    produced = sorted(directory.glob(f"{path.stem}-[0-9][0-9][0-9]{path.suffix}"))
    if not produced:
        raise AudioError(f"ffmpeg split {path.name} into nothing")
    too_large = [piece.name for piece in produced if piece.stat().st_size > max_bytes]
    if too_large:
        raise AudioError(f"splitting {path.name} left pieces over {max_bytes} bytes: {', '.join(too_large)}")
    return produced


# Groq accepts flac mp3 mp4 mpeg mpga m4a ogg opus wav webm, judged by the file name; Evolution
# names voice notes *.oga, which it rejects, so OGG is always spelled .ogg.
EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/x-m4a": ".m4a",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/webm": ".webm",
    "audio/flac": ".flac",
    "audio/amr": ".amr",
}


def extension_for(mimetype: str | None) -> str:
    """The file extension for an audio MIME type (`audio/ogg; codecs=opus` → `.ogg`); `.ogg` when unknown."""
    base = (mimetype or "").split(";")[0].strip().lower()
    return EXTENSIONS.get(base, ".ogg")
