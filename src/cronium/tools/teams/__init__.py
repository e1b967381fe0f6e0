"""Microsoft Teams: an Adaptive Card (or a legacy MessageCard) to an incoming webhook."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cronium.tools import http
from cronium.tools.base import ActionCall, ActionResult, Config, Params, Tool, ToolError, secret
from cronium.tools.webhook import http_url

ADAPTIVE = "application/vnd.microsoft.card.adaptive"


class TeamsConfig(Config):
    webhook_url: str = Field(
        max_length=2000,
        json_schema_extra=secret("Incoming webhook (or Workflows 'when a webhook request…') URL."),
    )

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)


class SendMessage(Params):
    title: str | None = Field(None, max_length=500)
    text: str = Field("", max_length=28_000, description="Message text (Markdown).")
    facts: dict[str, str] | None = Field(None, description="Shown as a name/value list.")
    color: str | None = Field(None, description="Theme colour, e.g. 'FF0000' (MessageCard).")
    format: Literal["adaptive_card", "message_card"] = Field(
        "adaptive_card", description="Adaptive Card (Workflows and connectors) or MessageCard."
    )
    card: dict[str, Any] | None = Field(
        None, description="A whole Adaptive Card body: sent as is instead of title/text/facts."
    )

    @model_validator(mode="after")
    def _something(self) -> SendMessage:
        if not self.text and not self.title and not self.card:
            raise ValueError("a Teams message needs 'text', 'title' or 'card'")
        return self


def payload(params: SendMessage) -> dict[str, Any]:
    if params.format == "message_card":
        card: dict[str, Any] = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": params.title or params.text[:80],
            "text": params.text,
        }
        if params.title:
            card["title"] = params.title
        if params.color:
            card["themeColor"] = params.color
        if params.facts:
            card["sections"] = [
                {"facts": [{"name": k, "value": v} for k, v in params.facts.items()]}
            ]
        return card
    content = params.card or _adaptive(params)
    return {"type": "message", "attachments": [{"contentType": ADAPTIVE, "content": content}]}


def _adaptive(params: SendMessage) -> dict[str, Any]:
    body: list[dict[str, Any]] = []
    if params.title:
        body.append(
            {"type": "TextBlock", "text": params.title, "weight": "Bolder", "size": "Medium"}
        )
    if params.text:
        body.append({"type": "TextBlock", "text": params.text, "wrap": True})
    if params.facts:
        facts = [{"title": k, "value": v} for k, v in params.facts.items()]
        body.append({"type": "FactSet", "facts": facts})
    return {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send_message":
        raise ToolError(f"teams has no action {call.action!r}", permanent=True)
    config = TeamsConfig.model_validate(call.config)
    params = SendMessage.model_validate(call.params)
    resp = await http.send(
        "POST", config.webhook_url, json=payload(params), timeout_s=call.timeout_s
    )
    return http.result(resp, "Teams")


def _test_params(config: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Cronium test message", "text": "This credential works."}


TOOL = Tool(
    kind="teams",
    title="Microsoft Teams",
    description="Cards posted to a Teams channel through an incoming webhook.",
    config=TeamsConfig,
    actions={"send_message": SendMessage},
    run=run,
    test_action="send_message",
    test_params=_test_params,
)
