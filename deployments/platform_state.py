"""`VIGIA_HOME/up.json`: which `vigia up` holds a home, and where its parts listen, for every other command to find."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "up.json"


@dataclass(frozen=True)
class PlatformState:
    """What a running `vigia up` records: its pid, the marker its children carry, and the URL of each part."""

    pid: int
    marker: str
    prefect_api_url: str | None = None
    receiver_url: str | None = None
    dashboard_url: str | None = None
    parts: dict[str, int] = field(default_factory=dict)  # part name -> pid, kept current by the supervisor

    @property
    def prefect_ui_url(self) -> str | None:
        """The Prefect UI, beside its API."""
        return self.prefect_api_url.removesuffix("/api") if self.prefect_api_url else None


def state_path(home: Path) -> Path:
    """Where a home's state file is."""
    return home / STATE_FILE


def read_state(home: Path) -> PlatformState | None:
    """Return the state a `vigia up` recorded in `home`, or None when there is none or it cannot be read."""
    try:
        data = json.loads(state_path(home).read_text())
        return PlatformState(**{key: value for key, value in data.items() if key in PlatformState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def write_state(home: Path, state: PlatformState) -> None:
    """Record `state` atomically: a reader sees the old file or the new one, never half of it."""
    path = state_path(home)
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(json.dumps(asdict(state)))
    os.replace(partial, path)


def remove_state(home: Path, marker: str) -> None:
    """Remove the state file if it is still this run's (a newer `vigia up` may have taken the home)."""
    state = read_state(home)
    if state is not None and state.marker == marker:
        state_path(home).unlink(missing_ok=True)


def running_platform(home: Path) -> PlatformState | None:
    """Return the state of the `vigia up` running on `home`, or None when none is (a stale file is ignored)."""
    state = read_state(home)
    if state is None:
        return None
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by another user
    return state
