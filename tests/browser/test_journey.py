"""A new user's first session, all in the browser: sign in, write a Python event, schedule
it, watch it run live, wire a failure notification and build a two-step workflow.

Each step uses only what the pages show (labels, buttons, links); the REST API is read
only to check what was stored.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect

from tests.conftest import PASSWORD, Api
from tests.support.tool_receivers import HttpReceiver, http_receiver

SCRIPT = (
    "import sys, time\n"
    "[print(f'step {i}', flush=True) or time.sleep(0.5) for i in range(3)]\n"
    "print('disk is full', file=sys.stderr, flush=True)\n"
    "sys.exit(3)\n"
)


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def sign_in(page: Page) -> None:
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    await page.get_by_label("Email").fill("user@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def add_webhook_credential(page: Page, url: str) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Tools").click()
    await page.get_by_role("link", name="New credential").click()
    form = page.locator("#credential-form")
    await form.get_by_label("Name", exact=True).fill("on-call hook")
    await form.locator("select[name=tool]").select_option("webhook")
    await form.locator('[name="config.url"]').fill(url)
    await form.get_by_role("button", name="Create credential").click()
    await expect(page).to_have_url(re.compile(r"/credentials/\d+"))


async def write_event(page: Page, name: str, language: str, code: str) -> None:
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    await page.get_by_role("link", name="New event").click()
    await page.locator('[name="name"]').fill(name)
    await page.locator('[name="language"]').select_option(language)
    editor = page.locator(".cm-content")
    await editor.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(code)
    await expect(editor).to_contain_text(code.splitlines()[0])


async def test_first_session_event_schedule_live_log_notification_workflow(
    anon_page: Page, hook: HttpReceiver, api: dict[str, Api]
) -> None:
    page = anon_page
    await sign_in(page)
    await add_webhook_credential(page, hook.url + "/alerts")

    # A Python event on a schedule, with a notification when it fails.
    await write_event(page, "Disk report", "python", SCRIPT)
    await page.locator('[name="schedule.kind"]').select_option("cron")
    await page.locator('[name="schedule.cron"]').fill("*/20 * * * * *")
    await expect(page.locator("#schedule-preview [data-fires] li")).to_have_count(5)
    await page.get_by_role("button", name="Add action").click()
    row = page.locator(".action-row").nth(0)
    await row.locator('[data-a="on"]').select_option("on_failure")
    await row.locator('[data-a="type"]').select_option("tool")
    await row.locator('[data-a="credential_id"]').select_option(label="on-call hook (webhook)")
    await row.locator('[data-a="action"]').select_option("webhook.send")
    # A wrong shape is refused next to the action when saving, not when a run sends it.
    await row.locator('[data-a="params"]').fill('{"body": {"text": "failed"}}')
    await page.get_by_role("button", name="Create event").click()
    await expect(page.locator('[data-error-for="actions.0"]')).to_contain_text("valid string")
    await row.locator('[data-a="params"]').fill('{"body": "{{ event.name }} failed"}')
    await page.get_by_role("button", name="Create event").click()
    await expect(page).to_have_url(re.compile(r"/events/\d+$"))
    event_id = int(page.url.rsplit("/", 1)[1])

    # The schedule fires within 20 s; the history picks the run up without a reload.
    first_run = page.locator("#history tr[data-run-id]").first
    await expect(first_run).to_be_visible(timeout=30_000)
    await first_run.get_by_role("link").first.click()
    await expect(page).to_have_url(re.compile(r"/executions/\d+$"))
    log = page.locator(".log")
    await expect(log).to_contain_text("step 2", timeout=20_000)
    await expect(log.locator(".stderr")).to_contain_text("disk is full")
    await expect(page.locator("[data-status]").first).to_contain_text("failed", timeout=20_000)

    # The failure notification reached the on-call webhook.
    for _ in range(100):
        if hook.calls:
            break
        await asyncio.sleep(0.1)
    assert hook.calls and hook.calls[0]["path"] == "/alerts"
    assert "Disk report failed" in hook.calls[0]["body"]

    # Pause it from its page, then a cleanup step for a two-step workflow.
    await page.goto(f"/events/{event_id}")
    await page.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("paused")
    await write_event(page, "Clean up", "bash", "echo cleaned up")
    await page.get_by_role("button", name="Create event").click()
    await expect(page).to_have_url(re.compile(r"/events/\d+$"))

    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    await page.get_by_role("link", name="New workflow").click()
    await page.get_by_label("Name", exact=True).fill("report then clean")
    for label, key in (("Disk report", "disk-report"), ("Clean up", "clean-up")):
        picker = page.locator("#wf-new-event")
        option = picker.locator("option", has_text=label)
        await picker.select_option(await option.get_attribute("value"))
        await expect(page.locator("#wf-new-key")).to_have_value(key)
        await page.get_by_role("button", name="Add node").click()
    out = page.locator('#wf-canvas [data-node-key="disk-report"] .handle-out')
    into = page.locator('#wf-canvas [data-node-key="clean-up"] .handle-in')
    a, b = await out.bounding_box(), await into.bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=8)
    await page.mouse.up()
    await page.locator("#wf-edge-popover").get_by_label("Edge type").select_option("on_failure")
    await page.locator("#wf-edge-popover").get_by_role("button", name="Done").click()
    await page.get_by_role("button", name="Save workflow").click()
    await expect(page).to_have_url(re.compile(r"/workflows/\d+$"))
    await page.get_by_role("button", name="Run now").click()
    await expect(page).to_have_url(re.compile(r"/workflow-runs/\d+$"))
    canvas = page.locator("#wf-canvas")
    await expect(canvas.locator('[data-node-key="disk-report"]')).to_have_attribute(
        "data-status", "failed", timeout=30_000
    )
    await expect(canvas.locator('[data-node-key="clean-up"]')).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )

    stored = (await api["user"].get(f"/events/{event_id}")).json()
    assert stored["schedule"]["cron"] == "*/20 * * * * *"
    assert stored["status"] == "paused"
    assert stored["actions"][0]["on"] == "on_failure"
