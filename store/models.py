"""SQLAlchemy models of the store; the schema itself changes only through migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.database import UtcDateTime

# BIGINT ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ProbeResultRow(Base):
    """One probe of one target."""

    __tablename__ = "probe_results"
    __table_args__ = (Index("ix_probe_results_target_at", "target", "at"), Index("ix_probe_results_at", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    level: Mapped[str] = mapped_column(String(10))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))


class ProbeHourRow(Base):
    """One target's probes over one whole UTC hour, rolled up: the same uptime figures as its raw rows."""

    __tablename__ = "probe_hours"
    # Every read and delete is a range of hours over all targets: the primary key (hour, target) is the table
    # itself (SQLite: WITHOUT ROWID), with no index beside it.
    __table_args__ = (PrimaryKeyConstraint("hour", "target", name="pk_probe_hours"), {"sqlite_with_rowid": False})

    target: Mapped[str] = mapped_column(String(64))
    hour: Mapped[datetime] = mapped_column(UtcDateTime())  # the hour's start
    up_seconds: Mapped[float] = mapped_column(Float)
    down_seconds: Mapped[float] = mapped_column(Float)
    maintenance_seconds: Mapped[float] = mapped_column(Float)
    unknown_seconds: Mapped[float] = mapped_column(Float)
    probes: Mapped[int] = mapped_column(Integer)
    probes_failed: Mapped[int] = mapped_column(Integer)
    probes_warning: Mapped[int] = mapped_column(Integer)
    probes_critical: Mapped[int] = mapped_column(Integer)
    latency_count: Mapped[int] = mapped_column(Integer)
    latency_sum_ms: Mapped[float] = mapped_column(Float)
    latency_max_ms: Mapped[float | None] = mapped_column(Float)
    # A fixed-bucket histogram (store.probe_hours.LATENCY_BOUNDS_MS): probes with latency in (previous bound, bound].
    latency_le_50_ms: Mapped[int] = mapped_column(Integer)
    latency_le_100_ms: Mapped[int] = mapped_column(Integer)
    latency_le_250_ms: Mapped[int] = mapped_column(Integer)
    latency_le_500_ms: Mapped[int] = mapped_column(Integer)
    latency_le_1000_ms: Mapped[int] = mapped_column(Integer)
    latency_le_2500_ms: Mapped[int] = mapped_column(Integer)
    latency_le_5000_ms: Mapped[int] = mapped_column(Integer)
    latency_over_5000_ms: Mapped[int] = mapped_column(Integer)


