"""Discord: messages (with embeds) through a channel webhook."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from cronium.tools import http
from cronium.tools.base import ActionCall, ActionResult, Config, Params, Tool, ToolError, secret
from cronium.tools.webhook import http_url

MAX_EMBEDS = 10


class DiscordConfig(Config):
    webhook_url: str = Field(
        max_length=2000, json_schema_extra=secret("Channel webhook URL (…/api/webhooks/…).")
    )
    username: str | None = Field(None, max_length=80, description="Default sender name.")
    avatar_url: str | None = Field(None, max_length=2000, description="Default avatar.")

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


class Embed(Params):
    model_config = Params.model_config | {"extra": "allow"}  # Discord's full embed object

    title: str | None = Field(None, max_length=256)
    description: str | None = Field(None, max_length=4096)
    url: str | None = None
    color: int | None = Field(None, ge=0, le=0xFFFFFF, description="RGB as an integer.")
    fields: list[dict[str, Any]] | None = Field(None, max_length=25)


class SendMessage(Params):
    content: str = Field("", max_length=2000, description="Message text.")
    embeds: list[Embed] | None = Field(None, max_length=MAX_EMBEDS)
    username: str | None = Field(None, max_length=80)
    avatar_url: str | None = None
    tts: bool | None = None
    thread_id: str | None = Field(None, description="Post into this thread of the channel.")
    allowed_mentions: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> SendMessage:
        if not self.content and not self.embeds:
            raise ValueError("a Discord message needs 'content' or 'embeds'")
        return self


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send_message":
        raise ToolError(f"discord has no action {call.action!r}", permanent=True)
    config = DiscordConfig.model_validate(call.config)
    params = SendMessage.model_validate(call.params)
    payload = params.model_dump(exclude_none=True, exclude={"thread_id"})
    for key in ("username", "avatar_url"):
        if key not in payload and getattr(config, key):
            payload[key] = getattr(config, key)
    query = {"wait": "true"}  # answer with the message (its id) instead of 204
    if params.thread_id:
        query["thread_id"] = params.thread_id
    resp = await http.send(
        "POST", config.webhook_url, json=payload, params=query, timeout_s=call.timeout_s
    )
    http.check(resp, "Discord")
    body = http.parsed(resp)
    message_id = body.get("id") if isinstance(body, dict) else None
    return ActionResult(True, {"status": resp.status_code, "message_id": message_id})


def _test_params(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": "Cronium test message",
        "embeds": [{"title": "Credential check", "description": "This credential works."}],
    }


TOOL = Tool(
    kind="discord",
    title="Discord",
    description="Messages and embeds to a Discord channel through its webhook.",
    config=DiscordConfig,
    actions={"send_message": SendMessage},
    run=run,
    test_action="send_message",
    test_params=_test_params,
)
