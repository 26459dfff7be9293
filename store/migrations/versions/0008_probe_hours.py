"""probe hours: hourly roll-ups of probes per target, and the mark of the hours rolled up

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

HISTOGRAM = ("latency_le_50_ms", "latency_le_100_ms", "latency_le_250_ms", "latency_le_500_ms")
HISTOGRAM += ("latency_le_1000_ms", "latency_le_2500_ms", "latency_le_5000_ms", "latency_over_5000_ms")


def upgrade() -> None:
    op.create_table(
        "probe_hours",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("hour", store.database.UtcDateTime(), nullable=False),
        sa.Column("up_seconds", sa.Float(), nullable=False),
        sa.Column("down_seconds", sa.Float(), nullable=False),
        sa.Column("maintenance_seconds", sa.Float(), nullable=False),
        sa.Column("unknown_seconds", sa.Float(), nullable=False),
        sa.Column("probes", sa.Integer(), nullable=False),
        sa.Column("probes_failed", sa.Integer(), nullable=False),
        sa.Column("probes_warning", sa.Integer(), nullable=False),
        sa.Column("probes_critical", sa.Integer(), nullable=False),
        sa.Column("latency_count", sa.Integer(), nullable=False),
        sa.Column("latency_sum_ms", sa.Float(), nullable=False),
        sa.Column("latency_max_ms", sa.Float(), nullable=True),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in HISTOGRAM),
        sa.PrimaryKeyConstraint("target", "hour"),
    )
    op.create_index("ix_probe_hours_hour", "probe_hours", ["hour"], unique=False)
    op.create_table(
        "rollup_marks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("rolled_from", store.database.UtcDateTime(), nullable=True),
        sa.Column("rolled_until", store.database.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("rollup_marks")
    op.drop_index("ix_probe_hours_hour", table_name="probe_hours")
    op.drop_table("probe_hours")
