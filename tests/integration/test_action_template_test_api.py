"""Testing and previewing a saved action template: it renders with sample run data and
goes out through the owner's credential on the one tool path, answering like a
credential test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.tool_receivers import Answer, HttpReceiver, http_receiver


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def made(api: Api, path: str, body: dict[str, Any]) -> int:
    resp = await api.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


TEMPLATE = {
    "name": "notice",
    "tool": "webhook",
    "action": "send",
    "params": {
        "path": "/notice",
        "json": {"text": "{{ event.name }} {{ execution.status }}: {{ output.size }}"},
    },
}


async def test_a_template_test_sends_sample_data_through_the_credential(
    api: dict[str, Api], hook: HttpReceiver
) -> None:
    cred = await made(
        api["user"], "/credentials", {"name": "w", "tool": "webhook", "config": {"url": hook.url}}
    )
    template = await made(api["user"], "/action-templates", TEMPLATE)
    path = f"/action-templates/{template}/test"

    resp = await api["user"].post(path, json={"credential_id": cred})
    assert resp.status_code == 200, resp.text
    outcome = resp.json()
    assert outcome["ok"] is True and outcome["credential_id"] == cred, outcome
    assert outcome["result"] == {"status": 200}
    assert hook.calls[-1]["path"] == "/notice"
    assert hook.calls[-1]["json"] == {"text": "nightly backup failed: 1.2 GB"}

    # Own sample data and overrides; without credential_id the only webhook one is used.
    sample = {"event": {"name": "deploy"}, "execution": {"status": "succeeded"}, "output": {}}
    resp = await api["user"].post(path, json={"sample": {**sample, "output": {"size": "3"}}})
    assert resp.json()["ok"] is True, resp.text
    assert hook.calls[-1]["json"] == {"text": "deploy succeeded: 3"}

    # A name the sample lacks fails like a run would, naming the parameter; nothing sent.
    sent = len(hook.calls)
    resp = await api["user"].post(path, json={"sample": sample})
    outcome = resp.json()
    assert resp.status_code == 200 and outcome["ok"] is False
    assert outcome["error"]["code"] == "template_error"
    assert outcome["error"]["message"].startswith("params.json.text: ")
    assert len(hook.calls) == sent

    # The receiver's refusal is reported with its status.
    hook.queued.append(Answer(401, {"error": "nope"}))
    outcome = (await api["user"].post(path, json={"credential_id": cred})).json()
    assert outcome["ok"] is False and outcome["error"]["status"] == 401, outcome
    assert outcome["error"]["code"] == "auth_failed"


async def test_a_template_test_uses_only_the_owners_credentials(
    api: dict[str, Api], hook: HttpReceiver
) -> None:
    template = await made(api["user"], "/action-templates", TEMPLATE)
    foreign = await made(
        api["other"], "/credentials", {"name": "o", "tool": "webhook", "config": {"url": hook.url}}
    )
    slack = await made(
        api["user"],
        "/credentials",
        {"name": "s", "tool": "slack", "config": {"webhook_url": hook.url + "/slack"}},
    )
    path = f"/action-templates/{template}/test"
    cases = [
        ({"credential_id": foreign}, "credential_not_found"),
        ({"credential_id": slack}, "credential_mismatch"),
        ({}, "credential_not_found"),  # the user has no webhook credential
    ]
    for body, code in cases:
        resp = await api["user"].post(path, json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["error"]["code"] == code, resp.text
    assert hook.calls == []
    assert (await api["viewer"].post(path, json={})).status_code == 403
    assert (await api["other"].post(path, json={})).status_code == 404
    resp = await api["user"].post(path, json={"sample": {"unknown": 1}})
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["field"] == "sample.unknown", resp.text


async def test_preview_renders_unsaved_params_without_sending(api: dict[str, Api]) -> None:
    await api["user"].post("/variables", json={"key": "region", "value": "eu"})
    body = {
        "tool": "email",
        "action": "email.send",
        "params": {
            "to": "ops@example.com",
            "subject": "{{ event.name | upper }} in {{ variables.region }}",
            "text": "{{ execution.error }}",
        },
    }
    resp = await api["user"].post("/action-templates/preview", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "ok": True,
        "params": {
            "to": "ops@example.com",
            "subject": "NIGHTLY BACKUP in eu",
            "text": "exit code 1",
        },
        "error": None,
    }
    # Parameters the action refuses, a sandbox escape and a syntax error.
    bad = {**body, "params": {"subject": "x"}}
    outcome = (await api["user"].post("/action-templates/preview", json=bad)).json()
    assert outcome["ok"] is False and outcome["error"]["code"] == "bad_params"
    assert "params.to: Field required" in outcome["error"]["message"]
    escape = {**body, "params": {**body["params"], "text": "{{ ''.__class__ }}"}}
    outcome = (await api["user"].post("/action-templates/preview", json=escape)).json()
    assert outcome["error"]["code"] == "template_forbidden", outcome
    syntax = {**body, "params": {**body["params"], "subject": "{{ event.name "}}
    resp = await api["user"].post("/action-templates/preview", json=syntax)
    assert resp.status_code == 422
    assert resp.json()["error"]["details"]["field"] == "params.subject", resp.text
    assert (await api["viewer"].post("/action-templates/preview", json=body)).status_code == 403
