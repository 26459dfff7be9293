"""A synthetic, deterministic history for demos, the dashboard and the benchmarks (`vigia demo-data`).

Twenty targets probed every 5 minutes with outages (some past the 30-minute recovery target), one
maintenance window and one stretch with no probes at all; voice notes with a realistic latency
distribution and some failures; daily backups growing in size, one failed; weekly test restores;
alerts and their deliveries. The same seed gives the same history.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.conversations import pair_messages
from store.demo_conversations import conversation_rows
from store.models import (
    AlertRow,
    BackupItemRow,
    BackupRunRow,
    ConversationMessageRow,
    DeliveryRow,
    HealthRunRow,
    IncidentRow,
    ProbeResultRow,
    RestoreRow,
    SilenceRow,
    StateChangeRow,
    TargetStateRow,
    VoiceNoteRow,
)

PROBE_EVERY = timedelta(minutes=5)
CONFIRM_AFTER = timedelta(minutes=2)
# name, kind, critical, outages per 30 days
TARGETS = (
    ("evolution-api", "evolution", True, 3),
    ("groq", "groq", True, 2),
    ("postgres", "postgres", True, 1),
    ("redis", "redis", True, 1),
    ("vigia-store", "postgres", True, 0.5),
    ("prefect", "prefect", False, 1),
    ("disk", "disk", False, 0.5),
    ("memory", "memory", False, 1),
    ("queue", "queue", False, 2),
    ("bot-webhook", "http", True, 2),
    ("crm-api", "http", False, 3),
    ("n8n-legacy", "http", False, 4),
    ("payments-api", "http", False, 1),
    ("smtp", "tcp", False, 1),
    ("openai-proxy", "http", False, 2),
    ("typebot", "http", False, 2),
    ("chatwoot", "http", False, 2),
    ("minio", "tcp", False, 1),
    ("status-page", "http", False, 0.5),
    ("landing", "http", False, 1),
)
FAILURE_REASONS = (("groq-rate-limited", 5), ("groq-timeout", 3), ("fetch-failed", 2), ("groq-auth", 1), ("too-large", 1))
CHANNELS = (("tgram://1234…/", "telegram"), ("discord://98…/", "discord"), ("mailtos://ops@…", "email"))


@dataclass(frozen=True)
class DemoSummary:
    """How many rows of each kind the generator wrote."""

    start: datetime
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)


def seed_history(
    session: Session, *, days: int, seed: int = 7, now: datetime | None = None, notes_per_day: int = 280, chats_per_day: int = 0
) -> DemoSummary:
    """Fill an empty store with `days` of synthetic history ending at `now`.

    Raises:
        ValueError: when the store already holds probe results or voice notes (demo data never
            mixes with real history), or `days` is not positive.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if session.scalar(select(func.count()).select_from(ProbeResultRow)) or session.scalar(select(func.count()).select_from(VoiceNoteRow)):
        raise ValueError("the store already holds history; demo data only goes into an empty store")
    end = _floor(now or datetime.now(timezone.utc))
    start = end - timedelta(days=days)
    rng = random.Random(seed)
    summary = DemoSummary(start, end)
    gap = (start + timedelta(days=days * 0.4), start + timedelta(days=days * 0.4, minutes=40))  # Vigia itself was down
    maintenance = (start + timedelta(days=days * 0.6, hours=1), start + timedelta(days=days * 0.6, hours=3))
    _write_targets(session, rng, start, end, gap, maintenance, summary)
    _write_voice_notes(session, rng, start, end, notes_per_day, summary)
    _write_backups(session, rng, start, end, summary)
    _insert(session, ConversationMessageRow, conversation_rows(rng, start, end, chats_per_day), summary)
    pair_messages(session, start)
    return summary


