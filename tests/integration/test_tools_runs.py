"""Tool actions inside runs on a regular node: a tool event end to end (the node's
ToolExecutor), a conditional Slack action that fires exactly once through the outbox,
and a permanent failure recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cronium.core import Core
from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status
from tests.support.tool_receivers import Answer, HttpReceiver, http_receiver


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def credential(api: Api, tool: str, config: dict[str, Any]) -> int:
    resp = await api.post("/credentials", json={"name": tool, "tool": tool, "config": config})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def logs(api: Api, execution_id: int) -> list[str]:
    body = (await api.get(f"/executions/{execution_id}/logs")).json()
    return [line["line"] for line in body["items"]]


async def run(api: Api, event_id: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = await api.post(f"/events/{event_id}/run", json=body or {})
    assert resp.status_code == 202, resp.text
    return await wait_for_status(api, resp.json()["execution_id"])


async def test_a_tool_event_runs_end_to_end_with_a_retry(
    api: dict[str, Api], node: Node, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(429, {"error": "rate limited"}, {"Retry-After": "0.2"})]
    cred = await credential(api["user"], "discord", {"webhook_url": f"{hook.url}/d"})
    resp = await api["user"].post(
        "/events",
        json={
            "name": "announce",
            "type": "tool",
            "tool": {
                "credential_id": cred,
                "action": "discord.send_message",
                "params": {
                    "content": "{{ event.name }} for {{ input.who }}",
                    "embeds": [{"title": "run {{ execution.id }}", "color": 255}],
                },
            },
            "timeout_seconds": 20,
        },
    )
    assert resp.status_code == 201, resp.text
    done = await run(api["user"], resp.json()["id"], {"input": {"who": "ops"}})
    assert done["status"] == "succeeded", done
    assert [c["json"] for c in hook.calls][1] == {
        "content": "announce for ops",
        "embeds": [{"title": f"run {done['id']}", "color": 255}],
    }
    output = done["output"]
    assert output["ok"] is True and output["attempts"] == 2
    assert output["result"] == {"status": 200, "message_id": None}
    lines = await logs(api["user"], done["id"])
    assert any(line.startswith("attempt 1 failed: Discord answered HTTP 429") for line in lines)
    assert any("retrying in 0.2 s" in line for line in lines), lines
    assert any(line.startswith("discord.send_message sent in ") for line in lines), lines
    assert f"{hook.url}/d" not in "\n".join(lines)  # the webhook URL is masked


async def test_a_tool_event_with_a_4xx_fails_once_with_the_reason(
    api: dict[str, Api], node: Node, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(400, {"error": "invalid_payload"})]
    cred = await credential(api["user"], "slack", {"webhook_url": f"{hook.url}/s"})
    resp = await api["user"].post(
        "/events",
        json={
            "name": "bad",
            "type": "tool",
            "retries": 2,
            "tool": {"credential_id": cred, "action": "send_message", "params": {"text": "x"}},
        },
    )
    done = await run(api["user"], resp.json()["id"])
    assert done["status"] == "failed"
    assert done["jobs"][0]["error"].startswith("rejected: Slack answered HTTP 400")
    assert len(hook.calls) == 1  # permanent: neither the tool path nor the engine retries


async def test_a_sandbox_escape_in_a_tool_event_fails_the_run(
    api: dict[str, Api], node: Node, hook: HttpReceiver
) -> None:
    cred = await credential(api["user"], "slack", {"webhook_url": f"{hook.url}/s"})
    resp = await api["user"].post(
        "/events",
        json={
            "name": "evil",
            "type": "tool",
            "tool": {
                "credential_id": cred,
                "action": "send_message",
                "params": {"text": "{{ ''.__class__.__mro__ }}"},
            },
        },
    )
    done = await run(api["user"], resp.json()["id"])
    assert done["status"] == "failed"
    assert done["jobs"][0]["error"].startswith(
        "template_forbidden: params.text: template refused by the sandbox"
    )
    assert hook.calls == []


async def test_a_conditional_slack_action_fires_exactly_once(
    api: dict[str, Api], core: Core, node: Node, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(503, {"busy": True}, {"Retry-After": "0"})]
    cred = await credential(api["user"], "slack", {"webhook_url": f"{hook.url}/s"})
    resp = await api["user"].post(
        "/events",
        json={
            "name": "nightly",
            "language": "bash",
            "content": "exit 3",
            "actions": [
                {
                    "on": "on_failure",
                    "type": "tool",
                    "credential_id": cred,
                    "action": "slack.send_message",
                    "params": {"text": ":x: {{ event.name }} {{ execution.status }}"},
                },
                {
                    "on": "on_success",
                    "type": "tool",
                    "credential_id": cred,
                    "action": "slack.send_message",
                    "params": {"text": "never"},
                },
            ],
        },
    )
    assert resp.status_code == 201, resp.text
    done = await run(api["user"], resp.json()["id"])
    assert done["status"] == "failed"
    for _ in range(200):
        async with core.db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT status, attempts, error, result FROM action_deliveries"
                " WHERE execution_id = $1",
                done["id"],
            )
        if row is not None and row["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # anything extra would arrive now
    assert [c["json"] for c in hook.calls] == [{"text": ":x: nightly failed"}] * 2
    assert row is not None
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert row["result"]["ok"] is True
    lines = await logs(api["user"], done["id"])
    assert lines.count("slack action send_message sent") == 1


async def test_a_delivery_that_is_refused_is_recorded_as_failed(
    api: dict[str, Api], core: Core, node: Node, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(404, {"error": "no_service"})]
    cred = await credential(api["user"], "slack", {"webhook_url": f"{hook.url}/s"})
    resp = await api["user"].post(
        "/events",
        json={
            "name": "ok",
            "language": "bash",
            "content": "true",
            "actions": [
                {
                    "on": "always",
                    "type": "tool",
                    "credential_id": cred,
                    "action": "send_message",
                    "params": {"text": "done"},
                }
            ],
        },
    )
    done = await run(api["user"], resp.json()["id"])
    for _ in range(200):
        async with core.db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT status, attempts, error FROM action_deliveries WHERE execution_id = $1",
                done["id"],
            )
        if row is not None and row["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    assert row is not None
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["error"] == 'Slack answered HTTP 404: {"error":"no_service"}'
    assert len(hook.calls) == 1
