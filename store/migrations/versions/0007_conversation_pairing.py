"""conversation pairing: each customer message's next answer and previous message, kept at write time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The same pairing store.conversations keeps, for the rows stored before it did.
PAIR = """
UPDATE conversation_messages SET
  answered_at = (
    SELECT min(later.at) FROM conversation_messages AS later
    WHERE later.instance = conversation_messages.instance AND later.chat = conversation_messages.chat
      AND later.direction IN ('bot', 'agent')
      AND later.at >= conversation_messages.at AND (later.at > conversation_messages.at OR later.id > conversation_messages.id)
  ),
  previous_at = (
    SELECT max(earlier.at) FROM conversation_messages AS earlier
    WHERE earlier.instance = conversation_messages.instance AND earlier.chat = conversation_messages.chat
      AND earlier.at <= conversation_messages.at AND (earlier.at < conversation_messages.at OR earlier.id < conversation_messages.id)
  )
WHERE direction = 'customer'
"""


def upgrade() -> None:
    with op.batch_alter_table("conversation_messages") as table:
        table.add_column(sa.Column("answered_at", store.database.UtcDateTime(), nullable=True))
        table.add_column(sa.Column("previous_at", store.database.UtcDateTime(), nullable=True))
    answers_only = sa.text("direction != 'customer'")
    op.create_index(
        "ix_conversation_messages_answers",
        "conversation_messages",
        ["instance", "chat", "at"],
        sqlite_where=answers_only,
        postgresql_where=answers_only,
    )
    op.execute(PAIR)


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_answers", table_name="conversation_messages")
    with op.batch_alter_table("conversation_messages") as table:
        table.drop_column("previous_at")
        table.drop_column("answered_at")
