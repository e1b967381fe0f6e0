"""Event bodies as in the design contract (DESIGN §10)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from cronium.api.schemas.common import Body, Out
from cronium.db.models import (
    ActionTrigger,
    ActionType,
    EventStatus,
    EventType,
    Language,
    MisfirePolicy,
    OverlapPolicy,
)
from cronium.domain.schedules import parse_timezone, validate_cron

MAX_SCRIPT_BYTES = 1024 * 1024
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_REF = re.compile(r"^[a-z0-9]+([._/:@-][a-zA-Z0-9_.-]+)*$")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _strip_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_strip_name)]


class ManualSchedule(Body):
    kind: Literal["manual"]


class CronSchedule(Body):
    kind: Literal["cron"]
    cron: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: Annotated[str, Field(max_length=64)] = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _reraise(validate_cron, value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        _reraise(parse_timezone, value)
        return value


class IntervalSchedule(Body):
    kind: Literal["interval"]
    every_seconds: Annotated[int, Field(gt=0, le=366 * 24 * 3600)]


class OnceSchedule(Body):
    kind: Literal["once"]
    at: datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2030-01-01T09:00:00Z")
        return value


Schedule = Annotated[
    ManualSchedule | CronSchedule | IntervalSchedule | OnceSchedule, Field(discriminator="kind")
]


def _reraise(fn: Any, value: str) -> Any:
    """Turn a domain ValidationFailed into a pydantic ValueError so it lands on the field."""
    from cronium.errors import ValidationFailed

    try:
        return fn(value)
    except ValidationFailed as exc:
        raise ValueError(exc.message) from None


class HttpSpec(Body):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    url: Annotated[str, Field(min_length=1, max_length=4096)]
    headers: dict[str, Annotated[str, Field(max_length=8192)]] = Field(default_factory=dict)
    body: Any = None
    timeout_seconds: Annotated[int | None, Field(gt=0, le=3600)] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlparse

        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value


class ToolSpec(Body):
    credential_id: int
    action: Annotated[str, Field(min_length=1, max_length=100)]
    params: dict[str, Any] = Field(default_factory=dict)


class Targets(Body):
    local: bool = True
    server_ids: Annotated[list[int], Field(max_length=200)] = Field(default_factory=list)


class Resources(Body):
    cpu: Annotated[float | None, Field(gt=0, le=64)] = None
    memory_mb: Annotated[int | None, Field(ge=6, le=1024 * 1024)] = None
    pids: Annotated[int | None, Field(ge=16, le=100_000)] = None


class ActionIn(Body):
    on: ActionTrigger
    type: ActionType
    condition: bool | None = None
    event_id: int | None = None
    credential_id: int | None = None
    action: Annotated[str | None, Field(max_length=100)] = None
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> ActionIn:
        if self.on is ActionTrigger.on_condition and self.condition is None:
            raise ValueError("an on_condition action needs 'condition': true or false")
        if self.on is not ActionTrigger.on_condition and self.condition is not None:
            raise ValueError("'condition' is only for on_condition actions")
        if self.type is ActionType.run_event and self.event_id is None:
            raise ValueError("a run_event action needs 'event_id'")
        if self.type is ActionType.tool and (self.credential_id is None or not self.action):
            raise ValueError("a tool action needs 'credential_id' and 'action'")
        return self


class WebhookIn(Body):
    enabled: bool = False
    secret: Annotated[str | None, Field(min_length=16, max_length=256)] = None
    regenerate_key: bool = False


class EventIn(Body):
    """A whole event; PATCH merges its fields into the stored event and validates this."""

    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    type: EventType = EventType.script
    language: Language | None = None
    content: str = ""
    http: HttpSpec | None = None
    tool: ToolSpec | None = None
    status: EventStatus = EventStatus.draft
    schedule: Schedule = Field(default_factory=lambda: ManualSchedule(kind="manual"))
    start_at: datetime | None = None
    max_executions: Annotated[int | None, Field(ge=1)] = None
    reset_counter_on_activate: bool = False
    misfire_policy: MisfirePolicy = MisfirePolicy.run_once
    misfire_window_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] = 3600
    overlap_policy: OverlapPolicy = OverlapPolicy.allow
    max_concurrent: Annotated[int | None, Field(ge=1, le=1000)] = None
    timeout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 3600
    retries: Annotated[int, Field(ge=0, le=20)] = 0
    retry_backoff_seconds: Annotated[int, Field(ge=0, le=24 * 3600)] = 10
    targets: Targets = Field(default_factory=Targets)
    env: dict[str, Annotated[str, Field(max_length=65_536)]] | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    image: Annotated[str | None, Field(max_length=500)] = None
    resources: Resources = Field(default_factory=Resources)
    network: bool = False
    tags: Annotated[list[Annotated[str, Field(min_length=1, max_length=50)]], Field(max_length=30)] = (
        Field(default_factory=list)
    )
    actions: Annotated[list[ActionIn], Field(max_length=50)] = Field(default_factory=list)
    webhook: WebhookIn = Field(default_factory=WebhookIn)

    @field_validator("content")
    @classmethod
    def _size(cls, value: str) -> str:
        size = len(value.encode())
        if size > MAX_SCRIPT_BYTES:
            raise ValueError(f"script is {size} bytes; the limit is {MAX_SCRIPT_BYTES} (1 MiB)")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.upper().startswith("CRONIUM_"):
                raise ValueError(f"{key!r}: names starting with CRONIUM_ are reserved")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for tag in value:
            tag = tag.strip()
            if not tag:
                raise ValueError("tags must not be blank")
            seen.setdefault(tag, None)
        return list(seen)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_REF.match(value):
            raise ValueError(f"{value!r} is not a valid image reference")
        return value

    @field_validator("start_at")
    @classmethod
    def _aware_start(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a timezone, e.g. 2030-01-01T09:00:00Z")
        return value

    @model_validator(mode="after")
    def _type_fields(self) -> EventIn:
        if self.type is EventType.script:
            if self.language is None:
                raise ValueError("a script event needs 'language': bash, python or node")
        elif self.type is EventType.http:
            if self.http is None:
                raise ValueError("an http event needs 'http': {method, url, headers, body}")
        elif self.type is EventType.tool and self.tool is None:
            raise ValueError("a tool event needs 'tool': {credential_id, action, params}")
        if self.type is EventType.script and not self.targets.local and not self.targets.server_ids:
            raise ValueError("targets: choose local and/or at least one server")
        return self


class EventPatch(Body):
    """Every field optional; given fields replace the stored ones."""

    name: Name | None = None
    description: str | None = None
    type: EventType | None = None
    language: Language | None = None
    content: str | None = None
    http: HttpSpec | None = None
    tool: ToolSpec | None = None
    status: EventStatus | None = None
    schedule: Schedule | None = None
    start_at: datetime | None = None
    max_executions: int | None = None
    reset_counter_on_activate: bool | None = None
    misfire_policy: MisfirePolicy | None = None
    misfire_window_seconds: int | None = None
    overlap_policy: OverlapPolicy | None = None
    max_concurrent: int | None = None
    timeout_seconds: int | None = None
    retries: int | None = None
    retry_backoff_seconds: int | None = None
    targets: Targets | None = None
    env: dict[str, str] | None = None
    input: dict[str, Any] | None = None
    image: str | None = None
    resources: Resources | None = None
    network: bool | None = None
    tags: list[str] | None = None
    actions: list[ActionIn] | None = None
    webhook: WebhookIn | None = None


class ActionOut(Out):
    id: int
    on: ActionTrigger
    type: ActionType
    condition: bool | None
    event_id: int | None
    credential_id: int | None
    action: str | None
    params: dict[str, Any]


class WebhookOut(Body):
    enabled: bool
    key: str | None
    has_secret: bool


class EventOut(Body):
    id: int
    owner_id: int
    name: str
    description: str
    type: EventType
    language: Language | None
    content: str
    http: dict[str, Any] | None
    tool: dict[str, Any] | None
    status: EventStatus
    schedule: dict[str, Any]
    start_at: datetime | None
    next_fire_at: datetime | None
    max_executions: int | None
    execution_count: int
    reset_counter_on_activate: bool
    misfire_policy: MisfirePolicy
    misfire_window_seconds: int
    overlap_policy: OverlapPolicy
    max_concurrent: int | None
    timeout_seconds: int
    retries: int
    retry_backoff_seconds: int
    targets: Targets
    env_keys: list[str] = Field(description="Names of the stored env vars; values are write-only.")
    input: dict[str, Any]
    image: str | None
    resources: Resources
    network: bool
    tags: list[str]
    actions: list[ActionOut]
    webhook: WebhookOut
    created_at: datetime
    updated_at: datetime
