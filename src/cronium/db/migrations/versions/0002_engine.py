"""engine: job admission, log sequence, schedule fires, nodes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 02:25:06.930878
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new enum value cannot be used in the transaction that adds it (the partial index
    # below names it), so add it in its own committed block.
    with op.get_context().autocommit_block():
        op.execute("ALTER TYPE job_status ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'queued'")
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "schedule_fires",
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("fire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome", sa.Enum("fired", "missed", "skipped", name="fire_outcome"), nullable=False
        ),
        sa.Column("execution_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("lag_ms", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_schedule_fires_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_schedule_fires_execution_id_executions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("event_id", "fire_time", name=op.f("pk_schedule_fires")),
    )
    op.add_column("events", sa.Column("retention_days", sa.Integer(), nullable=True))
    op.add_column("events", sa.Column("retention_count", sa.Integer(), nullable=True))
    op.add_column(
        "executions", sa.Column("log_seq", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("jobs", sa.Column("event_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE jobs SET event_id = e.event_id FROM executions e WHERE e.id = jobs.execution_id"
    )
    op.alter_column("jobs", "event_id", nullable=False)
    op.add_column(
        "jobs",
        sa.Column("retry_backoff_seconds", sa.Integer(), server_default="10", nullable=False),
    )
    op.drop_index(
        op.f("ix_jobs_ready"), table_name="jobs", postgresql_where="(status = 'queued'::job_status)"
    )
    op.create_index(
        "ix_jobs_ready",
        "jobs",
        [sa.literal_column("priority DESC"), "run_after", "id"],
        unique=False,
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index(
        "ix_jobs_event_open",
        "jobs",
        ["event_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('waiting', 'queued', 'running')"),
    )
    op.create_foreign_key(
        op.f("fk_jobs_event_id_events"), "jobs", "events", ["event_id"], ["id"], ondelete="CASCADE"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_jobs_event_id_events"), "jobs", type_="foreignkey")
    op.drop_index(
        "ix_jobs_event_open",
        table_name="jobs",
        postgresql_where=sa.text("status IN ('waiting', 'queued', 'running')"),
    )
    op.drop_index("ix_jobs_ready", table_name="jobs", postgresql_where=sa.text("status = 'queued'"))
    op.create_index(
        op.f("ix_jobs_ready"),
        "jobs",
        ["priority", "run_after", "id"],
        unique=False,
        postgresql_where="(status = 'queued'::job_status)",
    )
    op.drop_column("jobs", "retry_backoff_seconds")
    op.drop_column("jobs", "event_id")
    op.drop_column("executions", "log_seq")
    op.drop_column("events", "retention_count")
    op.drop_column("events", "retention_days")
    op.drop_table("schedule_fires")
    op.drop_table("nodes")
    op.execute("DROP TYPE IF EXISTS fire_outcome")
    # job_status keeps its 'waiting' value: PostgreSQL cannot drop an enum value.
