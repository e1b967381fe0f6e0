"""Slack, Discord, Teams and the generic webhook against real HTTP receivers on loopback:
what arrives is checked field by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cronium.core import Core
from cronium.tools.execute import ActionRequest, Outcome, RetryPolicy, execute
from tests.conftest import Api
from tests.support.tool_receivers import Answer, HttpReceiver, http_receiver


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def create(api: Api, tool: str, config: dict[str, Any], name: str = "cred") -> int:
    resp = await api.post("/credentials", json={"name": name, "tool": tool, "config": config})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def send(core: Core, cred: int, action: str, params: dict[str, Any]) -> Outcome:
    request = ActionRequest(owner_id=2, action=action, params=params, credential_id=cred)
    return await execute(core.db, core.cipher, request, RetryPolicy(max_attempts=1))


async def test_slack_incoming_webhook(api: dict[str, Api], core: Core, hook: HttpReceiver) -> None:
    cred = await create(api["user"], "slack", {"webhook_url": f"{hook.url}/services/T0/B0/xyz"})
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*deploy* done"}}]
    outcome = await send(
        core, cred, "slack.send_message", {"text": "deploy done", "blocks": blocks}
    )
    assert outcome.ok, outcome.as_dict()
    assert outcome.result == {"status": 200, "via": "webhook"}
    [call] = hook.calls
    assert (call["method"], call["path"]) == ("POST", "/services/T0/B0/xyz")
    assert call["json"] == {"text": "deploy done", "blocks": blocks}
    assert "authorization" not in call["headers"]


async def test_slack_chat_post_message_with_a_bot_token(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.defaults["/api/chat.postMessage"] = Answer(
        200, {"ok": True, "channel": "C123", "ts": "1700000000.000100"}
    )
    cred = await create(
        api["user"],
        "slack",
        {
            "bot_token": "xoxb-test-token-1",
            "api_base_url": f"{hook.url}/api",
            "default_channel": "C123",
        },
    )
    outcome = await send(core, cred, "send_message", {"text": "hello", "thread_ts": "1.2"})
    assert outcome.ok, outcome.as_dict()
    assert outcome.result == {
        "status": 200,
        "via": "chat.postMessage",
        "channel": "C123",
        "ts": "1700000000.000100",
    }
    [call] = hook.calls
    assert call["path"] == "/api/chat.postMessage"
    assert call["headers"]["authorization"] == "Bearer xoxb-test-token-1"
    assert call["headers"]["content-type"].startswith("application/json")
    assert call["json"] == {"text": "hello", "channel": "C123", "thread_ts": "1.2"}


async def test_slack_api_errors_are_reported_by_name(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.defaults["/api/chat.postMessage"] = Answer(200, {"ok": False, "error": "invalid_auth"})
    cred = await create(
        api["user"], "slack", {"bot_token": "xoxb-revoked", "api_base_url": f"{hook.url}/api"}
    )
    outcome = await send(core, cred, "send_message", {"text": "hi", "channel": "#ops"})
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.permanent
    assert outcome.error.reason == "auth_failed"
    assert outcome.error.message == "Slack refused the message: invalid_auth"
    # No channel anywhere: refused before anything is sent.
    outcome = await send(core, cred, "send_message", {"text": "hi"})
    assert outcome.error is not None and outcome.error.reason == "bad_params"
    assert len(hook.calls) == 1


async def test_discord_webhook_with_embeds(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.defaults["/api/webhooks/1/abc"] = Answer(200, {"id": "998877", "content": "x"})
    cred = await create(
        api["user"],
        "discord",
        {"webhook_url": f"{hook.url}/api/webhooks/1/abc", "username": "Cronium"},
    )
    embed = {
        "title": "Backup {{ variables.site }}",
        "description": "finished",
        "color": 3066993,
        "fields": [{"name": "size", "value": "12 GB", "inline": True}],
        "footer": {"text": "nightly"},
    }
    await api["user"].post("/variables", json={"key": "site", "value": "eu-1"})
    outcome = await send(core, cred, "discord.send_message", {"content": "done", "embeds": [embed]})
    assert outcome.ok, outcome.as_dict()
    assert outcome.result == {"status": 200, "message_id": "998877"}
    [call] = hook.calls
    assert call["query"] == {"wait": "true"}
    assert call["json"] == {
        "content": "done",
        "username": "Cronium",
        "embeds": [{**embed, "title": "Backup eu-1"}],
    }


async def test_teams_adaptive_card_and_message_card(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    cred = await create(api["user"], "teams", {"webhook_url": f"{hook.url}/webhookb2/abc"})
    outcome = await send(
        core,
        cred,
        "teams.send_message",
        {"title": "Deploy", "text": "all **green**", "facts": {"env": "prod"}},
    )
    assert outcome.ok, outcome.as_dict()
    outcome = await send(
        core,
        cred,
        "teams.send_message",
        {"title": "Old style", "text": "hi", "color": "FF0000", "format": "message_card"},
    )
    assert outcome.ok, outcome.as_dict()
    adaptive, legacy = (c["json"] for c in hook.calls)
    [attachment] = adaptive["attachments"]
    assert adaptive["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    assert attachment["content"]["body"] == [
        {"type": "TextBlock", "text": "Deploy", "weight": "Bolder", "size": "Medium"},
        {"type": "TextBlock", "text": "all **green**", "wrap": True},
        {"type": "FactSet", "facts": [{"title": "env", "value": "prod"}]},
    ]
    assert legacy == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": "Old style",
        "title": "Old style",
        "text": "hi",
        "themeColor": "FF0000",
    }


async def test_generic_webhook_method_headers_and_bodies(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    cred = await create(
        api["user"],
        "webhook",
        {"url": f"{hook.url}/in", "headers": {"Authorization": "Token s3cr3t"}},
    )
    outcome = await send(
        core,
        cred,
        "webhook.send",
        {
            "method": "PUT",
            "path": "/items/7",
            "query": {"dry": "1"},
            "headers": {"X-Run": "{{ 40 + 2 }}"},
            "json": {"n": 1, "tags": ["a"]},
        },
    )
    assert outcome.ok, outcome.as_dict()
    outcome = await send(
        core, cred, "send", {"body": "line one\nline two", "content_type": "text/plain"}
    )
    assert outcome.ok, outcome.as_dict()
    first, second = hook.calls
    assert (first["method"], first["path"], first["query"]) == ("PUT", "/in/items/7", {"dry": "1"})
    assert first["headers"]["authorization"] == "Token s3cr3t"
    assert first["headers"]["x-run"] == "42"
    assert first["json"] == {"n": 1, "tags": ["a"]}
    assert (second["method"], second["path"]) == ("POST", "/in")
    assert second["headers"]["content-type"] == "text/plain"
    assert second["body"] == "line one\nline two"
    outcome = await send(core, cred, "send", {"json": {}, "body": "x"})
    assert outcome.error is not None and outcome.error.reason == "bad_params"


async def test_unknown_params_and_actions_are_refused_before_sending(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    cred = await create(api["user"], "slack", {"webhook_url": f"{hook.url}/s"})
    outcome = await send(core, cred, "send_message", {"text": "x", "colour": "red"})
    assert outcome.error is not None
    assert (outcome.error.reason, outcome.error.message) == (
        "bad_params",
        "params.colour: unknown field",
    )
    outcome = await send(core, cred, "discord.send_message", {"content": "x"})
    assert outcome.error is not None and outcome.error.reason == "credential_mismatch"
    outcome = await send(core, cred, "post", {"text": "x"})
    assert outcome.error is not None and outcome.error.reason == "bad_action"
    assert "available: send_message" in outcome.error.message
    assert hook.calls == []
