"""Declarative base, naming convention and enums mirrored in the database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Enum, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


def pg_enum(enum_cls: type[StrEnum], name: str) -> Enum:
    """A PostgreSQL enum whose values are the StrEnum values (not the member names)."""
    return Enum(
        enum_cls,
        name=name,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def id_column() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def updated_at_column() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Role(StrEnum):
    admin = "admin"
    user = "user"
    viewer = "viewer"


class EventType(StrEnum):
    script = "script"
    http = "http"
    tool = "tool"


class Language(StrEnum):
    bash = "bash"
    python = "python"
    node = "node"


class EventStatus(StrEnum):
    draft = "draft"
    active = "active"
    paused = "paused"
    archived = "archived"


class ScheduleKind(StrEnum):
    manual = "manual"
    cron = "cron"
    interval = "interval"
    once = "once"


class MisfirePolicy(StrEnum):
    skip = "skip"
    run_once = "run_once"
    run_all = "run_all"


class OverlapPolicy(StrEnum):
    allow = "allow"
    skip = "skip"
    queue = "queue"


class ActionTrigger(StrEnum):
    on_success = "on_success"
    on_failure = "on_failure"
    always = "always"
    on_condition = "on_condition"


class ActionType(StrEnum):
    run_event = "run_event"
    tool = "tool"


class ExecutionStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    cancelled = "cancelled"
    partial = "partial"


class NodeRunStatus(StrEnum):
    """A workflow node in one run: execution statuses plus not-yet and never."""

    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    cancelled = "cancelled"
    partial = "partial"
    skipped = "skipped"


class JobStatus(StrEnum):
    waiting = "waiting"  # admitted later: the event is at its concurrency limit
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    cancelled = "cancelled"


class Trigger(StrEnum):
    manual = "manual"
    schedule = "schedule"
    webhook = "webhook"
    action = "action"
    workflow = "workflow"


class ServerAuthType(StrEnum):
    key = "key"
    password = "password"


class ServerStatus(StrEnum):
    unknown = "unknown"
    online = "online"
    offline = "offline"


class ToolKind(StrEnum):
    slack = "slack"
    discord = "discord"
    teams = "teams"
    email = "email"
    webhook = "webhook"


class FireOutcome(StrEnum):
    fired = "fired"
    missed = "missed"
    skipped = "skipped"


class LogStream(StrEnum):
    stdout = "stdout"
    stderr = "stderr"
    system = "system"


TERMINAL_JOB_STATUSES = frozenset(
    {JobStatus.succeeded, JobStatus.failed, JobStatus.timed_out, JobStatus.cancelled}
)
