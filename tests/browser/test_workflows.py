"""The workflows area in a real browser: build a graph by dragging, save, run, watch it live."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import LoginAs
from tests.conftest import Api
from tests.support.runs import create_event

Shot = Callable[[Page, str], Awaitable[Path]]


async def drag(page: Page, source: Locator, target: Locator) -> None:
    """A real pointer drag: press on `source`, move in steps, release over `target`."""
    a = await source.bounding_box()
    b = await target.bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=8)
    await page.mouse.up()


def node(page: Page, key: str) -> Locator:
    return page.locator(f'#wf-canvas [data-node-key="{key}"]')


async def add_node(page: Page, event_label: str, expected_key: str) -> None:
    await page.locator("#wf-new-event").select_option(label=event_label)
    await expect(page.locator("#wf-new-key")).to_have_value(expected_key)
    await page.get_by_role("button", name="Add node").click()
    await expect(node(page, expected_key)).to_be_visible()


async def test_build_a_workflow_by_dragging_then_run_it_and_watch_it_live(
    login_as: LoginAs, api: dict[str, Api], shot: Shot
) -> None:
    user = api["user"]
    await create_event(user, name="Echo one", content="echo one")
    await create_event(user, name="Echo two", content="echo two")
    page = await login_as("user")
    await page.goto("/workflows")
    await expect(page.locator(".empty")).to_contain_text("No workflows yet")
    await page.get_by_role("link", name="New workflow").click()
    await expect(page).to_have_url("/workflows/new")

    await page.get_by_label("Name", exact=True).fill("deploy")
    await add_node(page, "Echo one (bash, draft)", "echo-one")
    await add_node(page, "Echo two (bash, draft)", "echo-two")

    # Connect one -> two by dragging the output handle onto the input handle.
    await drag(
        page,
        node(page, "echo-one").locator(".handle-out"),
        node(page, "echo-two").locator(".handle-in"),
    )
    popover = page.locator("#wf-edge-popover")
    await expect(popover).to_be_visible()
    await popover.get_by_label("Edge type").select_option("on_failure")
    await expect(page.locator('[data-edge="echo-one->echo-two"]')).to_have_attribute(
        "data-edge-type", "on_failure"
    )
    await popover.get_by_label("Edge type").select_option("on_success")
    await popover.get_by_role("button", name="Done").click()
    await expect(popover).to_be_hidden()
    edge = page.locator('[data-edge="echo-one->echo-two"]')
    await expect(edge).to_have_attribute("data-edge-type", "on_success")
    await expect(edge.locator("text")).to_have_text("on success")
    messages = page.locator("#wf-messages")
    await expect(messages.locator("[data-no-issues]")).to_be_visible()

    # A back edge two -> one makes a cycle: the messages panel says so before saving.
    await drag(
        page,
        node(page, "echo-two").locator(".handle-out"),
        node(page, "echo-one").locator(".handle-in"),
    )
    await expect(messages).to_contain_text("Cycle: echo-one → echo-two → echo-one")
    back = page.locator('[data-edge="echo-two->echo-one"]')
    await expect(back).to_have_class(re.compile(r"\binvalid\b"))
    await page.get_by_role("button", name="Save workflow").click()
    await expect(messages.locator("[data-form-error]")).to_contain_text("Fix the problems")
    await expect(page).to_have_url("/workflows/new")
    # Select the back edge and press Delete.
    await page.locator("#wf-edge-done").click()
    await back.click()
    await expect(popover).to_be_visible()
    await page.keyboard.press("Delete")
    await expect(back).to_have_count(0)
    await expect(messages).not_to_contain_text("Cycle")
    await expect(messages.locator("[data-no-issues]")).to_be_visible()
    await expect(messages.locator("[data-form-error]")).to_be_hidden()
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "workflow-editor")

    await page.get_by_role("button", name="Save workflow").click()
    await expect(page).to_have_url(re.compile(r"/workflows/\d+$"))
    workflow_id = int(page.url.rsplit("/", 1)[1])
    saved = (await user.get(f"/workflows/{workflow_id}")).json()
    assert [n["key"] for n in saved["nodes"]] == ["echo-one", "echo-two"]
    assert saved["edges"] == [
        {
            "id": saved["edges"][0]["id"],
            "from": "echo-one",
            "to": "echo-two",
            "type": "on_success",
            "condition": None,
        }
    ]
    assert saved["nodes"][0]["position"] != saved["nodes"][1]["position"]

    await page.get_by_role("button", name="Run now").click()
    await expect(page).to_have_url(re.compile(r"/workflow-runs/\d+$"))
    for key in ("echo-one", "echo-two"):
        await expect(node(page, key)).to_have_attribute("data-status", "succeeded", timeout=30_000)
    await expect(page.locator("#wf-run-status")).to_have_attribute("data-status", "succeeded")
    execution = node(page, "echo-one").locator("a.wf-node-body")
    await expect(execution).to_have_attribute("href", re.compile(r"^/executions/\d+$"))
    await expect(page.locator("#wf-cancel")).to_be_hidden()
    await shot(page, "workflow-run")

    await page.goto("/workflows")
    row = page.locator(f'tr[data-workflow-id="{workflow_id}"]')
    await expect(row.locator("[data-node-count]")).to_have_text("2")
    await expect(row.locator("[data-last-run]")).to_contain_text("succeeded")
    await shot(page, "workflows")
