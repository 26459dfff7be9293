"""voice_notes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("chat_jid", sa.String(length=128), nullable=False),
        sa.Column("sender_jid", sa.String(length=128), nullable=True),
        sa.Column("sent_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("received_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("quoted", sa.Text(), nullable=True),
        sa.Column("mimetype", sa.String(length=100), nullable=True),
        sa.Column("audio_path", sa.Text(), nullable=True),
        sa.Column("audio_bytes", sa.BigInteger(), nullable=True),
        sa.Column("audio_seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_reason", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("run_started_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("audio_fetched_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("transcribed_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("replied_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("reply_message_id", sa.String(length=128), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("reply_claimed_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("notice_claimed_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("notice_message_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance", "message_id", name="uq_voice_notes_instance_message"),
    )
    with op.batch_alter_table("voice_notes", schema=None) as batch_op:
        batch_op.create_index("ix_voice_notes_received_at", ["received_at"], unique=False)
        batch_op.create_index("ix_voice_notes_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voice_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_notes_status")
        batch_op.drop_index("ix_voice_notes_received_at")

    op.drop_table("voice_notes")
