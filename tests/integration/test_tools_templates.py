"""Action parameters are templates: what they can see, and sandbox escapes that fail with
a clear error instead of running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cronium.core import Core
from cronium.tools.base import ToolError
from cronium.tools.execute import ActionRequest, RetryPolicy, execute
from cronium.tools.templates import render
from tests.conftest import Api
from tests.support.tool_receivers import HttpReceiver, http_receiver

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ request.application.__globals__ }}",
    "{% set x = namespace() %}{{ x.__class__.__init__ }}",
    "{{ (variables.items | attr('__self__')).__class__ }}",
    "{{ {}.update(a=1) }}",
]


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


@pytest.mark.parametrize("template", ESCAPES)
def test_sandbox_escapes_are_refused(template: str) -> None:
    context: dict[str, Any] = {"variables": {"a": 1}, "request": None}
    with pytest.raises(ToolError) as caught:
        render({"text": template}, context)
    assert caught.value.permanent
    assert caught.value.reason in ("template_forbidden", "template_error")
    assert caught.value.message.startswith("params.text: ")


def test_the_attribute_escape_is_named_as_a_sandbox_refusal() -> None:
    with pytest.raises(ToolError) as caught:
        render({"a": ["x", {"b": "{{ ''.__class__ }}"}]}, {})
    assert caught.value.reason == "template_forbidden"
    assert caught.value.message.startswith("params.a[1].b: template refused by the sandbox")


def test_unknown_names_fail_instead_of_rendering_empty() -> None:
    with pytest.raises(ToolError) as caught:
        render("{{ output.missing }}", {"output": {}})
    assert caught.value.reason == "template_error"
    assert (
        render(
            "{{ output.n * 2 }} {{ input.who | default('x') }}", {"output": {"n": 4}, "input": {}}
        )
        == "8 x"
    )


async def test_an_escape_in_a_credential_test_is_recorded_and_nothing_is_sent(
    api: dict[str, Api], hook: HttpReceiver
) -> None:
    resp = await api["user"].post(
        "/credentials",
        json={"name": "w", "tool": "webhook", "config": {"url": f"{hook.url}/w"}},
    )
    cred = resp.json()["id"]
    resp = await api["user"].post(
        f"/credentials/{cred}/test",
        json={"params": {"json": {"x": "{{ cycler.__init__.__globals__ }}"}}},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is False and body["attempts"] == 0
    assert body["error"]["code"] == "template_forbidden"
    assert body["error"]["message"].startswith("params.json.x: template refused by the sandbox")
    assert hook.calls == []


async def test_templates_see_plain_variables_but_not_secret_ones(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    await api["user"].post("/variables", json={"key": "region", "value": "eu"})
    await api["user"].post("/variables", json={"key": "token", "value": "hide", "secret": True})
    await api["other"].post("/variables", json={"key": "region", "value": "theirs"})
    resp = await api["user"].post(
        "/credentials",
        json={"name": "w", "tool": "webhook", "config": {"url": f"{hook.url}/w"}},
    )
    cred = resp.json()["id"]

    async def send(params: dict[str, Any]) -> Any:
        request = ActionRequest(2, "send", params, credential_id=cred)
        return await execute(core.db, core.cipher, request, RetryPolicy(max_attempts=1))

    outcome = await send({"json": {"r": "{{ variables.region }}", "e": "{{ event }}"}})
    assert outcome.ok, outcome.as_dict()
    assert hook.calls[0]["json"] == {"r": "eu", "e": "None"}
    outcome = await send({"json": {"t": "{{ variables.token }}"}})
    assert outcome.error is not None and outcome.error.reason == "template_error"
    assert "'dict object' has no attribute 'token'" in outcome.error.message
    assert len(hook.calls) == 1


async def test_a_saved_template_is_used_by_id_with_overrides(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    cred = (
        await api["user"].post(
            "/credentials",
            json={"name": "w", "tool": "webhook", "config": {"url": f"{hook.url}/w"}},
        )
    ).json()["id"]
    template = (
        await api["user"].post(
            "/action-templates",
            json={
                "name": "ping",
                "tool": "webhook",
                "action": "send",
                "params": {"path": "/ping", "json": {"v": "{{ variables.v }}"}},
            },
        )
    ).json()["id"]
    foreign = (
        await api["other"].post(
            "/action-templates",
            json={"name": "x", "tool": "webhook", "action": "send", "params": {}},
        )
    ).json()["id"]
    await api["user"].post("/variables", json={"key": "v", "value": 7})

    async def send(params: dict[str, Any]) -> Any:
        request = ActionRequest(2, "webhook.send", params, credential_id=cred)
        return await execute(core.db, core.cipher, request, RetryPolicy(max_attempts=1))

    assert (await send({"template_id": template})).ok
    assert (await send({"template_id": template, "path": "/other"})).ok
    assert [(c["path"], c["json"]) for c in hook.calls] == [
        ("/w/ping", {"v": "7"}),
        ("/w/other", {"v": "7"}),
    ]
    outcome = await send({"template_id": foreign})
    assert outcome.error is not None and outcome.error.reason == "template_not_found"
