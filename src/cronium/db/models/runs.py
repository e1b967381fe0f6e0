"""Executions (one triggering of an event), their jobs (one per target) and log lines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cronium.db.models.base import (
    Base,
    ExecutionStatus,
    FireOutcome,
    JobStatus,
    LogStream,
    Trigger,
    created_at_column,
    id_column,
    pg_enum,
)


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        # One execution per (event, fire time): two schedulers can never double-fire.
        Index(
            "uq_executions_event_fire",
            "event_id",
            "scheduled_for",
            unique=True,
            postgresql_where=text("scheduled_for IS NOT NULL"),
        ),
        Index("ix_executions_event_created", "event_id", "created_at"),
        Index("ix_executions_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[int] = id_column()
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[ExecutionStatus] = mapped_column(
        pg_enum(ExecutionStatus, "execution_status"), nullable=False, server_default="queued"
    )
    trigger: Mapped[Trigger] = mapped_column(pg_enum(Trigger, "execution_trigger"), nullable=False)
    triggered_by_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    parent_execution_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="SET NULL")
    )
    chain_depth: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Set when the execution is a node of a workflow run: settling it advances the run.
    workflow_run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("workflow_runs.id", ondelete="SET NULL"), index=True
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    input: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default="{}")
    output: Mapped[Any | None] = mapped_column(JSONB)
    condition: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    # Last log sequence number handed out; jobs reserve ranges of it (several nodes).
    log_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """The queue: one row per (execution, target); claimed with SKIP LOCKED."""

    __tablename__ = "jobs"
    __table_args__ = (
        # Partial index of ready rows: the claim query reads only this.
        Index(
            "ix_jobs_ready",
            text("priority DESC"),
            "run_after",
            "id",
            postgresql_where=text("status = 'queued'"),
        ),
        # Admission control counts an event's open jobs.
        Index(
            "ix_jobs_event_open",
            "event_id",
            postgresql_where=text("status IN ('waiting', 'queued', 'running')"),
        ),
        Index(
            "ix_jobs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = id_column()
    execution_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    server_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("servers.id", ondelete="SET NULL")
    )
    status: Mapped[JobStatus] = mapped_column(
        pg_enum(JobStatus, "job_status"), nullable=False, server_default="queued"
    )
    priority: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    retry_backoff_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="10")
    run_after: Mapped[datetime] = created_at_column()
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # SHA-256 of the execution token minted when the job starts; valid while it runs.
    runtime_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    mode: Mapped[str | None] = mapped_column(String(16))  # container | local | ssh | http
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    output: Mapped[Any | None] = mapped_column(JSONB)
    condition: Mapped[bool | None] = mapped_column(Boolean)
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LogLine(Base):
    __tablename__ = "log_lines"
    __table_args__ = (UniqueConstraint("execution_id", "seq", name="uq_log_lines_execution_seq"),)

    id: Mapped[int] = id_column()
    execution_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    job_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    stream: Mapped[LogStream] = mapped_column(pg_enum(LogStream, "log_stream"), nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    ts: Mapped[datetime] = created_at_column()
    line: Mapped[str] = mapped_column(Text, nullable=False)


class ScheduleFire(Base):
    """One row per (event, fire time): fired, missed (downtime) or skipped (overlap)."""

    __tablename__ = "schedule_fires"

    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    fire_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    outcome: Mapped[FireOutcome] = mapped_column(
        pg_enum(FireOutcome, "fire_outcome"), nullable=False
    )
    execution_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="SET NULL")
    )
    recorded_at: Mapped[datetime] = created_at_column()
    lag_ms: Mapped[float | None] = mapped_column(Float)


class Node(Base):
    """A running Cronium process; rows are refreshed by heartbeats and shown in monitoring."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    roles: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[str] = mapped_column(String(50), nullable=False)
    started_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime] = created_at_column()


class ActionDelivery(Base):
    """Outbox of tool actions: written when an execution settles, sent by a worker."""

    __tablename__ = "action_deliveries"
    __table_args__ = (
        UniqueConstraint("execution_id", "action_id", name="uq_action_deliveries_execution_action"),
        Index(
            "ix_action_deliveries_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = id_column()
    execution_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="CASCADE"), nullable=False
    )
    action_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("event_actions.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = created_at_column()
    result: Mapped[Any | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
