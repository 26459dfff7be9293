"""backups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("started_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("finished_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("local_dir", sa.Text(), nullable=False),
        sa.Column("remote", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("dump_seconds", sa.Float(), nullable=True),
        sa.Column("upload_seconds", sa.Float(), nullable=True),
        sa.Column("verify_seconds", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.Column("local_deleted_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("remote_deleted_at", store.database.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backup_runs", schema=None) as batch_op:
        batch_op.create_index("ix_backup_runs_started_at", ["started_at"], unique=False)

    op.create_table(
        "restores",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("started_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("finished_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("restores", schema=None) as batch_op:
        batch_op.create_index("ix_restores_started_at", ["started_at"], unique=False)

    op.create_table(
        "backup_items",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["backup_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "source", name="uq_backup_items_run_source"),
    )


def downgrade() -> None:
    op.drop_table("backup_items")
    with op.batch_alter_table("restores", schema=None) as batch_op:
        batch_op.drop_index("ix_restores_started_at")

    op.drop_table("restores")
    with op.batch_alter_table("backup_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_backup_runs_started_at")

    op.drop_table("backup_runs")
