"""conversation messages: metadata of every chat message, for the bot's reply time and unanswered chats

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=False),
        sa.Column("chat", sa.String(length=32), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", store.database.UtcDateTime(), nullable=False),
        sa.Column("reply_to", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance", "message_id", name="uq_conversation_messages_instance_message"),
    )
    op.create_index("ix_conversation_messages_at", "conversation_messages", ["at"], unique=False)
    op.create_index("ix_conversation_messages_chat_at", "conversation_messages", ["instance", "chat", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_chat_at", table_name="conversation_messages")
    op.drop_index("ix_conversation_messages_at", table_name="conversation_messages")
    op.drop_table("conversation_messages")
