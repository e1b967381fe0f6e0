"""Tool credentials, saved action templates and the tool catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from cronium.api.schemas.common import Body, Out
from cronium.api.schemas.events import JsonObject, Name, Text
from cronium.api.schemas.resources import Description
from cronium.db.models import ToolKind

ActionName = Annotated[Text, Field(min_length=1, max_length=100)]


class CredentialIn(Body):
    name: Name
    tool: ToolKind
    config: JsonObject = Field(
        description="The tool's credential fields (GET /tools shows each tool's schema)."
    )


class CredentialPatch(Body):
    name: Name | None = None
    config: JsonObject | None = Field(
        default=None,
        description="Merged into the stored config: given keys replace, null removes one, "
        "omitted keys (secret ones included) keep their stored value.",
    )


class CredentialOut(Out):
    id: int
    owner_id: int
    name: str
    tool: ToolKind
    config: dict[str, Any] = Field(description="The non-secret fields only.")
    configured_keys: list[str] = Field(
        description="Every field that has a value, secret ones included (values never shown)."
    )
    created_at: datetime
    updated_at: datetime


class CredentialTestIn(Body):
    action: ActionName | None = Field(
        default=None, description="Defaults to the tool's message action."
    )
    params: JsonObject = Field(
        default_factory=dict,
        description="Merged over the default test message (e.g. {'to': …} for email).",
    )


class ToolErrorOut(Out):
    code: str = Field(
        description="connection_failed, timeout, rejected, auth_failed, rate_limited, "
        "server_error, bad_config, bad_params, template_error, template_forbidden, …"
    )
    message: str
    status: int | None = Field(default=None, description="The receiver's HTTP status.")


class ActionOutcomeOut(Out):
    ok: bool
    tool: str | None
    action: str
    credential_id: int | None
    attempts: int
    duration_ms: int
    result: dict[str, Any] | None
    error: ToolErrorOut | None


class ActionTemplateIn(Body):
    name: Name
    tool: ToolKind
    action: ActionName
    params: JsonObject = Field(default_factory=dict, description="Templates allowed.")
    description: Description = ""


class ActionTemplatePatch(Body):
    name: Name | None = None
    action: ActionName | None = None
    params: JsonObject | None = None
    description: Description | None = None


class ActionTemplateOut(Out):
    id: int
    owner_id: int
    name: str
    tool: ToolKind
    action: str
    params: dict[str, Any]
    description: str
    created_at: datetime
    updated_at: datetime


class ToolActionOut(Out):
    name: str
    qualified_name: str = Field(description="What an event's tool spec or action names.")
    params_schema: dict[str, Any] = Field(description="JSON Schema of the parameters.")


class ToolOut(Out):
    tool: str
    title: str
    description: str
    credential_schema: dict[str, Any] = Field(description="JSON Schema of the config.")
    secret_fields: list[str] = Field(description="Config fields that are never returned.")
    actions: list[ToolActionOut]


def _sample_event() -> dict[str, Any]:
    return {"id": 1, "name": "nightly backup", "type": "bash", "tags": ["sample"]}


def _sample_execution() -> dict[str, Any]:
    return {
        "id": 1,
        "status": "failed",
        "trigger": "schedule",
        "error": "exit code 1",
        "condition": None,
        "started_at": "2026-01-01T03:00:00+00:00",
        "finished_at": "2026-01-01T03:00:05+00:00",
    }


class TemplateSample(Body):
    """Made-up run data a template is rendered with when testing or previewing it."""

    event: JsonObject | None = Field(default_factory=_sample_event)
    execution: JsonObject | None = Field(default_factory=_sample_execution)
    output: Any = Field(default_factory=lambda: {"size": "1.2 GB"})
    input: JsonObject = Field(default_factory=dict)


class ActionTemplateTestIn(Body):
    credential_id: int | None = Field(
        default=None,
        description="The owner's credential to send with; default: their only one of the tool.",
    )
    sample: TemplateSample = Field(default_factory=TemplateSample)
    params: JsonObject = Field(
        default_factory=dict, description="Merged over the template's params (e.g. {'to': …})."
    )


class ActionTemplatePreviewIn(Body):
    tool: ToolKind
    action: ActionName
    params: JsonObject = Field(default_factory=dict)
    sample: TemplateSample = Field(default_factory=TemplateSample)


class ActionTemplatePreviewOut(Out):
    ok: bool
    params: dict[str, Any] | None = Field(description="The parameters as they would be sent.")
    error: ToolErrorOut | None
