"""Tool actions as conditional actions: a generic webhook and an email, each delivered
once, with templated parameters, to real receivers on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cronium.core import Core
from cronium.db.models import ToolCredential
from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail_first = 0

    async def hook(self, request: Request) -> Response:
        if self.fail_first > 0:
            self.fail_first -= 1
            return JSONResponse({"busy": True}, status_code=503, headers={"Retry-After": "0"})
        self.calls.append({"headers": dict(request.headers), "json": await request.json()})
        return JSONResponse({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, Receiver]]:
    state = Receiver()
    port = free_port()
    app = Starlette(routes=[Route("/hook", state.hook, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}", state
    server.should_exit = True
    await task


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


async def credential(
    core: Core, owner_id: int, name: str, tool: str, config: dict[str, Any]
) -> int:
    async with core.sessions() as db, db.begin():
        row = ToolCredential(
            owner_id=owner_id,
            name=name,
            tool=tool,
            config_encrypted=core.cipher.encrypt_json(config),
        )
        db.add(row)
        await db.flush()
        return row.id


async def wait_until(predicate: Any, timeout_s: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_failure_sends_one_templated_webhook(
    api: dict[str, Api], core: Core, node: Node, receiver: tuple[str, Receiver]
) -> None:
    url, state = receiver
    state.fail_first = 1  # one 503 first: the delivery retries and still arrives once
    cred = await credential(
        core, 2, "hooks", "webhook", {"url": url, "headers": {"X-Secret": "abc123"}}
    )
    resp = await api["user"].post(
        "/events",
        json={
            "name": "breaks",
            "language": "bash",
            "content": "exit 4",
            "actions": [
                {
                    "on": "on_failure",
                    "type": "tool",
                    "credential_id": cred,
                    "action": "webhook.send",
                    "params": {
                        "path": "/hook",
                        "json": {"text": "{{ event.name }} {{ execution.status }}"},
                    },
                }
            ],
        },
    )
    assert resp.status_code == 201, resp.text
    run = await api["user"].post(f"/events/{resp.json()['id']}/run")
    await wait_for_status(api["user"], run.json()["execution_id"])
    await wait_until(lambda: len(state.calls) >= 1)
    await asyncio.sleep(1)
    assert len(state.calls) == 1
    assert state.calls[0]["json"] == {"text": "breaks failed"}
    assert state.calls[0]["headers"]["x-secret"] == "abc123"


async def test_a_success_sends_an_email(
    api: dict[str, Api], core: Core, node: Node, smtp: Any
) -> None:
    controller, inbox = smtp
    cred = await credential(
        core,
        2,
        "mail",
        "email",
        {
            "host": "127.0.0.1",
            "port": controller.port,
            "security": "none",
            "from": "cronium@example.com",
        },
    )
    resp = await api["user"].post(
        "/events",
        json={
            "name": "report",
            "language": "bash",
            "content": "echo done",
            "actions": [
                {
                    "on": "on_success",
                    "type": "tool",
                    "credential_id": cred,
                    "action": "email.send",
                    "params": {
                        "to": "ops@example.com",
                        "subject": "{{ event.name }} ok",
                        "text": "run {{ execution.id }}",
                        "html": "<b>{{ execution.status }}</b>",
                    },
                }
            ],
        },
    )
    run = await api["user"].post(f"/events/{resp.json()['id']}/run")
    execution_id = run.json()["execution_id"]
    await wait_for_status(api["user"], execution_id)
    await wait_until(lambda: len(inbox.messages) >= 1)
    message = inbox.messages[0]
    assert message.rcpt_tos == ["ops@example.com"]
    body = message.content.decode()
    assert "Subject: report ok" in body
    assert f"run {execution_id}" in body
    assert "<b>succeeded</b>" in body
    await asyncio.sleep(0.5)
    logs = [
        line["line"]
        for line in (await api["user"].get(f"/executions/{execution_id}/logs")).json()["items"]
    ]
    assert "email action send sent" in logs


async def test_a_script_sends_an_email_through_the_sdk(
    api: dict[str, Api], core: Core, node: Node, smtp: Any
) -> None:
    controller, inbox = smtp
    await credential(
        core, 2, "mail", "email", {"host": "127.0.0.1", "port": controller.port, "security": "none"}
    )
    script = "cronium.send_email('dev@example.com', 'from a script', 'body text')\nprint('sent')"
    resp = await api["user"].post(
        "/events", json={"name": "mailer", "language": "python", "content": script}
    )
    run = await api["user"].post(f"/events/{resp.json()['id']}/run")
    done = await wait_for_status(api["user"], run.json()["execution_id"])
    assert done["status"] == "succeeded", done
    assert len(inbox.messages) == 1
    assert inbox.messages[0].rcpt_tos == ["dev@example.com"]
    assert "Subject: from a script" in inbox.messages[0].content.decode()


async def test_an_unreachable_slack_is_a_clear_error_for_the_script(
    api: dict[str, Api], core: Core, node: Node
) -> None:
    await credential(core, 2, "s", "slack", {"webhook_url": "http://127.0.0.1:9/x"})
    script = "try:\n    cronium.send_slack_message('hi')\nexcept cronium.CroniumError as exc:\n    print('error', exc.status, exc.code, exc)"
    resp = await api["user"].post(
        "/events", json={"name": "slacker", "language": "python", "content": script}
    )
    run = await api["user"].post(f"/events/{resp.json()['id']}/run")
    done = await wait_for_status(api["user"], run.json()["execution_id"])
    logs = [
        line["line"]
        for line in (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    ]
    assert any(
        line.startswith("error 422 tool_action_failed") and "cannot reach 127.0.0.1" in line
        for line in logs
    ), logs
