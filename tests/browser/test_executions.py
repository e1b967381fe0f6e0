"""The run page in a real browser: live log lines before the run ends, stderr styled apart,
output JSON, auto-scroll that stops when the reader scrolls up, resuming after a dropped
stream without gaps or duplicates, cancelling with a confirmation, and what viewers see.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from cronium.web.routes import executions as execution_pages
from tests.browser.conftest import LoginAs
from tests.conftest import Api, wait_for_status

Shot = Callable[[Page, str], Awaitable[Path]]

SLOW_PYTHON = """\
import sys, time
for i in range(1, 6):
    print(f"line {i}", file=sys.stderr if i == 3 else sys.stdout, flush=True)
    time.sleep(0.8)
time.sleep(3)  # room for a slow machine: the page must show lines before the end
cronium.output({"lines": 5, "ok": True})
"""


async def run_event(api: Api, content: str, language: str = "python", **fields: Any) -> int:
    """Create a manual event and run it; returns the execution id."""
    body = {"name": f"run-{secrets.token_hex(4)}", "language": language}
    resp = await api.post("/events", json={**body, "content": content, **fields})
    assert resp.status_code == 201, resp.text
    run = await api.post(f"/events/{resp.json()['id']}/run", json={})
    assert run.status_code == 202, run.text
    return int(run.json()["execution_id"])


async def status_of(api: Api, execution_id: int) -> str:
    return str((await api.get(f"/executions/{execution_id}")).json()["status"])


async def test_lines_appear_live_with_stderr_styled_and_output_at_the_end(
    login_as: LoginAs, api: dict[str, Api], shot: Shot
) -> None:
    user = api["user"]
    execution_id = await run_event(user, SLOW_PYTHON)
    page = await login_as("user")
    await page.goto(f"/executions/{execution_id}")
    log = page.locator("[data-log]")
    await expect(log.locator(".line", has_text="line 2")).to_be_visible()
    # Seen in the browser while the run is still going.
    assert await status_of(user, execution_id) == "running"
    await expect(page.locator("[data-run-status] .badge")).to_have_text("running")
    stderr = log.locator(".line.stderr", has_text="line 3")
    await expect(stderr).to_be_visible()
    stdout_color = await log.locator(".line.stdout .text").first.evaluate(
        "el => getComputedStyle(el).color"
    )
    stderr_color = await stderr.locator(".text").evaluate("el => getComputedStyle(el).color")
    assert stdout_color != stderr_color
    # The final status, times and output arrive without a reload.
    await expect(page.locator("[data-run-status] .badge")).to_have_text("succeeded", timeout=20_000)
    output = page.locator("[data-output]")
    await expect(output).to_be_visible()
    assert json.loads(await output.inner_text()) == {"lines": 5, "ok": True}
    await expect(page.locator("[data-run-time]")).not_to_have_text("—")
    texts = await log.locator(".line:not(.system) .text").all_inner_texts()
    assert texts == [f"line {i}" for i in range(1, 6)]
    # Line numbers are the stream's sequence numbers, each shown once.
    seqs = [int(s) for s in await log.locator(".line .seq").all_inner_texts()]
    assert seqs == sorted(set(seqs))
    assert not await page.locator("[data-cancel-run]").count()
    await shot(page, "execution")


async def test_auto_scroll_follows_until_the_reader_scrolls_up(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    script = (
        "import time\n"
        "for i in range(200):\n    print(f'fast {i}', flush=True)\n"
        "for i in range(20):\n    time.sleep(0.4)\n    print(f'slow {i}', flush=True)\n"
    )
    execution_id = await run_event(api["user"], script)
    page = await login_as("user")
    await page.goto(f"/executions/{execution_id}")
    log = page.locator("[data-log]")
    follow = page.locator("[data-follow]")
    await expect(log.locator(".line", has_text="fast 199")).to_be_attached()
    await expect(log.locator(".line", has_text="slow 0")).to_be_attached()
    distance = "el => el.scrollHeight - el.scrollTop - el.clientHeight"
    assert await log.evaluate(distance) < 5
    await expect(follow).to_have_attribute("aria-pressed", "true")

    await log.evaluate("el => { el.scrollTop = 0; }")
    await expect(follow).to_have_attribute("aria-pressed", "false")
    await expect(follow).to_have_text("Follow")
    await expect(log.locator(".line", has_text="slow 4")).to_be_attached()
    assert await log.evaluate("el => el.scrollTop") == 0

    await follow.click()
    await expect(follow).to_have_attribute("aria-pressed", "true")
    await expect(log.locator(".line", has_text="slow 12")).to_be_attached()
    await page.wait_for_timeout(100)
    assert await log.evaluate(distance) < 5


async def test_a_dropped_stream_resumes_after_the_last_line(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    script = (
        "import time\nfor i in range(8):\n    print(f'n{i}', flush=True)\n    time.sleep(0.4)\n"
    )
    execution_id = await run_event(api["user"], script)
    page = await login_as("user")
    urls: list[str] = []
    seen: list[int] = []

    async def route(ws: WebSocketRoute) -> None:
        urls.append(ws.url)
        server = ws.connect_to_server()
        if len(urls) > 1:
            return  # later connections pass through untouched

        def forward(message: str | bytes) -> None:
            ws.send(message)
            data = json.loads(message)
            if data.get("type") == "log" and data["stream"] == "stdout":
                seen.append(data["seq"])
                if len(seen) == 3:
                    # Drop the connection mid-run, as a network blip would.
                    asyncio.get_running_loop().create_task(ws.close(code=4000))
                    asyncio.get_running_loop().create_task(server.close())

        server.on_message(forward)

    await page.route_web_socket(re.compile(r".*/stream.*"), route)
    await page.goto(f"/executions/{execution_id}")
    log = page.locator("[data-log]")
    await expect(page.locator("[data-run-status] .badge")).to_have_text("succeeded", timeout=20_000)
    texts = await log.locator(".line.stdout .text").all_inner_texts()
    assert texts == [f"n{i}" for i in range(8)]
    seqs = [int(s) for s in await log.locator(".line .seq").all_inner_texts()]
    assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))
    assert len(urls) >= 2
    assert urls[0].endswith("after=0")
    resumed_after = int(urls[1].rsplit("after=", 1)[1])
    assert resumed_after >= seen[2]


async def test_cancel_from_the_page_asks_first_then_stops_the_run(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    execution_id = await run_event(user, "echo started; sleep 60", language="bash")
    page = await login_as("user")
    await page.goto(f"/executions/{execution_id}")
    badge = page.locator("[data-run-status] .badge")
    await expect(badge).to_have_text("running")
    await expect(page.locator("[data-log] .line", has_text="started")).to_be_visible()
    run_time = page.locator("[data-run-time]")
    await expect(run_time).to_contain_text("so far")  # counts up while the run lasts
    cancel = page.get_by_role("button", name="Cancel run")
    dialog = page.locator("#confirm-dialog")

    await cancel.click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(f"Cancel run #{execution_id}?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    assert await status_of(user, execution_id) == "running"

    await cancel.click()
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(badge).to_have_text("cancelled", timeout=15_000)
    await expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    await expect(run_time).not_to_contain_text("so far")
    assert (await wait_for_status(user, execution_id))["status"] == "cancelled"


async def test_viewer_sees_the_live_run_without_a_cancel_button(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    execution_id = await run_event(user, "echo visible; sleep 60", language="bash")
    await wait_for_status(user, execution_id, ("running",))
    viewer = await login_as("viewer")
    await viewer.goto(f"/executions/{execution_id}")
    await expect(viewer.locator("[data-run-status] .badge")).to_have_text("running")
    await expect(viewer.locator("[data-log] .line", has_text="visible")).to_be_visible()
    await expect(viewer.locator("[data-cancel-run]")).to_have_count(0)
    owner = await login_as("user")
    await owner.goto(f"/executions/{execution_id}")
    await expect(owner.locator("[data-cancel-run]")).to_be_visible()
    # Another user's run is not there for a user who does not own it.
    other = await login_as("other")
    response = await other.goto(f"/executions/{execution_id}")
    assert response is not None and response.status == 404
    assert (await user.post(f"/executions/{execution_id}/cancel")).status_code == 202
    await expect(viewer.locator("[data-run-status] .badge")).to_have_text(
        "cancelled", timeout=15_000
    )


async def test_runs_list_filters_and_pages_with_htmx(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    ok = await run_event(user, "echo ok", language="bash")
    bad = await run_event(user, "exit 3", language="bash")
    await wait_for_status(user, ok)
    await wait_for_status(user, bad)
    page = await login_as("user")
    await page.goto("/")
    await page.get_by_role("link", name="All runs").first.click()
    await expect(page).to_have_url("/executions")
    table = page.locator("#runs-table")
    await expect(table.get_by_role("link", name=f"#{ok}")).to_be_visible()
    await expect(table.get_by_role("link", name=f"#{bad}")).to_be_visible()
    await page.get_by_label("Status").select_option("failed")
    await expect(page).to_have_url("/executions?status=failed")
    await expect(table.get_by_role("link", name=f"#{ok}")).to_have_count(0)
    await expect(table.get_by_role("link", name=f"#{bad}")).to_be_visible()
    # Odd query strings (typed or old links) mean "any", never an error page.
    response = await page.goto("/executions?status=bogus&event_id=%C2%B2&page=x")
    assert response is not None and response.status == 200
    await expect(table.get_by_role("link", name=f"#{ok}")).to_be_visible()
    await page.goto("/executions?status=failed")
    await table.get_by_role("link", name=f"#{bad}").click()
    await expect(page).to_have_url(f"/executions/{bad}")
    await expect(page.locator("[data-run-status] .badge")).to_have_text("failed")


async def test_a_huge_log_keeps_the_newest_lines_and_says_so(
    login_as: LoginAs, api: dict[str, Api], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app runs in this process: a smaller cap shows the behaviour with fewer lines.
    monkeypatch.setattr(execution_pages, "LOG_LINES_SHOWN", 1000)
    user = api["user"]
    execution_id = await run_event(user, "for i in range(1300):\n    print(f'row {i}')\n")
    assert (await wait_for_status(user, execution_id))["status"] == "succeeded"
    page = await login_as("user")
    await page.goto(f"/executions/{execution_id}")
    log = page.locator("[data-log]")
    await expect(log.locator(".line", has_text="row 1299")).to_be_attached()
    await expect(page.locator("[data-run-status] .badge")).to_have_text("succeeded")
    note = log.locator("[data-trimmed]")
    await expect(note).to_contain_text("301 earlier lines are not shown")
    await expect(note.locator("a")).to_have_attribute(
        "href", f"/api/v1/executions/{execution_id}/logs?limit=10000"
    )
    texts = await log.locator(".line:not([data-trimmed]) .text").all_inner_texts()
    assert len(texts) == 1000
    assert (texts[0], texts[-1]) == ("row 300", "row 1299")
