"""What every page owes its user: it fits a phone, reads in both themes, shows keyboard
focus, and carries one clear heading."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, LoginAs

PAGES = (
    "/",
    "/events",
    "/events/new",
    "/executions",
    "/workflows",
    "/workflows/new",
    "/servers",
    "/servers/new",
    "/variables",
    "/credentials",
    "/action-templates",
    "/tokens",
    "/monitoring",
    "/admin/users",
    "/settings",
)


async def _overflow_px(page: Page) -> int:
    """How far the page scrolls sideways (tables may scroll inside their own box)."""
    return int(
        await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_every_page_fits_a_phone_in_both_themes(login_as: LoginAs, theme: str) -> None:
    page = await login_as("admin", viewport=PHONE)
    await page.add_init_script(f"localStorage.setItem('cronium-theme', '{theme}')")
    for path in PAGES:
        response = await page.goto(path)
        assert response is not None and response.status == 200, path
        await expect(page.locator("html")).to_have_attribute("data-theme", theme)
        await expect(page.locator("main h1")).to_have_count(1)
        assert await _overflow_px(page) <= 1, f"{path} scrolls sideways at phone width"
        # The navigation folds into the menu button and opens from it.
        nav = page.locator("#main-nav")
        await expect(nav).to_be_hidden()
    await page.get_by_role("button", name="Menu").click()
    await expect(page.locator("#main-nav")).to_be_visible()
    await page.locator("#main-nav").get_by_role("link", name="Events").click()
    await expect(page).to_have_url("/events")


async def test_the_theme_switch_is_remembered(login_as: LoginAs) -> None:
    page = await login_as("user")
    await page.goto("/")
    before = await page.locator("html").get_attribute("data-theme")
    await page.get_by_role("button", name="Toggle theme").click()
    after = "dark" if before == "light" else "light"
    await expect(page.locator("html")).to_have_attribute("data-theme", after)
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.goto("/events")
    await expect(page.locator("html")).to_have_attribute("data-theme", after)
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == background


async def test_keyboard_focus_is_visible(login_as: LoginAs) -> None:
    page = await login_as("user")
    await page.goto("/events")
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    await expect(skip).to_be_in_viewport()
    for _ in range(3):
        await page.keyboard.press("Tab")
    outline = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, parseFloat(s.outlineWidth)]; })()"
    )
    assert outline[0] != "none" and outline[1] >= 2, outline
