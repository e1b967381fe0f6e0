"""Workflows: DAGs of events (nodes) joined by typed edges, and their runs.

A workflow run keeps one row per node (`workflow_node_runs`) from the start; the engine
moves each row pending → running (with its execution) → a final state, always under the
run's row lock and in the transaction that settled the parent execution, so a crash
never loses or repeats a node.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cronium.db.models.base import (
    ActionTrigger,
    Base,
    EventStatus,
    ExecutionStatus,
    MisfirePolicy,
    NodeRunStatus,
    ScheduleKind,
    Trigger,
    created_at_column,
    id_column,
    pg_enum,
    updated_at_column,
)


class Workflow(Base):
    __tablename__ = "workflows"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_workflows_owner_name"),
        CheckConstraint(
            "interval_seconds IS NULL OR interval_seconds > 0", name="interval_positive"
        ),
        Index(
            "ix_workflows_next_fire_at",
            "next_fire_at",
            postgresql_where="status = 'active' AND next_fire_at IS NOT NULL",
        ),
    )

    id: Mapped[int] = id_column()
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    status: Mapped[EventStatus] = mapped_column(
        pg_enum(EventStatus, "event_status"), nullable=False, server_default="draft"
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")

    schedule_kind: Mapped[ScheduleKind] = mapped_column(
        pg_enum(ScheduleKind, "schedule_kind"), nullable=False, server_default="manual"
    )
    cron: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    misfire_policy: Mapped[MisfirePolicy] = mapped_column(
        pg_enum(MisfirePolicy, "misfire_policy"), nullable=False, server_default="run_once"
    )

    webhook_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    webhook_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)

    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class WorkflowNode(Base):
    """One step: an event, optional input laid over what it receives, editor position."""

    __tablename__ = "workflow_nodes"
    __table_args__ = (UniqueConstraint("workflow_id", "name", name="uq_workflow_nodes_name"),)

    id: Mapped[int] = id_column()
    workflow_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    input: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    position: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class WorkflowEdge(Base):
    __tablename__ = "workflow_edges"
    __table_args__ = (
        CheckConstraint("source_id <> target_id", name="no_self_loop"),
        CheckConstraint(
            "(type = 'on_condition') = (condition IS NOT NULL)", name="condition_for_on_condition"
        ),
        UniqueConstraint("source_id", "target_id", "type", name="uq_workflow_edges_pair"),
    )

    id: Mapped[int] = id_column()
    workflow_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflow_nodes.id", ondelete="CASCADE"), nullable=False
    )
    target_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflow_nodes.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[ActionTrigger] = mapped_column(
        pg_enum(ActionTrigger, "action_trigger"), nullable=False
    )
    condition: Mapped[bool | None] = mapped_column(Boolean)


class WorkflowRun(Base):
    __tablename__ = "workflow_runs"
    __table_args__ = (
        Index(
            "uq_workflow_runs_fire",
            "workflow_id",
            "scheduled_for",
            unique=True,
            postgresql_where=text("scheduled_for IS NOT NULL"),
        ),
        Index("ix_workflow_runs_workflow_created", "workflow_id", "created_at"),
    )

    id: Mapped[int] = id_column()
    workflow_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflows.id", ondelete="CASCADE"), nullable=False
    )
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[ExecutionStatus] = mapped_column(
        pg_enum(ExecutionStatus, "execution_status"), nullable=False, server_default="running"
    )
    trigger: Mapped[Trigger] = mapped_column(pg_enum(Trigger, "execution_trigger"), nullable=False)
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    triggered_by_user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    input: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default="{}")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WorkflowNodeRun(Base):
    __tablename__ = "workflow_node_runs"
    __table_args__ = (UniqueConstraint("run_id", "node_id", name="uq_workflow_node_runs_node"),)

    id: Mapped[int] = id_column()
    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflow_runs.id", ondelete="CASCADE"), nullable=False
    )
    node_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("workflow_nodes.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[NodeRunStatus] = mapped_column(
        pg_enum(NodeRunStatus, "node_run_status"), nullable=False, server_default="pending"
    )
    execution_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("executions.id", ondelete="SET NULL"), unique=True
    )
    input: Mapped[Any | None] = mapped_column(JSONB)
    output: Mapped[Any | None] = mapped_column(JSONB)
    condition: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
