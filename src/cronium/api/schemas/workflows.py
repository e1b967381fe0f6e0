"""Workflows and their runs (DESIGN §10): the graph by node names, runs with per-node detail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from cronium.api.schemas.common import Body
from cronium.api.schemas.events import (
    AwareTime,
    Id,
    JsonObject,
    ManualSchedule,
    Name,
    Schedule,
    Text,
    WebhookIn,
    WebhookOut,
)
from cronium.db.models import (
    ActionTrigger,
    EventStatus,
    ExecutionStatus,
    MisfirePolicy,
    NodeRunStatus,
    Trigger,
)

NodeName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\- ]+$")]


class Position(Body):
    x: Annotated[float, Field(ge=-1e6, le=1e6)] = 0
    y: Annotated[float, Field(ge=-1e6, le=1e6)] = 0


class NodeIn(Body):
    key: NodeName = Field(description="The node's name in this workflow; edges use it.")
    event_id: Id
    input: JsonObject | None = Field(
        default=None, description="Laid over the input the node receives (its keys win)."
    )
    position: Position = Field(default_factory=Position)


class EdgeIn(Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: NodeName = Field(alias="from", description="Key of the node the edge leaves.")
    target: NodeName = Field(alias="to", description="Key of the node the edge enters.")
    type: ActionTrigger = ActionTrigger.on_success
    condition: bool | None = None

    @model_validator(mode="after")
    def _condition_matches_type(self) -> EdgeIn:
        if self.type is ActionTrigger.on_condition and self.condition is None:
            raise ValueError("an on_condition edge needs 'condition': true or false")
        if self.type is not ActionTrigger.on_condition and self.condition is not None:
            raise ValueError("'condition' is only for on_condition edges")
        return self


class WorkflowIn(Body):
    name: Name
    description: Annotated[Text, Field(max_length=10_000)] = ""
    status: EventStatus = EventStatus.draft
    tags: Annotated[list[Annotated[Name, Field(max_length=50)]], Field(max_length=30)] = Field(
        default_factory=list
    )
    input: JsonObject = Field(default_factory=dict)
    schedule: Schedule = Field(default_factory=lambda: ManualSchedule(kind="manual"))
    start_at: AwareTime | None = None
    misfire_policy: MisfirePolicy = MisfirePolicy.run_once
    nodes: Annotated[list[NodeIn], Field(max_length=500)] = Field(default_factory=list)
    edges: Annotated[list[EdgeIn], Field(max_length=2000)] = Field(default_factory=list)
    webhook: WebhookIn = Field(default_factory=WebhookIn)

    @field_validator("misfire_policy")
    @classmethod
    def _no_run_all(cls, value: MisfirePolicy) -> MisfirePolicy:
        if value is MisfirePolicy.run_all:
            raise ValueError("workflows support 'skip' and 'run_once'")
        return value


class WorkflowPatch(Body):
    """Every field optional; `nodes` and `edges` replace the whole graph (send both)."""

    name: Name | None = None
    description: str | None = None
    status: EventStatus | None = None
    tags: list[str] | None = None
    input: dict[str, Any] | None = None
    schedule: Schedule | None = None
    start_at: datetime | None = None
    misfire_policy: MisfirePolicy | None = None
    nodes: list[NodeIn] | None = None
    edges: list[EdgeIn] | None = None
    webhook: WebhookIn | None = None


class NodeOut(Body):
    id: int
    key: str
    event_id: int
    input: dict[str, Any] | None
    position: dict[str, Any]


class EdgeOut(Body):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    source: str = Field(serialization_alias="from")
    target: str = Field(serialization_alias="to")
    type: ActionTrigger
    condition: bool | None


class WorkflowOut(Body):
    id: int
    owner_id: int
    name: str
    description: str
    status: EventStatus
    tags: list[str]
    input: dict[str, Any]
    schedule: dict[str, Any]
    start_at: datetime | None
    next_fire_at: datetime | None
    misfire_policy: MisfirePolicy
    nodes: list[NodeOut]
    edges: list[EdgeOut]
    webhook: WebhookOut
    created_at: datetime
    updated_at: datetime


class NodeRunOut(Body):
    node_id: int
    key: str
    event_id: int
    status: NodeRunStatus
    execution_id: int | None
    input: Any = None
    output: Any = None
    condition: bool | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class WorkflowRunOut(Body):
    id: int
    workflow_id: int
    owner_id: int
    status: ExecutionStatus
    trigger: Trigger
    triggered_by: str | None
    scheduled_for: datetime | None
    input: Any = None
    cancel_requested: bool
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    nodes: list[NodeRunOut] = Field(default_factory=list)


class WorkflowRunStarted(Body):
    run_id: int
