"""probe hours kept once, in (hour, target) order: every read and delete of the roll-ups is a range of hours

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

import store.database

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COLUMNS = ("target", "hour", "up_seconds", "down_seconds", "maintenance_seconds", "unknown_seconds", "probes", "probes_failed")
COLUMNS += ("probes_warning", "probes_critical", "latency_count", "latency_sum_ms", "latency_max_ms", "latency_le_50_ms")
COLUMNS += ("latency_le_100_ms", "latency_le_250_ms", "latency_le_500_ms", "latency_le_1000_ms", "latency_le_2500_ms")
COLUMNS += ("latency_le_5000_ms", "latency_over_5000_ms")


def upgrade() -> None:
    # Was: rows by rowid, a (target, hour) primary key and an hour index, three copies of 175 k rows a year.
    # Now the primary key (hour, target) is the table (SQLite: WITHOUT ROWID; PostgreSQL: its one index).
    _rebuild(("hour", "target"), with_rowid=False, key_name="pk_probe_hours")


def downgrade() -> None:
    _rebuild(("target", "hour"), with_rowid=True, key_name="probe_hours_pkey")  # PostgreSQL's name for 0008's key
    op.create_index("ix_probe_hours_hour", "probe_hours", ["hour"], unique=False)


def _rebuild(key: tuple[str, str], *, with_rowid: bool, key_name: str) -> None:
    integers = set(COLUMNS[6:11]) | set(COLUMNS[13:])
    columns = [
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("hour", store.database.UtcDateTime(), nullable=False),
        *(sa.Column(name, sa.Integer() if name in integers else sa.Float(), nullable=name == "latency_max_ms") for name in COLUMNS[2:]),
    ]
    # PostgreSQL: a key's name is an index's, unique in the schema while both tables exist; renamed below.
    postgresql = op.get_bind().dialect.name == "postgresql"
    name = f"{key_name}_new" if postgresql else key_name
    op.create_table("probe_hours_new", *columns, sa.PrimaryKeyConstraint(*key, name=name), sqlite_with_rowid=with_rowid)
    names = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO probe_hours_new ({names}) SELECT {names} FROM probe_hours")
    op.drop_table("probe_hours")  # its indexes with it
    op.rename_table("probe_hours_new", "probe_hours")
    if postgresql:
        op.execute(f"ALTER TABLE probe_hours RENAME CONSTRAINT {key_name}_new TO {key_name}")
