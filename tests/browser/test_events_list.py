"""The events list in the browser: search, filters, sorting, paging, bulk actions, roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api

Shot = Callable[[Page, str], Awaitable[Path]]
CRON = {"kind": "cron", "cron": "0 3 * * *", "timezone": "UTC"}


async def _seed(api: Api) -> dict[str, int]:
    bodies: list[dict[str, Any]] = [
        {
            "name": "alpha backup",
            "language": "python",
            "content": "print(1)",
            "tags": ["backup"],
            "status": "active",
            "schedule": CRON,
        },
        {
            "name": "beta ping",
            "type": "http",
            "http": {"url": "https://example.com/"},
            "status": "paused",
            "description": "checks the shop",
        },
        {
            "name": "gamma cleanup",
            "language": "bash",
            "content": "true",
            "tags": ["backup", "disk"],
            "status": "active",
            "schedule": CRON,
        },
        {"name": "delta draft", "language": "node", "content": "1"},
    ]
    ids = {}
    for body in bodies:
        response = await api.post("/events", json=body)
        assert response.status_code == 201, response.text
        ids[body["name"]] = response.json()["id"]
    return ids


def names(page: Page) -> Any:
    return page.locator("#events-table td.name > a")


async def test_search_filters_and_sorting(
    login_as: LoginAs, api: dict[str, Api], shot: Shot
) -> None:
    await _seed(api["user"])
    await api["other"].post(
        "/events", json={"name": "not mine", "content": "1", "language": "bash"}
    )
    page = await login_as("user")
    await page.goto("/events")
    await expect(names(page)).to_have_text(
        ["alpha backup", "beta ping", "delta draft", "gamma cleanup"]
    )
    await shot(page, "events")

    await page.get_by_role("searchbox").fill("shop")  # matches the description
    await expect(names(page)).to_have_text(["beta ping"])
    await expect(page).to_have_url("/events?search=shop&status=&type=&language=&tag=&sort=name")
    await page.get_by_role("searchbox").fill("")
    await expect(names(page)).to_have_count(4)

    await page.get_by_label("Status").select_option("active")
    await expect(names(page)).to_have_text(["alpha backup", "gamma cleanup"])
    await page.get_by_label("Language").select_option("bash")
    await expect(names(page)).to_have_text(["gamma cleanup"])
    await page.get_by_label("Language").select_option("")
    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Type").select_option("http")
    await expect(names(page)).to_have_text(["beta ping"])
    await page.get_by_label("Type").select_option("")
    await page.get_by_label("Tag").select_option("disk")
    await expect(names(page)).to_have_text(["gamma cleanup"])
    await page.get_by_label("Tag").select_option("")
    await expect(names(page)).to_have_count(4)

    # Sorting: name descending, then by status; the filters stay with the sort.
    await page.locator('th a[data-sort="name"]').click()
    await expect(names(page)).to_have_text(
        ["gamma cleanup", "delta draft", "beta ping", "alpha backup"]
    )
    await page.get_by_label("Tag").select_option("backup")
    await expect(names(page)).to_have_text(["gamma cleanup", "alpha backup"])
    assert "sort=-name" in page.url
    await page.reload()
    await expect(names(page)).to_have_text(["gamma cleanup", "alpha backup"])
    await expect(page.get_by_label("Tag")).to_have_value("backup")


async def test_paging(login_as: LoginAs, api: dict[str, Api]) -> None:
    for i in range(30):
        response = await api["user"].post(
            "/events", json={"name": f"event {i:02d}", "content": "1", "language": "bash"}
        )
        assert response.status_code == 201
    page = await login_as("user")
    await page.goto("/events")
    await expect(names(page)).to_have_count(25)
    await expect(page.locator(".pager")).to_contain_text("1\u201325 of 30")
    await page.get_by_role("link", name="Next", exact=True).click()
    await expect(names(page)).to_have_text([f"event {i}" for i in range(25, 30)])
    assert "offset=25" in page.url
    await page.get_by_role("link", name="Previous", exact=True).click()
    await expect(names(page).first).to_have_text("event 00")


async def test_bulk_pause_activate_and_delete(login_as: LoginAs, api: dict[str, Api]) -> None:
    ids = await _seed(api["user"])
    page = await login_as("user")
    await page.goto("/events?status=active")
    await expect(names(page)).to_have_count(2)
    await page.locator("[data-select-all]").check()
    await expect(page.locator("[data-bulk-count]")).to_have_text("2 selected")
    await page.locator('[data-bulk-action="pause"]').click()
    await expect(page.locator("#toasts")).to_contain_text("Paused 2 events")
    await expect(page.locator("#events-table")).to_contain_text("No events match")
    for name in ("alpha backup", "gamma cleanup"):
        event = (await api["user"].get(f"/events/{ids[name]}")).json()
        assert event["status"] == "paused" and event["next_fire_at"] is None

    await page.goto("/events?status=paused")
    await expect(names(page)).to_have_count(3)
    row = page.locator(f'tr[data-event-id="{ids["alpha backup"]}"]')
    await row.locator("[data-select]").check()
    await page.locator('[data-bulk-action="activate"]').click()
    await expect(names(page)).to_have_count(2)
    assert (await api["user"].get(f"/events/{ids['alpha backup']}")).json()["status"] == "active"

    # Delete asks first; cancelling keeps the events.
    await page.locator("[data-select-all]").check()
    await page.locator('[data-bulk-action="delete"]').click()
    await expect(page.locator("#confirm-dialog")).to_contain_text("Delete 2 events")
    await page.locator("[data-confirm-cancel]").click()
    assert (await api["user"].get(f"/events/{ids['beta ping']}")).status_code == 200
    await page.locator('[data-bulk-action="delete"]').click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator("#events-table")).to_contain_text("No events match")
    assert (await api["user"].get(f"/events/{ids['beta ping']}")).status_code == 404
    assert (await api["user"].get(f"/events/{ids['gamma cleanup']}")).status_code == 404


async def test_viewer_sees_no_write_controls_and_is_refused(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    ids = await _seed(api["user"])
    page = await login_as("viewer")
    await page.goto("/events")
    await expect(names(page)).to_have_count(4)  # viewers read everything
    await expect(page.get_by_role("link", name="New event")).to_have_count(0)
    await expect(page.locator("[data-select], [data-select-all], [data-bulk]")).to_have_count(0)

    await page.goto(f"/events/{ids['alpha backup']}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("alpha backup")
    for name in ("Edit", "Delete", "Pause", "Activate", "Run now"):
        await expect(page.get_by_role("button", name=name)).to_have_count(0)
        await expect(page.get_by_role("link", name=name)).to_have_count(0)
    status = await page.evaluate(
        """async () => (await window.Cronium.api("POST", "/api/v1/events",
            {name: "from a viewer", language: "bash", content: "true"})).status"""
    )
    assert status == 403
    status = await page.evaluate(
        f"""async () => (await window.Cronium.api("POST", "/api/v1/events/{ids["alpha backup"]}/pause")).status"""
    )
    assert status == 403
    await page.goto("/events/new")
    await expect(page.locator("main")).to_contain_text("Viewers can look at events")
    await page.goto(f"/events/{ids['alpha backup']}/edit")
    await expect(page.locator("main")).to_contain_text("Viewers can look at events")


async def test_other_users_event_is_not_found(login_as: LoginAs, api: dict[str, Api]) -> None:
    ids = await _seed(api["other"])
    page = await login_as("user")
    await page.goto("/events")
    await expect(page.locator("#events-table")).to_contain_text("No events match")
    response = await page.goto(f"/events/{ids['alpha backup']}")
    assert response is not None and response.status == 404
    response = await page.goto(f"/events/{ids['alpha backup']}/edit")
    assert response is not None and response.status == 404
    odd = "/events?offset=abc&status=bogus&sort=password&tag=%00&search=" + "x" * 300
    response = await page.goto(odd)  # a hand-edited URL still gets the list page
    assert response is not None and response.status == 200
    await expect(page.locator("#events-table")).to_contain_text("No events match")
    for path in ("/events/99999999999999999999", "/events/99999999999999999999/edit"):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path


async def test_list_fits_a_phone(login_as: LoginAs, api: dict[str, Api]) -> None:
    ids = await _seed(api["user"])
    page = await login_as("user", viewport=PHONE)
    await page.goto("/events")
    await expect(names(page)).to_have_count(4)
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    assert max(widths) <= PHONE["width"], widths
    await page.goto(f"/events/{ids['alpha backup']}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("alpha backup")
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    assert max(widths) <= PHONE["width"], widths
    await page.goto("/events/new")
    widths = await page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth]"
    )
    assert max(widths) <= PHONE["width"], widths
