"""Event bodies as in the design contract (DESIGN §10)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

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
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID = 2**63 - 1  # PostgreSQL bigint
MAX_INT = 2**31 - 1  # PostgreSQL integer


def _strip_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


def _json_safe(value: Any, path: str = "") -> Any:
    """JSON that PostgreSQL's jsonb stores: no NUL characters, no NaN or Infinity."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'}: text must not contain NUL characters (\\u0000)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path or 'value'}: numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}".lstrip(".")
            _json_safe(key, where)
            _json_safe(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_safe(item, f"{path}[{index}]")
    return value


def _storable_time(value: datetime | None) -> datetime | None:
    """An aware datetime that exists in UTC (year 1 to 9999 after conversion)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("needs a timezone, e.g. 2030-01-01T09:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: use a time between years 1 and 9999 (UTC)") from None


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_strip_name)]
Text = Annotated[str, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_safe)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
AwareTime = Annotated[datetime, AfterValidator(_storable_time)]


class ManualSchedule(Body):
    kind: Literal["manual"]


class CronSchedule(Body):
    kind: Literal["cron"]
    cron: Annotated[str, Field(min_length=1, max_length=200)]
    timezone: Annotated[str, Field(max_length=64)] = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        normalised: str = _reraise(validate_cron, value)
        return normalised

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
    at: AwareTime


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
    headers: dict[Annotated[str, Field(max_length=256)], Annotated[str, Field(max_length=8192)]] = (
        Field(default_factory=dict)
    )
    body: Any = None
    timeout_seconds: Annotated[int | None, Field(gt=0, le=3600)] = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlparse

        if CONTROL_CHARS.search(value) or " " in value:
            raise ValueError("must not contain spaces or control characters")
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if CONTROL_CHARS.search(header.replace("\t", "")):
                raise ValueError(
                    f"header {name!r}: the value must not contain line breaks or control characters"
                )
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        return _json_safe(value)


class ToolSpec(Body):
    credential_id: Id
    action: Annotated[Text, Field(min_length=1, max_length=100)]
    params: JsonObject = Field(default_factory=dict)


class Targets(Body):
    local: bool = True
    server_ids: Annotated[list[Id], Field(max_length=200)] = Field(default_factory=list)


class Resources(Body):
    cpu: Annotated[float | None, Field(gt=0, le=64)] = None
    memory_mb: Annotated[int | None, Field(ge=6, le=1024 * 1024)] = None
    pids: Annotated[int | None, Field(ge=16, le=100_000)] = None


class ActionIn(Body):
    on: ActionTrigger
    type: ActionType
    condition: bool | None = None
    event_id: Id | None = None
    credential_id: Id | None = None
    action: Annotated[Text | None, Field(max_length=100)] = None
    params: JsonObject = Field(default_factory=dict)

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
    description: Annotated[Text, Field(max_length=10_000)] = ""
    type: EventType = EventType.script
    language: Language | None = Field(default=None, validate_default=True)
    content: Text = ""
    http: HttpSpec | None = Field(default=None, validate_default=True)
    tool: ToolSpec | None = Field(default=None, validate_default=True)
    status: EventStatus = EventStatus.draft
    schedule: Schedule = Field(default_factory=lambda: ManualSchedule(kind="manual"))
    start_at: AwareTime | None = None
    max_executions: Annotated[int | None, Field(ge=1, le=MAX_INT)] = None
    reset_counter_on_activate: bool = False
    misfire_policy: MisfirePolicy = MisfirePolicy.run_once
    misfire_window_seconds: Annotated[int, Field(ge=1, le=30 * 24 * 3600)] = 3600
    overlap_policy: OverlapPolicy = OverlapPolicy.allow
    max_concurrent: Annotated[int | None, Field(ge=1, le=1000)] = None
    timeout_seconds: Annotated[int, Field(ge=1, le=7 * 24 * 3600)] = 3600
    retries: Annotated[int, Field(ge=0, le=20)] = 0
    retry_backoff_seconds: Annotated[int, Field(ge=0, le=24 * 3600)] = 10
    targets: Targets = Field(default_factory=Targets, validate_default=True)
    env: dict[str, Annotated[Text, Field(max_length=65_536)]] | None = None
    input: JsonObject = Field(default_factory=dict)
    image: Annotated[str | None, Field(max_length=500)] = None
    resources: Resources = Field(default_factory=Resources)
    network: bool = False
    tags: Annotated[list[Annotated[Name, Field(max_length=50)]], Field(max_length=30)] = Field(
        default_factory=list
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
        return list(dict.fromkeys(value))  # each tag is stripped and non-blank (Name)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_REF.match(value):
            raise ValueError(f"{value!r} is not a valid image reference")
        return value

    @field_validator("language", "http", "tool", "targets")
    @classmethod
    def _needed_for_type(cls, value: Any, info: ValidationInfo) -> Any:
        """What the event's type needs, reported on the field that is missing."""
        kind = info.data.get("type")  # absent when 'type' itself was invalid
        if kind is EventType.script and info.field_name == "language" and value is None:
            raise ValueError("a script event needs 'language': bash, python or node")
        if kind is EventType.http and info.field_name == "http" and value is None:
            raise ValueError("an http event needs 'http': {method, url, headers, body}")
        if kind is EventType.tool and info.field_name == "tool" and value is None:
            raise ValueError("a tool event needs 'tool': {credential_id, action, params}")
        is_targets = info.field_name == "targets"
        if kind is EventType.script and is_targets and not value.local and not value.server_ids:
            raise ValueError("choose local and/or at least one server")
        return value


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
