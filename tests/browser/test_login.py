"""Signing in and out in the browser, and the headers every page carries."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.browser.conftest import LoginAs
from tests.conftest import PASSWORD


async def test_login_form_signs_in_and_returns_to_the_asked_page(anon_page: Page) -> None:
    page = anon_page
    await page.goto("/events")
    await expect(page).to_have_url("/login?next=/events")
    await page.get_by_label("Email").fill("user@example.com")
    await page.get_by_label("Password").fill("wrong password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("[data-form-error]")).to_contain_text("wrong email or password")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url("/events")
    await expect(page.locator(".user-email")).to_have_text("user@example.com")


async def test_sign_out_ends_the_session(login_as: LoginAs) -> None:
    page = await login_as("user")
    await page.goto("/")
    await page.locator(".user-menu summary").click()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url("/login")
    await page.goto("/")
    await expect(page).to_have_url("/login?next=/")


async def test_login_refuses_an_offsite_next(anon_page: Page) -> None:
    await anon_page.goto("/login?next=//evil.example/")
    await expect(anon_page.locator("#login-form")).to_have_attribute("data-redirect", "/")


async def test_pages_carry_security_headers(live_url: str) -> None:
    async with httpx.AsyncClient(base_url=live_url) as client:
        response = await client.get("/login")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
