"""Workflows in the browser: editing with the keyboard forms, API errors, viewers, cancel, paging."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import PHONE, LoginAs
from tests.browser.test_workflows import drag, node
from tests.conftest import Api
from tests.support.runs import create_event


async def make_workflow(user: Api, **fields: Any) -> dict[str, Any]:
    resp = await user.post("/workflows", json=fields)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def two_node_workflow(user: Api, name: str = "chain") -> dict[str, Any]:
    one = await create_event(user, name=f"{name} one", content="echo one")
    two = await create_event(user, name=f"{name} two", content="echo two")
    return await make_workflow(
        user,
        name=name,
        nodes=[
            {"key": "a", "event_id": one, "position": {"x": 40, "y": 40}},
            {"key": "b", "event_id": two, "position": {"x": 320, "y": 40}},
        ],
        edges=[{"from": "a", "to": "b", "type": "on_success"}],
    )


async def test_edit_with_the_forms_and_keyboard_and_see_the_api_errors(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    wf = await two_node_workflow(user)
    await make_workflow(user, name="taken")
    page = await login_as("user")
    await page.goto(f"/workflows/{wf['id']}/edit")
    await expect(node(page, "a")).to_be_visible()
    await expect(page.locator('[data-edge="a->b"]')).to_have_attribute(
        "data-edge-type", "on_success"
    )

    # Move node b by dragging its body; the new position is saved.
    body_b = node(page, "b").locator(".wf-node-body")
    box = await body_b.bounding_box()
    assert box
    await page.mouse.move(box["x"] + 40, box["y"] + 20)
    await page.mouse.down()
    await page.mouse.move(box["x"] + 40, box["y"] + 140, steps=6)
    await page.mouse.up()

    messages = page.locator("#wf-messages")
    # An edge to itself, through the keyboard-friendly form.
    await page.locator("#wf-edge-from").select_option(label="a")
    await page.locator("#wf-edge-to").select_option(label="a")
    await page.locator("#wf-edge-when").select_option("always")
    await page.get_by_role("button", name="Add edge").click()
    await expect(messages).to_contain_text("a node cannot follow itself")
    await page.get_by_role("button", name="Delete selected").click()
    await expect(messages).not_to_contain_text("cannot follow itself")

    # A failure branch b -> a? No: a -> b on failure as well (two types between one pair).
    await page.locator("#wf-edge-from").select_option(label="a")
    await page.locator("#wf-edge-to").select_option(label="b")
    await page.locator("#wf-edge-when").select_option("on_condition:false")
    await page.get_by_role("button", name="Add edge").click()
    await expect(page.locator('[data-edge="a->b"][data-edge-type="on_condition"]')).to_have_count(1)

    # Renaming a node to a key another node has is a duplicate key; the edges follow renames.
    await node(page, "b").locator(".wf-node-body").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#wf-inspector")).to_be_visible()
    await page.locator("#wf-node-key").fill("a")
    await expect(messages).to_contain_text("Duplicate key “a”")
    await page.locator("#wf-node-key").fill("second")
    await expect(messages.locator("[data-no-issues]")).to_be_visible()
    await expect(page.locator('[data-edge="a->second"]')).to_have_count(2)

    # The API's errors land next to their fields: a name in use, then a bad cron expression.
    await page.locator("input[name=name]").fill("taken")
    await page.get_by_role("button", name="Save workflow").click()
    await expect(page.locator('[data-error-for="name"]')).to_contain_text(
        "already have a workflow named 'taken'"
    )
    await page.locator("input[name=name]").fill("chain")
    await page.locator("#wf-schedule-kind").select_option("cron")
    await page.locator('input[name="schedule.cron"]').fill("every tuesday")
    await page.get_by_role("button", name="Save workflow").click()
    await expect(page.locator('[data-error-for="schedule.cron"]')).not_to_be_empty()
    await expect(page.locator('input[name="schedule.cron"]')).to_have_attribute(
        "aria-invalid", "true"
    )
    await page.locator('input[name="schedule.cron"]').fill("0 3 * * *")
    await page.get_by_role("button", name="Save workflow").click()
    await expect(page).to_have_url(f"/workflows/{wf['id']}")

    saved = (await user.get(f"/workflows/{wf['id']}")).json()
    assert saved["schedule"]["cron"] == "0 3 * * *"
    assert {n["key"] for n in saved["nodes"]} == {"a", "second"}
    moved = next(n for n in saved["nodes"] if n["key"] == "second")
    assert moved["position"]["y"] >= 140
    assert sorted((e["from"], e["to"], e["type"], e["condition"]) for e in saved["edges"]) == [
        ("a", "second", "on_condition", False),
        ("a", "second", "on_success", None),
    ]
    await expect(page.locator("main")).to_contain_text("cron 0 3 * * *")


async def test_a_node_removed_with_the_delete_key_takes_its_edges(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    wf = await two_node_workflow(api["user"])
    page = await login_as("user")
    await page.goto(f"/workflows/{wf['id']}/edit")
    # Keyboard: arrows move the focused node; Enter on an edge opens its popover, Escape closes.
    await node(page, "a").locator(".wf-node-body").focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Shift+ArrowRight")
    await expect(node(page, "a")).to_have_attribute("style", re.compile(r"left: 90px; top: 50px"))
    await page.locator('[data-edge="a->b"]').focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#wf-edge-type")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#wf-edge-popover")).to_be_hidden()
    await node(page, "b").locator(".wf-node-body").click()
    await expect(node(page, "b")).to_have_class(re.compile(r"\bselected\b"))
    await page.keyboard.press("Delete")
    await expect(node(page, "b")).to_have_count(0)
    await expect(page.locator("[data-edge]")).to_have_count(0)
    # Dropping an edge onto empty canvas adds nothing.
    handle = node(page, "a").locator(".handle-out")
    await drag(page, handle, page.locator(".wf-legend"))
    await expect(page.locator("[data-edge]")).to_have_count(0)
    await page.get_by_role("button", name="Save workflow").click()
    await expect(page).to_have_url(f"/workflows/{wf['id']}")
    saved = (await api["user"].get(f"/workflows/{wf['id']}")).json()
    assert [n["key"] for n in saved["nodes"]] == ["a"] and saved["edges"] == []
    assert saved["nodes"][0]["position"] == {"x": 90, "y": 50}


async def test_viewer_sees_workflows_without_write_buttons(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    wf = await two_node_workflow(api["user"])
    run = (await api["user"].post(f"/workflows/{wf['id']}/run")).json()["run_id"]
    page = await login_as("viewer")
    await page.goto("/workflows")
    await expect(page.get_by_role("link", name="chain")).to_be_visible()
    await expect(page.get_by_role("link", name="New workflow")).to_have_count(0)
    await expect(page.get_by_role("button", name="Run")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await page.goto(f"/workflows/{wf['id']}")
    await expect(node(page, "a")).to_be_visible()
    await expect(page.locator('[data-edge="a->b"]')).to_have_count(1)
    await expect(page.get_by_role("button", name="Run now")).to_have_count(0)
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await page.goto(f"/workflow-runs/{run}")
    await expect(node(page, "b")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    response = await page.goto(f"/workflows/{wf['id']}/edit")
    assert response is not None and response.status == 403
    # Hand-edited URLs: odd paging falls back to the first page, a huge id is a 404 page.
    response = await page.goto("/workflows?offset=abc&q=" + "x" * 300)
    assert response is not None and response.status == 200
    for path in ("/workflows/99999999999999999999", "/workflow-runs/0"):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
        await expect(page.locator("main")).to_contain_text("not found")
    # Another user's workflow is not there for a user.
    other = await login_as("other")
    response = await other.goto(f"/workflows/{wf['id']}")
    assert response is not None and response.status == 404


async def test_cancel_a_running_workflow_from_the_run_view(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    slow = await create_event(user, name="slow", content="sleep 30")
    after = await create_event(user, name="after", content="echo after")
    wf = await make_workflow(
        user,
        name="long",
        nodes=[{"key": "slow", "event_id": slow}, {"key": "after", "event_id": after}],
        edges=[{"from": "slow", "to": "after", "type": "always"}],
    )
    page = await login_as("user")
    await page.goto(f"/workflows/{wf['id']}")
    await page.get_by_role("button", name="Run now").click()
    await expect(page).to_have_url(re.compile(r"/workflow-runs/\d+$"))
    await expect(node(page, "slow")).to_have_attribute("data-status", "running", timeout=20_000)
    await expect(node(page, "after")).to_have_attribute("data-status", "pending")
    await page.get_by_role("button", name="Cancel run").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator("#wf-run-status")).to_have_attribute(
        "data-status", "cancelled", timeout=20_000
    )
    await expect(node(page, "slow")).to_have_attribute("data-status", "cancelled")
    await expect(node(page, "after")).to_have_attribute("data-status", "skipped")
    await expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    # The workflow page lists the run.
    await page.goto(f"/workflows/{wf['id']}")
    await expect(page.locator("#wf-runs tr[data-run-id]")).to_have_count(1)
    await expect(page.locator("#wf-runs")).to_contain_text("cancelled")


async def test_list_pages_and_searches_and_fits_a_phone(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    for i in range(27):
        await make_workflow(api["user"], name=f"wf-{i:02d}")
    page = await login_as("user", viewport=PHONE)
    await page.goto("/workflows")
    rows = page.locator("tr[data-workflow-id]")
    await expect(rows).to_have_count(25)
    await expect(page.locator(".pager")).to_contain_text("of 27")
    await page.get_by_role("link", name="Next").click()
    await expect(rows).to_have_count(2)
    await expect(page).to_have_url("/workflows?offset=25&q=")
    await page.get_by_label("Search").fill("wf-1")
    await expect(rows).to_have_count(10)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width}px)"
    # Delete asks first; confirming removes the workflow.
    await rows.first.get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-ok]").click()
    # The API answers before its transaction commits (FastAPI ends request-scoped yield
    # dependencies after sending the response), so the page's reload may race the commit:
    # wait for the delete to be visible through the API, then look again.
    deadline = time.monotonic() + 10
    while (await api["user"].get("/workflows")).json()["total"] != 26:
        assert time.monotonic() < deadline, "the workflow was not deleted"
        await asyncio.sleep(0.05)
    await page.reload()
    await expect(rows).to_have_count(9)
    await expect(page.get_by_role("link", name="wf-10")).to_have_count(0)


async def test_run_with_input_from_the_workflow_page(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    wf = await two_node_workflow(user)
    page = await login_as("user")
    await page.goto(f"/workflows/{wf['id']}")
    await page.get_by_text("Run with input…").click()
    field = page.locator('textarea[name="input"]')
    await field.fill("[1, 2")
    await page.get_by_role("button", name="Run with this input").click()
    await expect(page.locator('[data-error-for="input"]')).to_contain_text("not valid JSON")
    await field.fill('{"ref": "main"}')
    await page.get_by_role("button", name="Run with this input").click()
    await expect(page).to_have_url(re.compile(r"/workflow-runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    await expect(page.locator("#wf-run-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )
    assert (await user.get(f"/workflow-runs/{run_id}")).json()["input"] == {"ref": "main"}
    await page.get_by_text("Run input").click()
    await expect(page.locator(".wf-json")).to_contain_text('"ref": "main"')


async def test_the_apis_graph_errors_are_listed_by_node_key(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    event_id = await create_event(user, name="Going away", content="true")
    page = await login_as("user")
    await page.goto("/workflows/new")
    await page.locator("input[name=name]").fill("stale")
    await page.locator("#wf-new-key").fill("gone")
    await page.locator("#wf-new-key").press("Enter")
    await expect(node(page, "gone")).to_be_visible()
    # The event is archived in another tab before the save.
    response = await user.patch(f"/events/{event_id}", json={"status": "archived"})
    assert response.status_code == 200, response.text
    await page.get_by_role("button", name="Save workflow").click()
    messages = page.locator("#wf-messages")
    await expect(messages.locator("[data-api-issues]")).to_contain_text(
        f"Node “gone” (event_id): event {event_id} is archived"
    )
    await expect(node(page, "gone")).to_have_class(re.compile(r"\binvalid\b"))
    await expect(messages.locator("[data-no-issues]")).to_be_hidden()
    await expect(page).to_have_url("/workflows/new")
