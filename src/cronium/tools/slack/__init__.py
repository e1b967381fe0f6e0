"""Slack: an incoming webhook, or chat.postMessage with a bot token."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from cronium.tools import http
from cronium.tools.base import ActionCall, ActionResult, Config, Params, Tool, ToolError, secret
from cronium.tools.webhook import http_url

DEFAULT_API = "https://slack.com/api"
# chat.postMessage answers HTTP 200 with {"ok": false, "error": …}; these are worth a retry.
_TRANSIENT = {
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
}
_AUTH = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


class SlackConfig(Config):
    webhook_url: str | None = Field(
        None, max_length=2000, json_schema_extra=secret("Incoming webhook URL.")
    )
    bot_token: str | None = Field(
        None, max_length=500, json_schema_extra=secret("Bot token (xoxb-…) for chat.postMessage.")
    )
    api_base_url: str = Field(DEFAULT_API, max_length=500, description="Slack Web API base URL.")
    default_channel: str | None = Field(
        None, max_length=200, description="Channel used when a message names none (bot token)."
    )

    @field_validator("webhook_url", "api_base_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value).rstrip("/")

    @model_validator(mode="after")
    def _one_way(self) -> SlackConfig:
        if not self.webhook_url and not self.bot_token:
            raise ValueError("give 'webhook_url' (incoming webhook) or 'bot_token'")
        return self


class SendMessage(Params):
    text: str = Field("", max_length=40_000, description="Message text (mrkdwn).")
    channel: str | None = Field(None, description="Channel id or #name (bot token).")
    blocks: list[dict[str, Any]] | None = Field(None, description="Block Kit blocks.")
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = Field(None, description="Reply in this thread (bot token).")
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    unfurl_links: bool | None = None

    @model_validator(mode="after")
    def _something(self) -> SendMessage:
        if not self.text and not self.blocks and not self.attachments:
            raise ValueError("a Slack message needs 'text', 'blocks' or 'attachments'")
        return self


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send_message":
        raise ToolError(f"slack has no action {call.action!r}", permanent=True)
    config = SlackConfig.model_validate(call.config)
    params = SendMessage.model_validate(call.params)
    payload = params.model_dump(exclude_none=True)
    if config.bot_token:
        return await _post_message(config, payload, call.timeout_s)
    assert config.webhook_url is not None
    resp = await http.send("POST", config.webhook_url, json=payload, timeout_s=call.timeout_s)
    return http.result(resp, "Slack", via="webhook")


async def _post_message(
    config: SlackConfig, payload: dict[str, Any], timeout_s: float
) -> ActionResult:
    payload.setdefault("channel", config.default_channel)
    if not payload.get("channel"):
        raise ToolError(
            "chat.postMessage needs a 'channel' (or the credential's default_channel)",
            permanent=True,
            reason="bad_params",
        )
    resp = await http.send(
        "POST",
        f"{config.api_base_url}/chat.postMessage",
        json=payload,
        headers={"Authorization": f"Bearer {config.bot_token}"},
        timeout_s=timeout_s,
    )
    http.check(resp, "Slack")
    body = http.parsed(resp)
    if not isinstance(body, dict):
        raise ToolError("Slack answered something that is not JSON", reason="bad_answer")
    if not body.get("ok"):
        error = str(body.get("error") or "unknown_error")
        raise ToolError(
            f"Slack refused the message: {error}",
            permanent=error not in _TRANSIENT,
            reason="auth_failed" if error in _AUTH else "slack_error",
        )
    return ActionResult(
        True,
        {
            "status": resp.status_code,
            "via": "chat.postMessage",
            "channel": body.get("channel"),
            "ts": body.get("ts"),
        },
    )


def _test_params(config: dict[str, Any]) -> dict[str, Any]:
    return {"text": "Cronium test message: this credential works."}


TOOL = Tool(
    kind="slack",
    title="Slack",
    description="Messages to Slack through an incoming webhook or a bot token.",
    config=SlackConfig,
    actions={"send_message": SendMessage},
    run=run,
    test_action="send_message",
    test_params=_test_params,
)