def _write_targets(session, rng, start, end, gap, maintenance, summary) -> None:
    changes, states, runs = [], [], []
    steps = int((end - start) / PROBE_EVERY)
    for name, kind, critical, per_month in TARGETS:
        outages = _outages(rng, start, end, per_month)
        planned = (maintenance[0] + timedelta(minutes=20), maintenance[0] + timedelta(minutes=50))
        if name == "postgres":
            outages.append(planned)  # the upgrade the silence announced: excluded from uptime, alerts held
            session.add(SilenceRow(target=name, starts_at=maintenance[0], ends_at=maintenance[1], reason="PostgreSQL 16 upgrade"))
        outages = _merged(outages)
        changes.append(
            dict(
                target=name,
                old_state=None,
                new_state="UP",
                old_level=None,
                new_level="ok",
                reason="first probe",
                at=start,
                incident_id=None,
            )
        )
        for opened, resolved in outages:
            incident = _write_incident(session, rng, name, critical, opened, resolved, changes)
            summary.rows["incidents"] = summary.rows.get("incidents", 0) + 1
            if (opened, resolved) != planned:
                _write_alerts(session, rng, name, critical, incident, opened, resolved, summary)
        latency_base = {"http": 180, "groq": 320, "evolution": 140}.get(kind, 4)
        cursor, probes = 0, []
        for step in range(steps):
            at = start + step * PROBE_EVERY + timedelta(seconds=round(rng.uniform(0, 4), 1))
            if gap[0] <= at < gap[1]:
                continue
            while cursor < len(outages) and outages[cursor][1] <= at:
                cursor += 1
            down = cursor < len(outages) and outages[cursor][0] <= at < outages[cursor][1]
            latency = round(latency_base * math.exp(rng.gauss(0, 0.35)), 1)
            probes.append(
                dict(
                    target=name,
                    at=at,
                    ok=not down,
                    level="critical" if down else "ok",
                    latency_ms=None if down else latency,
                    value=None,
                    reason="connection refused" if down else None,
                    run_id=None,
                )
            )
        states.append(
            dict(
                target=name,
                kind=kind,
                critical=critical,
                state="UP",
                level="ok",
                since=outages[-1][1] if outages else start,
                failing_since=None,
                last_probe_at=probes[-1]["at"],
                reason=None,
                incident_id=None,
                version=1,
            )
        )
        _insert(session, ProbeResultRow, probes, summary)  # one target at a time keeps a year's probes out of memory
    for step in range(steps):
        at = start + step * PROBE_EVERY
        if not gap[0] <= at < gap[1]:
            runs.append(dict(run_id=None, started_at=at, finished_at=at + timedelta(seconds=2), targets_total=len(TARGETS), targets_down=0))
    _insert(session, StateChangeRow, changes, summary)
    _insert(session, TargetStateRow, states, summary)
    _insert(session, HealthRunRow, runs, summary)


def _outages(rng, start, end, per_month) -> list[tuple[datetime, datetime]]:
    expected = per_month * (end - start) / timedelta(days=30)
    count = sum(1 for _ in range(int(expected * 4)) if rng.random() < 0.25) if expected >= 1 else int(rng.random() < expected)
    outages = []
    for _ in range(count):
        opened = start + (end - start - timedelta(hours=3)) * rng.random()
        minutes = min(rng.lognormvariate(math.log(9), 0.9), 150)  # median 9 min, a tail past 30 min
        outages.append((_floor(opened), _floor(opened) + timedelta(minutes=round(minutes, 1))))
    return outages


