"""Vigia's own events in Prefect's Event Feed, beside the runs: targets going DOWN and recovering, backups,
restores, voice notes. Users can build automations on them (`vigia.target.down`, resource `vigia.target.<name>`).

Each event's id is derived from what it is about (a target's change at its time, a backup run, a restore
run, a WhatsApp message), never from a store row id that a fresh or restored store would hand out again,
so a re-run that emits it again adds nothing: Prefect keeps the first event with an id. Emitting never raises
into a flow and never waits for the server (Prefect's events worker sends in the background); it is only
done inside runs, so a command run while Prefect is down (`vigia restore`) never tries. No payload holds a
secret, a phone number or a message's text.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prefect.events import emit_event

from clients.redaction import mask_secrets
from store.states import StateChange
from store.voice_notes import VoiceNote

_NAMESPACE = uuid.UUID("6f1d0a52-4c61-4b8e-9a57-2b0e8d5f3c10")  # Vigia's: event ids are uuid5 of what they are about


def resource(kind: str, name: str) -> dict[str, str]:
    """A Vigia resource as Prefect's events name one: `vigia.<kind>.<name>`, labelled with its name."""
    return {"prefect.resource.id": f"vigia.{kind}.{name}", "prefect.resource.name": name}


def emit_target_change(change: StateChange) -> None:
    """`vigia.target.down` when a target turns DOWN, `vigia.target.recovered` when a DOWN target is UP again."""
    if change.new_state == "DOWN" and change.old_state != "DOWN":
        name = "vigia.target.down"
    elif change.old_state == "DOWN" and change.new_state == "UP":
        name = "vigia.target.recovered"
    else:
        return
    payload = {"old_state": change.old_state, "new_state": change.new_state, "reason": mask_secrets(change.reason or "")}
    if change.root_cause:
        payload["root_cause"] = change.root_cause
    identity = f"state-change:{change.target}:{change.new_state}:{change.at.isoformat()}"
    _emit(name, resource("target", change.target), payload, identity, change.at)


def emit_backup(run_id: str, status: str, size_bytes: int, sources: list[str], error: str | None) -> None:
    """`vigia.backup.<status>` (verified, uploaded or failed) for a finished backup run."""
    payload: dict[str, Any] = {"status": status, "size_bytes": size_bytes, "sources": sources}
    if error:
        payload["error"] = mask_secrets(error)
    _emit(f"vigia.backup.{status}", resource("backup", run_id), payload, f"backup:{run_id}")


def emit_restore(run_id: str, source: str, target: str, seconds: float, within_rto: bool, flow_run_id: str | None) -> None:
    """`vigia.restore.done` for a restore run that restored an item (`target` already masked)."""
    payload = {
        "backup_run": run_id,
        "source": source,
        "target": mask_secrets(target),
        "seconds": round(seconds, 1),
        "within_rto": within_rto,
    }
    _emit("vigia.restore.done", resource("restore", f"{run_id}.{source}"), payload, f"restore:{flow_run_id or uuid.uuid4()}")


def emit_voice_note(what: str, note: VoiceNote, at: datetime, **figures: float | None) -> None:
    """`vigia.voice-note.received` (at the webhook's time) or `vigia.voice-note.replied`, once per WhatsApp message."""
    payload = {"instance": note.instance, **{key: round(value, 2) for key, value in figures.items() if value is not None}}
    identity = f"voice-note:{note.instance}:{note.message_id}:{what}"
    _emit(f"vigia.voice-note.{what}", resource("voice-note", str(note.id)), payload, identity, at)


def _emit(name: str, about: dict[str, str], payload: dict[str, Any], identity: str, occurred: datetime | None = None) -> None:
    emit_event(name, resource=about, payload=payload, occurred=occurred, id=uuid.uuid5(_NAMESPACE, identity))
