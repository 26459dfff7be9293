"""health check: probes, states, changes, incidents, runs

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("finished_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("targets_total", sa.Integer(), nullable=False),
        sa.Column("targets_down", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("health_runs", schema=None) as batch_op:
        batch_op.create_index("ix_health_runs_finished_at", ["finished_at"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("confirmed_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("acknowledged_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("acknowledge_reason", sa.Text(), nullable=True),
        sa.Column("resolved_at", store.database.UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_target_opened", ["target", "opened_at"], unique=False)

    op.create_table(
        "probe_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("at", store.database.UtcDateTime(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("probe_results", schema=None) as batch_op:
        batch_op.create_index("ix_probe_results_at", ["at"], unique=False)
        batch_op.create_index("ix_probe_results_target_at", ["target", "at"], unique=False)

    op.create_table(
        "state_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("old_state", sa.String(length=12), nullable=True),
        sa.Column("new_state", sa.String(length=12), nullable=False),
        sa.Column("old_level", sa.String(length=10), nullable=True),
        sa.Column("new_level", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", store.database.UtcDateTime(), nullable=False),
        sa.Column("root_cause", sa.String(length=64), nullable=True),
        sa.Column("incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("processed_at", store.database.UtcDateTime(), nullable=True),
        sa.Column("processed_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("state_changes", schema=None) as batch_op:
        batch_op.create_index("ix_state_changes_processed_at", ["processed_at"], unique=False)
        batch_op.create_index("ix_state_changes_target_at", ["target", "at"], unique=False)

    op.create_table(
        "target_states",
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("critical", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("since", store.database.UtcDateTime(), nullable=False),
        sa.Column("failing_since", store.database.UtcDateTime(), nullable=True),
        sa.Column("last_probe_at", store.database.UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("incident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
        ),
        sa.PrimaryKeyConstraint("target"),
    )


def downgrade() -> None:
    op.drop_table("target_states")
    with op.batch_alter_table("state_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_state_changes_target_at")
        batch_op.drop_index("ix_state_changes_processed_at")

    op.drop_table("state_changes")
    with op.batch_alter_table("probe_results", schema=None) as batch_op:
        batch_op.drop_index("ix_probe_results_target_at")
        batch_op.drop_index("ix_probe_results_at")

    op.drop_table("probe_results")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_target_opened")

    op.drop_table("incidents")
    with op.batch_alter_table("health_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_health_runs_finished_at")

    op.drop_table("health_runs")