def _merged(outages: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for opened, resolved in sorted(outages):
        if merged and opened <= merged[-1][1] + PROBE_EVERY:
            merged[-1] = (merged[-1][0], max(merged[-1][1], resolved))
        else:
            merged.append((opened, resolved))
    return merged


def _write_incident(session, rng, target, critical, opened, resolved, changes) -> IncidentRow:
    incident = IncidentRow(
        target=target,
        critical=critical,
        reason="connection refused",
        opened_at=opened,
        confirmed_at=opened + CONFIRM_AFTER,
        resolved_at=resolved,
        acknowledged_at=opened + timedelta(minutes=12) if resolved - opened > timedelta(minutes=15) and rng.random() < 0.6 else None,
    )
    session.add(incident)
    session.flush()
    level = "critical" if critical else "warning"
    changes.append(
        dict(
            target=target,
            old_state="UP",
            new_state="PENDING",
            old_level="ok",
            new_level=level,
            reason="connection refused",
            at=opened,
            incident_id=incident.id,
        )
    )
    if resolved - opened >= CONFIRM_AFTER:
        changes.append(
            dict(
                target=target,
                old_state="PENDING",
                new_state="DOWN",
                old_level=level,
                new_level=level,
                reason="connection refused",
                at=opened + CONFIRM_AFTER,
                incident_id=incident.id,
            )
        )
    changes.append(
        dict(
            target=target,
            old_state="DOWN" if resolved - opened >= CONFIRM_AFTER else "PENDING",
            new_state="UP",
            old_level=level,
            new_level="ok",
            reason="answered",
            at=resolved,
            incident_id=incident.id,
        )
    )
    return incident


def _write_alerts(session, rng, target, critical, incident, opened, resolved, summary) -> None:
    if resolved - opened < CONFIRM_AFTER:
        return  # a blip that recovered while PENDING alerts nobody
    severity = "critical" if critical else "warning"
    for kind, at in (("down", opened + CONFIRM_AFTER), ("resolved", resolved)):
        alert = AlertRow(
            key=f"{kind}:{incident.id}",
            kind=kind,
            severity=severity,
            title=f"[{severity.upper()}] {target} {kind.upper()}",
            body=f"{target} {'is DOWN: connection refused' if kind == 'down' else 'recovered'}",
            target=target,
            incident_id=incident.id,
            status="sent",
            held_reason=None,
            run_id=None,
            created_at=at,
        )
        session.add(alert)
        session.flush()
        failed = 0
        for channel, service in CHANNELS[: 2 if critical else 1]:
            status = "failure" if rng.random() < 0.04 else "success"
            failed += status != "success"
            session.add(
                DeliveryRow(
                    alert_id=alert.id,
                    channel=channel,
                    service=service,
                    status=status,
                    reason="HTTP 502 from the provider" if status == "failure" else None,
                    attempts=1 if status == "success" else 3,
                    elapsed_ms=round(rng.uniform(120, 900), 1),
                    at=at,
                )
            )
        alert.status = "sent" if not failed else "partial"
        summary.rows["alerts"] = summary.rows.get("alerts", 0) + 1


def _write_voice_notes(session, rng, start, end, per_day, summary) -> None:
    hours = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.6, 1.8, 1.8, 1.7, 1.5, 1.6, 1.7, 1.7, 1.6, 1.5, 1.4, 1.3, 1.1, 0.9, 0.6, 0.4]
    notes = []
    day = start
    while day < end:
        for _ in range(per_day):
            hour = rng.choices(range(24), weights=hours)[0]
            received = day.replace(hour=0, minute=0, second=0) + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
            if not start <= received < end:
                continue
            notes.append(_voice_note(rng, len(notes), received))
        day += timedelta(days=1)
    _insert(session, VoiceNoteRow, notes, summary)


def _voice_note(rng, number, received) -> dict:
    audio = round(min(rng.lognormvariate(math.log(12), 0.8), 600), 1)
    fetched = received + timedelta(seconds=rng.uniform(0.15, 0.6))
    note = dict(
        instance="main",
        message_id=f"DEMO{number:08X}",
        chat_jid=f"55119{rng.randrange(10**7, 10**8)}@s.whatsapp.net",
        sender_jid=None,
        sent_at=received - timedelta(seconds=rng.uniform(0.2, 2)),
        received_at=received,
        quoted=None,
        mimetype="audio/ogg; codecs=opus",
        audio_path=None,
        audio_bytes=int(audio * 2000),
        audio_seconds=audio,
        status="replied",
        error_reason=None,
        error=None,
        flow_run_id=None,
        run_started_at=received + timedelta(seconds=0.1),
        audio_fetched_at=fetched,
        transcribed_at=None,
        replied_at=None,
        reply_message_id=None,
        transcript=None,
        attempts=1,
    )
    roll = rng.random()
    if audio < 1:
        return note | dict(status="skipped", error_reason="too-short")
    if roll < 0.007:
        reason = rng.choices([r for r, _ in FAILURE_REASONS], weights=[w for _, w in FAILURE_REASONS])[0]
        return note | dict(status="failed", error_reason=reason, error=f"transcription failed: {reason}")
    transcribed = fetched + timedelta(
        seconds=0.4 + audio * 0.04 * math.exp(rng.gauss(0, 0.5)) + (rng.uniform(3, 14) if roll > 0.985 else 0)
    )
    replied = transcribed + timedelta(seconds=rng.uniform(0.15, 0.5))
    return note | dict(transcribed_at=transcribed, replied_at=replied, reply_message_id=f"REPLY{number:08X}")


