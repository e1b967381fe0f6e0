"""The dashboard (counts, success rates, recent and next runs, failing events, each user's
own scope) and the monitoring page (queue, running jobs, nodes, Valkey and Docker, auto
refresh) in a real browser.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from cronium.core import Core
from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api, wait_for_status

Shot = Callable[[Page, str], Awaitable[Path]]


async def make_event(api: Api, name: str, content: str = "echo hi", **fields: Any) -> int:
    resp = await api.post(
        "/events", json={"name": name, "language": "bash", "content": content, **fields}
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def run(api: Api, event_id: int) -> int:
    resp = await api.post(f"/events/{event_id}/run", json={})
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


def stat(page: Page, name: str) -> Any:
    return page.locator(f'[data-stat="{name}"] .value')


async def test_dashboard_shows_counts_rates_recent_next_and_failing(
    login_as: LoginAs, api: dict[str, Api], shot: Shot
) -> None:
    user = api["user"]
    hourly = await make_event(
        user,
        "hourly report",
        status="active",
        schedule={"kind": "cron", "cron": "0 * * * *", "timezone": "UTC"},
    )
    paused = await make_event(user, "paused job", status="active")
    assert (await user.post(f"/events/{paused}/pause")).status_code == 200
    ok_event = await make_event(user, "backup")
    bad_event = await make_event(user, "flaky sync", content="echo oops >&2; exit 2")
    ok_run = await run(user, ok_event)
    bad_run = await run(user, bad_event)
    assert (await wait_for_status(user, ok_run))["status"] == "succeeded"
    assert (await wait_for_status(user, bad_run))["status"] == "failed"
    # Someone else's objects stay out of the user's dashboard.
    theirs = await make_event(api["other"], "other's secret job")
    await wait_for_status(api["other"], await run(api["other"], theirs))

    page = await login_as("user")
    await page.goto("/")
    await expect(stat(page, "active")).to_have_text("1")
    await expect(stat(page, "paused")).to_have_text("1")
    await expect(stat(page, "24 h")).to_have_text("50 %")
    await expect(page.locator('[data-stat="24 h"] .label')).to_contain_text("1 of 2 runs")
    recent = page.locator("section", has=page.locator("#recent-runs"))
    await expect(recent.get_by_role("link", name=f"#{ok_run}")).to_be_visible()
    await expect(recent.get_by_role("link", name=f"#{bad_run}")).to_be_visible()
    await expect(page.get_by_text("other's secret job")).to_have_count(0)
    upcoming = page.locator("section", has=page.locator("#next-runs"))
    await expect(upcoming.get_by_role("link", name="hourly report")).to_have_attribute(
        "href", f"/events/{hourly}"
    )
    await expect(upcoming).to_contain_text("0 * * * *")
    failing = page.locator("section", has=page.locator("#failing"))
    await expect(failing.get_by_role("link", name="flaky sync")).to_be_visible()
    await expect(failing.get_by_role("link", name="backup")).to_have_count(0)
    await shot(page, "dashboard")

    await recent.get_by_role("link", name=f"#{bad_run}").click()
    await expect(page).to_have_url(f"/executions/{bad_run}")
    await expect(page.locator("[data-log] .line.stderr", has_text="oops")).to_be_visible()

    # Admins see everyone's runs.
    admin = await login_as("admin")
    await admin.goto("/")
    await expect(admin.get_by_text("other's secret job")).to_be_visible()


async def test_monitoring_shows_queue_nodes_services_and_refreshes(
    login_as: LoginAs, api: dict[str, Api], shot: Shot, core: Core
) -> None:
    user = api["user"]
    async with core.db.acquire() as conn:
        # A node that stopped a minute ago is shown as lost; one gone for days is not shown.
        await conn.execute(
            """INSERT INTO nodes (id, hostname, roles, version, started_at, last_seen_at)
               VALUES ('gone-1', 'h1', 'worker', '0.1', now() - interval '1 hour',
                       now() - interval '1 minute'),
                      ('gone-2', 'h2', 'worker', '0.1', now() - interval '3 days',
                       now() - interval '2 days')"""
        )
    failing = await make_event(user, "broken", content="exit 1")
    failed_run = await run(user, failing)
    await wait_for_status(user, failed_run)
    page = await login_as("user")
    await page.goto("/monitoring")
    await expect(page.get_by_role("heading", name="Monitoring")).to_be_visible()
    await expect(stat(page, "queued")).to_have_text("0")
    await expect(stat(page, "running")).to_have_text("0")
    nodes = page.locator('[data-panel="nodes"]')
    await expect(nodes.locator("tbody tr")).to_have_count(2)
    this_node = nodes.locator("tbody tr", has_text="this node")
    await expect(this_node.locator(".badge")).to_have_text("online")
    await expect(nodes.locator("tbody tr", has_text="gone-1").locator(".badge")).to_have_text(
        "lost"
    )
    await expect(nodes.get_by_text("gone-2")).to_have_count(0)
    services = page.locator('[data-panel="services"]')
    await expect(services.locator('[data-dependency="valkey"]')).to_contain_text("VALKEY_URL")
    # Whatever this machine has, the section says which.
    await expect(services.locator('[data-dependency="docker"] .badge')).to_have_text(
        re.compile(r"^(ok|absent|error)$")
    )
    await expect(services.locator('[data-dependency="executor"]')).to_contain_text(
        "last job ran in mode: local"
    )
    failures = page.locator('[data-panel="failures"]')
    await expect(failures.get_by_role("link", name=f"#{failed_run}")).to_be_visible()

    # A run started now shows up on the next refresh, without reloading the page.
    sleeper = await make_event(user, "long sleeper", content="sleep 60")
    running = await run(user, sleeper)
    await wait_for_status(user, running, ("running",))
    panel = page.locator('[data-panel="running"]')
    await expect(panel.get_by_role("link", name=f"#{running}")).to_be_visible(timeout=12_000)
    await expect(stat(page, "running")).to_have_text("1")
    await expect(this_node.locator("td").nth(2)).to_have_text("1")
    await shot(page, "monitoring")
    assert (await user.post(f"/executions/{running}/cancel")).status_code == 202
    await wait_for_status(user, running)


async def test_pages_fit_a_phone_screen_in_both_themes(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    user = api["user"]
    event_id = await make_event(user, "a rather long event name for a narrow phone screen")
    execution_id = await run(user, event_id)
    await wait_for_status(user, execution_id)
    page = await login_as("user", viewport=PHONE)
    for theme in ("light", "dark"):
        for path in ("/", "/executions", f"/executions/{execution_id}", "/monitoring"):
            await page.goto(path)
            await page.evaluate(f"document.documentElement.dataset.theme = '{theme}'")
            await expect(page.locator("main h1")).to_be_visible()
            overflow = await page.evaluate(
                "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px ({theme})"
            text = await page.locator("main h1").evaluate("el => getComputedStyle(el).color")
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert text != background
