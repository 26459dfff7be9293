"""voice notes' spooled audio found by its path: the receiver's spool sweep asks which files notes still name

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    spooled = sa.text("audio_path IS NOT NULL")  # only notes whose audio is still on disk: a few, whatever the history
    op.create_index("ix_voice_notes_audio_path", "voice_notes", ["audio_path"], sqlite_where=spooled, postgresql_where=spooled)


def downgrade() -> None:
    op.drop_index("ix_voice_notes_audio_path", table_name="voice_notes")