def _write_backups(session, rng, start, end, summary) -> None:
    size = 180 * 2**20
    day = start.replace(hour=6, minute=0, second=0, microsecond=0)  # 03:00 in São Paulo
    failed_day = rng.randrange(2, max(3, (end - start).days))
    runs = items = restores = 0
    for index in range(int((end - day) / timedelta(days=1)) + 1):
        started = day + timedelta(days=index)
        if not start <= started < end - timedelta(minutes=10):
            continue
        size = int(size * rng.uniform(1.002, 1.008))
        failed = index == failed_day
        dump, upload, verify = size / 95e6, size / 60e6, size / 70e6
        finished = started + timedelta(seconds=dump + upload + verify)
        run_id = started.strftime("%Y-%m-%dT%H%M%SZ")
        session.add(
            BackupRunRow(
                id=run_id,
                started_at=started,
                finished_at=finished,
                status="failed" if failed else "verified",
                verified=not failed,
                local_dir=f"backups/{run_id}",
                remote=f"remote:vigia-backups/{run_id}",
                size_bytes=None if failed else size,
                dump_seconds=round(dump, 1),
                upload_seconds=None if failed else round(upload, 1),
                verify_seconds=None if failed else round(verify, 1),
                error="remote unreachable: connection refused" if failed else None,
            )
        )
        session.flush()
        shares = (
            ("postgres-app", "postgres", 0.82, "dump"),
            ("redis", "redis", 0.08, "rdb.zst"),
            ("vigia-store", "store", 0.06, "db.zst"),
            ("config", "files", 0.04, "tar.zst"),
        )
        for source, kind, share, ext in shares:
            session.add(
                BackupItemRow(
                    run_id=run_id,
                    source=source,
                    kind=kind,
                    file_name=f"{source}.{ext}",
                    size_bytes=int(size * share),
                    sha256=f"{rng.getrandbits(256):064x}",
                    seconds=round(dump * share, 2),
                    verified=not failed,
                    detail=None if failed else "tables and row counts match",
                )
            )
            items += 1
        runs += 1
        if not failed and index % 7 == 3:
            seconds = round(size / 40e6 + rng.uniform(5, 30), 1)
            session.add(
                RestoreRow(
                    run_id=run_id,
                    source="postgres-app",
                    target="postgresql://postgres@127.0.0.1/restore_drill",
                    started_at=finished + timedelta(minutes=5),
                    finished_at=finished + timedelta(minutes=5, seconds=seconds),
                    seconds=seconds,
                    status="restored",
                )
            )
            restores += 1
    summary.rows.update(backup_runs=runs, backup_items=items, restores=restores)


def _insert(session: Session, model, rows: list[dict], summary: DemoSummary) -> None:
    """Insert many rows at once: COPY on PostgreSQL (millions of probes), executemany elsewhere."""
    summary.rows[model.__tablename__] = summary.rows.get(model.__tablename__, 0) + len(rows)
    if not rows:
        return
    columns = list(rows[0])
    if session.get_bind().dialect.name != "postgresql":
        for start in range(0, len(rows), 20_000):
            session.execute(insert(model), rows[start : start + 20_000])
        return
    session.flush()
    cursor = session.connection().connection.driver_connection.cursor()
    with cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_naive(row[column]) for column in columns])


def _naive(value):
    return value.astimezone(timezone.utc).replace(tzinfo=None) if isinstance(value, datetime) else value


def _floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) - timedelta(minutes=moment.minute % 5)
