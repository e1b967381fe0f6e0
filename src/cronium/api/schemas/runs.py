"""Executions, jobs and log lines (DESIGN §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from cronium.api.schemas.common import Body, Out
from cronium.db.models import ExecutionStatus, JobStatus, LogStream, Trigger


class RunIn(Body):
    input: Any = Field(
        default=None, description="Input for this run; the event's default input when omitted."
    )


class RunOut(Body):
    execution_id: int


class JobOut(Out):
    id: int
    target: str
    server_id: int | None
    status: JobStatus
    attempt: int
    max_attempts: int
    exit_code: int | None
    error: str | None
    output: Any = None
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionOut(Out):
    id: int
    event_id: int
    owner_id: int
    status: ExecutionStatus
    trigger: Trigger
    triggered_by: str | None
    triggered_by_user_id: int | None
    parent_execution_id: int | None
    scheduled_for: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    input: Any = None
    output: Any = None
    condition: bool | None
    error: str | None
    jobs: list[JobOut] = Field(default_factory=list)


class LogLineOut(Body):
    seq: int
    stream: LogStream
    ts: datetime
    target: str
    line: str


class LogsOut(Body):
    items: list[LogLineOut]
    next_after: int


class CancelOut(Body):
    execution_id: int
    status: ExecutionStatus
