"""Generic HTTP webhook: method, headers, JSON or raw body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from cronium.tools import http
from cronium.tools.base import ActionCall, ActionResult, Config, Params, Tool, ToolError, secret

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def http_url(value: str) -> str:
    """Shared by the tools that post to a URL: absolute http(s), nothing else."""
    value = value.strip()
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


class WebhookConfig(Config):
    url: str = Field(
        max_length=2000, json_schema_extra=secret("Where requests go (http or https).")
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra=secret("Headers sent with every request (e.g. Authorization)."),
    )
    method: Method = Field("POST", description="Default method when an action gives none.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


class SendParams(Params):
    method: Method | None = Field(None, description="Defaults to the credential's method.")
    path: str = Field("", max_length=2000, description="Appended to the credential's URL.")
    query: dict[str, str] = Field(default_factory=dict, description="Query string parameters.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers.")
    json_body: Any = Field(None, alias="json", description="JSON body.")
    body: str | None = Field(None, description="Raw body (instead of json).")
    content_type: str | None = Field(None, description="Content-Type of a raw body.")


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send":
        raise ToolError(f"webhook has no action {call.action!r}", permanent=True)
    config = WebhookConfig.model_validate(call.config)
    params = SendParams.model_validate(call.params)
    if params.json_body is not None and params.body is not None:
        raise ToolError(
            "give either 'json' or 'body', not both", permanent=True, reason="bad_params"
        )
    headers = {**config.headers, **params.headers}
    if params.content_type:
        headers["Content-Type"] = params.content_type
    resp = await http.send(
        params.method or config.method,
        config.url + params.path,
        timeout_s=call.timeout_s,
        headers=headers,
        json=params.json_body,
        content=params.body,
        params=params.query or None,
    )
    return http.result(resp, "the webhook")


def _test_params(config: dict[str, Any]) -> dict[str, Any]:
    return {"json": {"text": "Cronium test message", "test": True}}


TOOL = Tool(
    kind="webhook",
    title="HTTP webhook",
    description="Any HTTP endpoint: method, headers, JSON or raw body.",
    config=WebhookConfig,
    actions={"send": SendParams},
    run=run,
    test_action="send",
    test_params=_test_params,
)
