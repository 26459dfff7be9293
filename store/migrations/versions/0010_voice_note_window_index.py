"""voice notes' window reads answered from one index: received_at, then the status and reply time they read

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The response-time and outcome reads of a window touch every note in it; with the columns they read in
    # the index, no note's row is looked up (received_at alone stays its prefix: the same range searches).
    op.drop_index("ix_voice_notes_received_at", table_name="voice_notes")
    op.create_index("ix_voice_notes_received_at", "voice_notes", ["received_at", "status", "replied_at"])


def downgrade() -> None:
    op.drop_index("ix_voice_notes_received_at", table_name="voice_notes")
    op.create_index("ix_voice_notes_received_at", "voice_notes", ["received_at"])
