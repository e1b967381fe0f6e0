"""The action templates pages: fields per tool, the variables a template may use, a
preview with sample data, a test sent through a credential, errors next to fields."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api
from tests.support.tool_receivers import HttpReceiver, http_receiver

Shot = Callable[[Page, str], Awaitable[Path]]


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def test_a_template_is_previewed_saved_and_sent_through_a_credential(
    login_as: LoginAs, api: dict[str, Api], hook: HttpReceiver, shot: Shot
) -> None:
    body = {"name": "receiver", "tool": "webhook", "config": {"url": hook.url + "/in"}}
    assert (await api["user"].post("/credentials", json=body)).status_code == 201
    await api["user"].post("/variables", json={"key": "region", "value": "eu-west"})
    page = await login_as("user")
    await page.goto("/credentials")
    await page.get_by_role("tab", name="Action templates").click()
    await expect(page).to_have_url("/action-templates")
    await page.get_by_role("link", name="New template").click()
    form = page.locator("#template-form")
    await form.get_by_label("Name", exact=True).fill("deploy notice")
    await form.locator("select[name=tool]").select_option("webhook")
    fields = form.locator('[data-tool-fields="webhook"]')
    await expect(fields).to_be_visible()
    await expect(form.locator('[data-tool-fields="slack"]')).to_be_hidden()
    # The variables a template may use, the user's plain variables by key.
    variables = page.locator("#template-variables")
    await expect(variables).to_contain_text("execution")
    await expect(variables).to_contain_text("variables.region")

    await fields.locator('[name="params.path"]').fill("/notice")
    await fields.locator('[name="params.json"]').fill(
        '{"text": "{{ event.name }} {{ execution.status }} in {{ variables.region }}"}'
    )
    await form.get_by_role("button", name="Preview").click()
    output = form.locator("[data-preview-output]")
    await expect(output).to_contain_text('"text": "nightly backup failed in eu-west"')
    await expect(output).to_contain_text('"path": "/notice"')
    # Own sample data changes the preview; nothing was sent.
    sample = json.loads(await page.locator("#sample-data").input_value())
    sample["event"]["name"] = "release 1.2"
    await page.locator("#sample-data").fill(json.dumps(sample))
    await form.get_by_role("button", name="Preview").click()
    await expect(output).to_contain_text("release 1.2 failed in eu-west")
    assert hook.calls == []

    await form.get_by_role("button", name="Create template").click()
    await expect(page).to_have_url(re.compile(r"/action-templates/\d+\?created=1$"))
    await expect(page.locator("#test-credential")).to_have_value(re.compile(r"\d+"))
    await page.locator("#template-test").get_by_role("button", name="Send test").click()
    outcome = page.locator("#template-test-outcome")
    await expect(outcome).to_contain_text("Sent · receiver answered HTTP 200")
    # The saved template, rendered with the (reloaded page's) default sample.
    assert [(c["path"], c["json"]) for c in hook.calls] == [
        ("/in/notice", {"text": "nightly backup failed in eu-west"})
    ]

    # A sample the template cannot render is a failure shown inline; nothing is sent.
    await page.locator("#sample-data").fill('{"event": null}')
    await page.locator("#template-test").get_by_role("button", name="Send test").click()
    await expect(outcome).to_contain_text("Failed: template_error: params.json.text")
    await page.locator("#sample-data").fill("{broken")
    await page.locator("#template-test").get_by_role("button", name="Send test").click()
    await expect(page.locator("#sample-error")).to_contain_text("not valid JSON")
    assert len(hook.calls) == 1

    await page.goto("/action-templates")
    await expect(page.locator("#templates-table")).to_contain_text("webhook.send")
    await shot(page, "action-templates")


async def test_template_errors_show_next_to_their_fields(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    body = {
        "name": "mail",
        "tool": "email",
        "action": "send",
        "params": {"to": "ops@example.com", "subject": "{{ event.name }}", "text": "hi"},
    }
    made = (await api["user"].post("/action-templates", json=body)).json()
    page = await login_as("user", viewport=PHONE)
    await page.goto(f"/action-templates/{made['id']}")
    fields = page.locator('[data-tool-fields="email"]')
    await expect(fields.locator('[name="params.subject"]')).to_have_value("{{ event.name }}")
    await fields.locator('[name="params.subject"]').fill("{{ event.name ")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="params.subject"]')).to_contain_text(
        "template syntax error"
    )
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator('[data-error-for="params.subject"]')).to_contain_text(
        "template syntax error"
    )
    # Parameters the action refuses are named by the preview.
    await fields.locator('[name="params.subject"]').fill("ok")
    await fields.locator('[name="params.to"]').fill("")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.locator("[data-preview-error]")).to_contain_text(
        "bad_params: params.to: Field required"
    )
    await page.get_by_label("Name", exact=True).fill("")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="name"]')).not_to_be_empty()
    assert (await api["user"].get(f"/action-templates/{made['id']}")).json() == made
    # No credential of the tool yet: the page says so and links to creating one.
    await expect(page.locator("#template-test")).to_contain_text("No Email (SMTP) credential")


async def test_templates_delete_with_confirm_and_viewers_only_read(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    body = {"name": "note", "tool": "slack", "action": "send_message", "params": {"text": "x"}}
    made = (await api["user"].post("/action-templates", json=body)).json()["id"]
    viewer = await login_as("viewer")
    await viewer.goto("/action-templates")
    main = viewer.locator("main")
    row = viewer.locator(f'tr[data-template-id="{made}"]')
    await expect(row).to_contain_text("slack.send_message")
    for name in ("New template", "Edit", "Delete", "Preview", "Send test"):
        await expect(main.get_by_role("button", name=name)).to_have_count(0)
        await expect(main.get_by_role("link", name=name)).to_have_count(0)
    await row.get_by_role("link", name="View").click()
    for name in ("Save", "Delete", "Preview", "Send test"):
        await expect(main.get_by_role("button", name=name)).to_have_count(0)
    await expect(viewer.locator('[name="params.text"]')).to_be_disabled()
    status = await viewer.evaluate(
        """async (id) => [
            (await window.Cronium.api("PATCH", "/api/v1/action-templates/" + id,
                {name: "changed"})).status,
            (await window.Cronium.api("POST", "/api/v1/action-templates/" + id + "/test",
                {})).status,
            (await window.Cronium.api("DELETE", "/api/v1/action-templates/" + id)).status,
        ]""",
        made,
    )
    assert status == [403, 403, 403]

    page = await login_as("user")
    await page.goto("/action-templates")
    await (
        page.locator(f'tr[data-template-id="{made}"]').get_by_role("button", name="Delete").click()
    )
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_contain_text("Delete the action template “note”?")
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(page.locator(f'tr[data-template-id="{made}"]')).to_have_count(0)
    assert (await api["user"].get(f"/action-templates/{made}")).status_code == 404


async def test_saving_an_unchanged_template_keeps_lists_flags_and_json_as_they_were(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    saved = [
        ("email", "send", {"to": ["a@example.com", "b@example.com"], "subject": "{{ x }}"}),
        ("webhook", "send", {"method": "PUT", "json": "just a string", "query": {"a": "1"}}),
        ("slack", "send_message", {"text": "t", "unfurl_links": False, "blocks": [{"a": 1}]}),
    ]
    page = await login_as("user")
    for tool, action, params in saved:
        body = {"name": tool, "tool": tool, "action": action, "params": params}
        made = (await api["user"].post("/action-templates", json=body)).json()
        await page.goto(f"/action-templates/{made['id']}")
        await page.get_by_role("button", name="Save").click()
        await expect(page).to_have_url(f"/action-templates/{made['id']}?saved=1")
        after = (await api["user"].get(f"/action-templates/{made['id']}")).json()
        assert after["params"] == params
