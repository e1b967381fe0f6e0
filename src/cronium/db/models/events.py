"""Events, their server targets and their conditional actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cronium.db.models.base import (
    ActionTrigger,
    ActionType,
    Base,
    EventStatus,
    EventType,
    Language,
    MisfirePolicy,
    OverlapPolicy,
    ScheduleKind,
    created_at_column,
    id_column,
    pg_enum,
    updated_at_column,
)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_events_owner_name"),
        CheckConstraint("timeout_seconds > 0", name="timeout_positive"),
        CheckConstraint("retries >= 0", name="retries_non_negative"),
        CheckConstraint(
            "interval_seconds IS NULL OR interval_seconds > 0", name="interval_positive"
        ),
        Index("ix_events_tags", "tags", postgresql_using="gin"),
        # The scheduler scans only active, scheduled events ordered by their next fire.
        Index(
            "ix_events_next_fire_at",
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
    type: Mapped[EventType] = mapped_column(pg_enum(EventType, "event_type"), nullable=False)
    language: Mapped[Language | None] = mapped_column(pg_enum(Language, "script_language"))
    content: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    http_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    tool_spec: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[EventStatus] = mapped_column(
        pg_enum(EventStatus, "event_status"), nullable=False, server_default="draft"
    )

    schedule_kind: Mapped[ScheduleKind] = mapped_column(
        pg_enum(ScheduleKind, "schedule_kind"), nullable=False, server_default="manual"
    )
    cron: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    interval_seconds: Mapped[int | None] = mapped_column(Integer)
    run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_fire_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_executions: Mapped[int | None] = mapped_column(Integer)
    execution_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    reset_counter_on_activate: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    misfire_policy: Mapped[MisfirePolicy] = mapped_column(
        pg_enum(MisfirePolicy, "misfire_policy"), nullable=False, server_default="run_once"
    )
    misfire_window_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="3600"
    )
    overlap_policy: Mapped[OverlapPolicy] = mapped_column(
        pg_enum(OverlapPolicy, "overlap_policy"), nullable=False, server_default="allow"
    )
    max_concurrent: Mapped[int | None] = mapped_column(Integer)

    timeout_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3600")
    retries: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    retry_backoff_seconds: Mapped[int] = mapped_column(Integer, nullable=False, server_default="10")

    run_local: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # Encrypted JSON object {name: value}; the names are also kept in clear for display.
    env_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    env_keys: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    image: Mapped[str | None] = mapped_column(String(500))
    cpu: Mapped[float | None] = mapped_column(Float)
    memory_mb: Mapped[int | None] = mapped_column(Integer)
    pids: Mapped[int | None] = mapped_column(Integer)
    network: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")

    # Per-event log/execution retention; None falls back to the global settings.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    retention_count: Mapped[int | None] = mapped_column(Integer)

    webhook_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    webhook_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    webhook_secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)

    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class EventServer(Base):
    """An event runs on each linked server (plus locally when `run_local`)."""

    __tablename__ = "event_servers"

    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class EventAction(Base):
    """A conditional action: after a run ends, run another event or send a tool message."""

    __tablename__ = "event_actions"

    id: Mapped[int] = id_column()
    event_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    on: Mapped[ActionTrigger] = mapped_column(
        pg_enum(ActionTrigger, "action_trigger"), nullable=False
    )
    condition: Mapped[bool | None] = mapped_column(Boolean)
    type: Mapped[ActionType] = mapped_column(pg_enum(ActionType, "action_type"), nullable=False)
    target_event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tool_credentials.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str | None] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
