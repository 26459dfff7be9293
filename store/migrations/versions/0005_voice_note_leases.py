"""voice note leases: the transcription queue's claims

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voice_notes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_holder", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", store.database.UtcDateTime(), nullable=True))
        batch_op.create_index("ix_voice_notes_lease_token", ["lease_token"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("voice_notes", schema=None) as batch_op:
        batch_op.drop_index("ix_voice_notes_lease_token")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_holder")
        batch_op.drop_column("lease_token")