class RollupMarkRow(Base):
    """Which whole hours a roll-up covers, [rolled_from, rolled_until); moved with a conditional UPDATE."""

    __tablename__ = "rollup_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    rolled_from: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rolled_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class IncidentRow(Base):
    """An outage of one target: opened at its first failure, resolved at its first success."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_target_opened", "target", "opened_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    critical: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    confirmed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acknowledge_reason: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TargetStateRow(Base):
    """The current state of one target; `version` guards every update against overlapping runs."""

    __tablename__ = "target_states"

    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    critical: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(12))
    level: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime] = mapped_column(UtcDateTime())
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_probe_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    version: Mapped[int] = mapped_column(Integer)


class StateChangeRow(Base):
    """A change of state or level of one target, like healthchecks' Flip; consumed by alerting."""

    __tablename__ = "state_changes"
    __table_args__ = (
        Index("ix_state_changes_target_at", "target", "at"),
        Index("ix_state_changes_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    old_state: Mapped[str | None] = mapped_column(String(12))
    new_state: Mapped[str] = mapped_column(String(12))
    old_level: Mapped[str | None] = mapped_column(String(10))
    new_level: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    root_cause: Mapped[str | None] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    run_id: Mapped[str | None] = mapped_column(String(36))
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    processed_by: Mapped[str | None] = mapped_column(String(64))


class HealthRunRow(Base):
    """A completed health-check run, for `/health` freshness and the run history."""

    __tablename__ = "health_runs"
    __table_args__ = (Index("ix_health_runs_finished_at", "finished_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime())
    targets_total: Mapped[int] = mapped_column(Integer)
    targets_down: Mapped[int] = mapped_column(Integer)


class SilenceRow(Base):
    """A maintenance window: notifications for the target are held and the time is MAINTENANCE."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_target_ends", "target", "ends_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    reason: Mapped[str] = mapped_column(Text)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AlertRow(Base):
    """One alert raised: sent, held back (silence, inhibition) or only logged."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_created_at", "created_at"), Index("ix_alerts_incident", "incident_id"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(10))
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(64))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    status: Mapped[str] = mapped_column(String(10))
    held_reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DeliveryRow(Base):
    """One delivery attempt of an alert to one Apprise target (privacy URL only, never a secret)."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_alert", "alert_id"), Index("ix_deliveries_at", "at"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    channel: Mapped[str] = mapped_column(Text)
    service: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    elapsed_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertKeyRow(Base):
    """When an alert key last fired: the atomic claim behind once-only alerts and cooldowns."""

    __tablename__ = "alert_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BackupRunRow(Base):
    """One backup run: its sources, where it went, and whether it was verified by a restore."""

    __tablename__ = "backup_runs"
    __table_args__ = (Index("ix_backup_runs_started_at", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 2026-11-22T030000Z, the remote folder
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16))  # running, failed, uploaded, verified
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    local_dir: Mapped[str] = mapped_column(Text)
    remote: Mapped[str | None] = mapped_column(Text)  # remote folder, credentials never included
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    dump_seconds: Mapped[float | None] = mapped_column(Float)
    upload_seconds: Mapped[float | None] = mapped_column(Float)
    verify_seconds: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    local_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    remote_deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BackupItemRow(Base):
    """One source captured by a backup run: one file, its checksum and its verification."""

    __tablename__ = "backup_items"
    __table_args__ = (UniqueConstraint("run_id", "source", name="uq_backup_items_run_source"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("backup_runs.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # postgres, redis, files, store
    file_name: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    seconds: Mapped[float | None] = mapped_column(Float)
    verified: Mapped[bool | None] = mapped_column(Boolean)
    detail: Mapped[str | None] = mapped_column(Text)  # verification result or error, no secrets


class RestoreRow(Base):
    """One restore of one backup item into a target; its duration is measured against the RTO."""

    __tablename__ = "restores"
    __table_args__ = (Index("ix_restores_started_at", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)  # masked
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    seconds: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # running, restored, failed
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))


SPOOLED = text("audio_path IS NOT NULL")


class VoiceNoteRow(Base):
    """One WhatsApp voice note from the webhook to the reply: stored before the receiver answers 202."""

    __tablename__ = "voice_notes"
    __table_args__ = (
        UniqueConstraint("instance", "message_id", name="uq_voice_notes_instance_message"),
        # The window reads (store.sla.transcriptions) find all they need here, without reading the rows.
        Index("ix_voice_notes_received_at", "received_at", "status", "replied_at"),
        Index("ix_voice_notes_status", "status"),
        Index("ix_voice_notes_lease_token", "lease_token"),
        # The audio still on disk, for the receiver's spool sweep (deployments/spool_sweep.py).
        Index("ix_voice_notes_audio_path", "audio_path", sqlite_where=SPOOLED, postgresql_where=SPOOLED),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(128))  # Evolution's key.id
    chat_jid: Mapped[str] = mapped_column(String(128))  # where the reply goes (key.remoteJid)
    sender_jid: Mapped[str | None] = mapped_column(String(128))  # key.participant in groups
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # data.messageTimestamp
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    quoted: Mapped[str | None] = mapped_column(Text)  # JSON {key, message} the reply quotes
    mimetype: Mapped[str | None] = mapped_column(String(100))
    audio_path: Mapped[str | None] = mapped_column(Text)  # spooled audio, deleted after the reply
    audio_bytes: Mapped[int | None] = mapped_column(BigInteger)
    audio_seconds: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # received, running, replied, skipped, failed
    error_reason: Mapped[str | None] = mapped_column(String(32))  # e.g. groq-auth, too-large, timeout
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36))
    run_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    audio_fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    transcribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    replied_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reply_message_id: Mapped[str | None] = mapped_column(String(128))
    transcript: Mapped[str | None] = mapped_column(Text)  # kept only with VIGIA_KEEP_TRANSCRIPTS=true
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Claims, each taken with a conditional UPDATE so overlapping runs never act twice:
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # unused since the queue's leases (0005)
    # The queue's lease: a transcriber (or a manual run) holds the note until `lease_expires_at`, renewing it while it works.
    lease_token: Mapped[str | None] = mapped_column(String(64))  # the claim's token: the flow run's id once it exists
    lease_holder: Mapped[str | None] = mapped_column(String(128))  # host/pid of the holder, for people
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reply_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the transcript reply is being sent
    notice_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the failure notice is being sent
    notice_message_id: Mapped[str | None] = mapped_column(String(128))  # the failure notice sent, at most once


ANSWERS_ONLY = text("direction != 'customer'")


class ConversationMessageRow(Base):
    """One message of a bot's chats, without its content: who spoke (customer, bot, human agent), what kind, when.

    The chat is a keyed hash (HMAC-SHA256 with VIGIA_HOME's conversation key), never the phone number.
    """

    __tablename__ = "conversation_messages"
    __table_args__ = (
        UniqueConstraint("instance", "message_id", name="uq_conversation_messages_instance_message"),
        Index("ix_conversation_messages_at", "at"),
        Index("ix_conversation_messages_chat_at", "instance", "chat", "at"),
        # The answers alone, for pairing: a chat's customer messages are not walked to find the bot's next answer.
        Index("ix_conversation_messages_answers", "instance", "chat", "at", sqlite_where=ANSWERS_ONLY, postgresql_where=ANSWERS_ONLY),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    instance: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(128))
    chat: Mapped[str] = mapped_column(String(32))  # keyed hash of the chat JID
    direction: Mapped[str] = mapped_column(String(8))  # customer, bot, agent
    kind: Mapped[str] = mapped_column(String(16))  # text, audio, image, video, document, sticker, reaction, other
    at: Mapped[datetime] = mapped_column(UtcDateTime())  # data.messageTimestamp, else when it arrived
    reply_to: Mapped[str | None] = mapped_column(String(128))  # contextInfo.stanzaId: the message it quotes
    # A customer message's pairing, kept by store.conversations.insert_messages: the next answer in the chat
    # (bot or agent) and the message before it; None on answers, or when there is none (yet).
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    previous_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
