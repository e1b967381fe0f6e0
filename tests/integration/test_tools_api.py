"""The credentials, action templates and tools API: who may do what, secrets that never
come back (nor sit in the database in clear), the tool catalogue and credential tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from cronium.core import Core
from tests.conftest import Api
from tests.support.tool_receivers import Answer, HttpReceiver, http_receiver

BOT_TOKEN = "xoxb-plaintext-6c1d9e"
HOOK_PATH = "/services/T0/B0/plaintext-0b5a77"


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    resp = await api.post("/credentials", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_secrets_are_write_only_and_encrypted_at_rest(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    config = {
        "bot_token": BOT_TOKEN,
        "webhook_url": hook.url + HOOK_PATH,
        "api_base_url": f"{hook.url}/api",
        "default_channel": "#ops",
    }
    made = await create(api["user"], {"name": "ops", "tool": "slack", "config": config})
    assert made["config"] == {"api_base_url": f"{hook.url}/api", "default_channel": "#ops"}
    assert made["configured_keys"] == [
        "api_base_url",
        "bot_token",
        "default_channel",
        "webhook_url",
    ]
    for resp in (
        await api["user"].get(f"/credentials/{made['id']}"),
        await api["user"].get("/credentials"),
        await api["admin"].get("/credentials"),
        await api["viewer"].get(f"/credentials/{made['id']}"),
    ):
        assert resp.status_code == 200
        assert BOT_TOKEN not in resp.text and "plaintext-0b5a77" not in resp.text
    async with core.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM tool_credentials"))).all()
    dump = repr(rows)
    assert len(rows) == 1
    assert BOT_TOKEN not in dump and "plaintext-0b5a77" not in dump
    assert BOT_TOKEN.encode() not in rows[0].config_encrypted


async def test_patch_keeps_omitted_secrets_and_removes_nulls(
    api: dict[str, Api], hook: HttpReceiver
) -> None:
    hook.defaults["/api/chat.postMessage"] = Answer(200, {"ok": True, "channel": "C9", "ts": "1"})
    made = await create(
        api["user"],
        {
            "name": "ops",
            "tool": "slack",
            "config": {"bot_token": BOT_TOKEN, "api_base_url": f"{hook.url}/api"},
        },
    )
    resp = await api["user"].patch(
        f"/credentials/{made['id']}",
        json={"name": "ops-2", "config": {"default_channel": "C9"}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "ops-2"
    assert resp.json()["configured_keys"] == ["api_base_url", "bot_token", "default_channel"]
    test = await api["user"].post(f"/credentials/{made['id']}/test")
    assert test.json()["ok"] is True, test.text
    assert hook.calls[0]["headers"]["authorization"] == f"Bearer {BOT_TOKEN}"  # kept
    assert hook.calls[0]["json"]["channel"] == "C9"
    resp = await api["user"].patch(
        f"/credentials/{made['id']}", json={"config": {"bot_token": None}}
    )
    assert resp.status_code == 422  # neither a webhook nor a token left
    assert "give 'webhook_url'" in resp.json()["error"]["message"]


async def test_credentials_follow_the_ownership_rules(api: dict[str, Api]) -> None:
    body = {"name": "hooks", "tool": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}
    made = await create(api["user"], body)
    path = f"/credentials/{made['id']}"
    assert (await api["viewer"].post("/credentials", json=body)).status_code == 403
    assert (await api["viewer"].delete(path)).status_code == 403
    assert (await api["viewer"].post(f"{path}/test")).status_code == 403
    assert (await api["viewer"].get(path)).status_code == 200
    for method in ("get", "patch", "delete"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "patch" else {}
        resp = await getattr(api["other"], method)(path, **kwargs)
        assert resp.status_code == 404, (method, resp.text)
        assert resp.json()["error"]["code"] == "not_found"
    assert (await api["other"].post(f"{path}/test")).status_code == 404
    assert (await api["other"].get("/credentials")).json()["total"] == 0
    assert (await api["admin"].get(path)).status_code == 200
    assert (await api["user"].post("/credentials", json=body)).status_code == 409
    assert (await api["user"].delete(path)).status_code == 204
    assert (await api["user"].get(path)).status_code == 404


async def test_a_credential_in_use_cannot_be_deleted(api: dict[str, Api]) -> None:
    body = {"name": "hooks", "tool": "webhook", "config": {"url": "http://127.0.0.1:9/x"}}
    cred = (await create(api["user"], body))["id"]
    event = await api["user"].post(
        "/events",
        json={
            "name": "notify",
            "type": "tool",
            "tool": {"credential_id": cred, "action": "webhook.send", "params": {}},
        },
    )
    assert event.status_code == 201, event.text
    resp = await api["user"].delete(f"/credentials/{cred}")
    assert resp.status_code == 409
    assert resp.json()["error"]["details"] == {"event_ids": [event.json()["id"]]}


async def test_bad_configs_are_422s(api: dict[str, Api]) -> None:
    cases = [
        ({"tool": "slack", "config": {}}, "config: give 'webhook_url'"),
        ({"tool": "discord", "config": {"webhook_url": "ftp://x/y/zzzz"}}, "config.webhook_url:"),
        ({"tool": "teams", "config": {"webhook_url": "https://x.example/h", "x": 1}}, "config.x:"),
        ({"tool": "fax", "config": {}}, "tool:"),
    ]
    for body, message in cases:
        resp = await api["user"].post("/credentials", json={"name": "c", **body})
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["message"].startswith(message), resp.text


async def test_the_tool_catalogue_describes_credentials_and_actions(
    api: dict[str, Api],
) -> None:
    resp = await api["viewer"].get("/tools")
    assert resp.status_code == 200
    tools = {t["tool"]: t for t in resp.json()["items"]}
    assert set(tools) == {"slack", "discord", "teams", "email", "webhook"}
    slack = tools["slack"]
    assert slack["secret_fields"] == ["bot_token", "webhook_url"]
    props = slack["credential_schema"]["properties"]
    assert props["api_base_url"]["default"] == "https://slack.com/api"
    assert props["bot_token"]["writeOnly"] is True
    [action] = slack["actions"]
    assert action["qualified_name"] == "slack.send_message"
    assert {"text", "channel", "blocks"} <= set(action["params_schema"]["properties"])
    assert tools["email"]["secret_fields"] == ["password"]
    assert "from" in tools["email"]["credential_schema"]["properties"]
    assert tools["email"]["actions"][0]["params_schema"]["required"] == ["to", "subject"]
    assert "json" in tools["webhook"]["actions"][0]["params_schema"]["properties"]
    assert (await api["user"].client.get("/api/v1/tools")).status_code == 401


async def test_a_credential_test_reports_success_and_failure(
    api: dict[str, Api], hook: HttpReceiver
) -> None:
    cred = (
        await create(
            api["user"],
            {"name": "d", "tool": "discord", "config": {"webhook_url": f"{hook.url}/d"}},
        )
    )["id"]
    resp = await api["user"].post(f"/credentials/{cred}/test")
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is True and body["error"] is None and body["attempts"] == 1
    assert hook.calls[0]["json"]["content"] == "Cronium test message"
    hook.queued = [Answer(401, {"message": "Invalid Webhook Token"})]
    resp = await api["user"].post(
        f"/credentials/{cred}/test", json={"params": {"content": "custom"}}
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is False
    assert body["error"] == {
        "code": "auth_failed",
        "message": 'Discord answered HTTP 401: {"message":"Invalid Webhook Token"}',
        "status": 401,
    }
    assert hook.calls[1]["json"]["content"] == "custom"


async def test_action_templates_crud_and_rules(api: dict[str, Api]) -> None:
    body = {
        "name": "failure notice",
        "tool": "slack",
        "action": "slack.send_message",
        "params": {"text": "{{ event.name }} failed"},
        "description": "for on_failure",
    }
    resp = await api["user"].post("/action-templates", json=body)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["action"] == "send_message"  # stored short
    path = f"/action-templates/{made['id']}"
    assert (await api["user"].post("/action-templates", json=body)).status_code == 409
    assert (await api["viewer"].post("/action-templates", json=body)).status_code == 403
    assert (await api["other"].get(path)).status_code == 404
    assert (await api["viewer"].get(path)).status_code == 200
    listed = (await api["user"].get("/action-templates?tool=slack")).json()
    assert [t["name"] for t in listed["items"]] == ["failure notice"]
    bad = [
        ({**body, "name": "b1", "action": "send"}, "slack has no action 'send'"),
        ({**body, "name": "b2", "params": {"text": "{{ event.name "}}, "params.text: template"),
        ({**body, "name": "b3", "params": {"template_id": 1}}, "a template cannot refer"),
    ]
    for payload, message in bad:
        resp = await api["user"].post("/action-templates", json=payload)
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["message"].startswith(message), resp.text
    resp = await api["user"].patch(path, json={"params": {"text": "changed"}})
    assert resp.status_code == 200 and resp.json()["params"] == {"text": "changed"}
    assert (await api["user"].delete(path)).status_code == 204
    assert (await api["user"].get(path)).status_code == 404
