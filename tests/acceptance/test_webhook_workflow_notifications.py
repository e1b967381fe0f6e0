"""A webhook starts a workflow whose two branches run in parallel: one fails and routes to a
Slack message, the other sets a condition that routes to an email. Each message arrives
once, at real receivers on loopback (an HTTP server for Slack, aiosmtpd for email)."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.conftest import Api
from tests.integration.test_workflows import by_key, create_workflow, wait_run
from tests.support.catalogue import receiver, smtp_server
from tests.support.runs import create_event
from tests.support.webhooks import signed_headers

SECRET = "the-webhook-secret-for-this-test"


async def credential(user: Api, name: str, tool: str, config: dict[str, object]) -> int:
    resp = await user.post("/credentials", json={"name": name, "tool": tool, "config": config})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def test_webhook_workflow_routes_failure_to_slack_and_condition_to_email(
    api: dict[str, Api], client: httpx.AsyncClient, node: object
) -> None:
    user = api["user"]
    async with receiver() as slack:
        with smtp_server() as (smtp_port, inbox):
            slack_id = await credential(
                user, "ops-slack", "slack", {"webhook_url": f"{slack.url}/hooks/T000/B000/XXX"}
            )
            mail_id = await credential(
                user,
                "ops-mail",
                "email",
                {
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "security": "none",
                    "from": "cronium@example.com",
                },
            )
            flaky = await create_event(
                user, name="flaky-branch", content="echo 'deploy failed' >&2; sleep 1; exit 2"
            )
            checker = await create_event(
                user,
                name="check-branch",
                language="python",
                content=(
                    "import time\ntime.sleep(1)\n"
                    "cronium.output({'version': cronium.input()['ref']})\n"
                    "cronium.set_condition(True)"
                ),
            )
            to_slack = await create_event(
                user,
                name="tell-slack",
                type="tool",
                tool={
                    "credential_id": slack_id,
                    "action": "slack.send_message",
                    "params": {"text": "branch failed in {{ event.name }}"},
                },
            )
            to_mail = await create_event(
                user,
                name="tell-mail",
                type="tool",
                tool={
                    "credential_id": mail_id,
                    "action": "email.send",
                    "params": {
                        "to": "ops@example.com",
                        "subject": "checked {{ input.version }}",
                        "text": "version {{ input.version }} passed",
                    },
                },
            )
            workflow_id = await create_workflow(
                user,
                [("flaky", flaky), ("check", checker), ("slack", to_slack), ("mail", to_mail)],
                [
                    ("flaky", "slack", "on_failure"),
                    ("check", "mail", "on_condition:true"),
                ],
                status="active",
                webhook={"enabled": True, "secret": SECRET},
            )
            key = (await user.get(f"/workflows/{workflow_id}")).json()["webhook"]["key"]
            body = json.dumps({"ref": "v1.2.3"}).encode()
            resp = await client.post(
                f"/api/v1/webhooks/{key}", content=body, headers=signed_headers(body, SECRET)
            )
            assert resp.status_code == 202, resp.text
            run = await wait_run(user, resp.json()["run_id"], timeout_s=60)
            nodes = by_key(run)
            assert run["status"] == "succeeded", run  # the failure was routed, so handled
            assert nodes["flaky"]["status"] == "failed"
            assert {nodes[k]["status"] for k in ("check", "slack", "mail")} == {"succeeded"}
            # The two 1-second branches overlapped.
            flaky_run, check_run = nodes["flaky"], nodes["check"]
            assert flaky_run["started_at"] < check_run["finished_at"]
            assert check_run["started_at"] < flaky_run["finished_at"]
            await asyncio.sleep(1)  # a duplicate send would have arrived by now
            assert len(slack.calls) == 1, slack.calls
            assert slack.calls[0]["json"]["text"] == "branch failed in tell-slack"
            assert len(inbox.messages) == 1, inbox.messages
            message = inbox.messages[0]
            assert message["to"] == ["ops@example.com"]
            assert message["subject"] == "checked v1.2.3"
            assert "version v1.2.3 passed" in message["body"]
