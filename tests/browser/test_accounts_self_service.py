"""Self-service in the browser: a forgotten password reset from the emailed link, and API
tokens shown once, then only by prefix."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import LoginAs
from tests.conftest import PASSWORD, Api
from tests.support.mail import configure_mail, link_in, wait_for_mail
from tests.support.tool_receivers import SmtpServer

Shot = Callable[[Page, str], Awaitable[Path]]
NEW_PASSWORD = "my-brand-new-password"


async def test_a_forgotten_password_is_reset_from_the_emailed_link(
    anon_page: Page, api: dict[str, Api], smtp: SmtpServer, live_url: str
) -> None:
    await configure_mail(api["admin"], smtp, base_url=live_url)
    page = anon_page
    await page.goto("/login")
    await page.get_by_role("link", name="Forgot your password?").click()
    await expect(page).to_have_url("/forgot-password")
    await page.get_by_label("Email").fill("user@example.com")
    await page.get_by_role("button", name="Send the link").click()
    await expect(page.locator("[data-sent]")).to_contain_text(
        "If an account with this address exists"
    )
    (message,) = await wait_for_mail(smtp.mailbox, 1)
    url = link_in(message)
    assert url.startswith(f"{live_url}/reset-password?token=")

    await page.goto(url)
    await page.locator('[name="password"]').fill("short")
    await page.get_by_label("Repeat the new password").fill("short")
    await page.get_by_role("button", name="Set password").click()
    await expect(page.locator('[data-error-for="password"]')).to_contain_text("at least 8")
    await page.locator('[name="password"]').fill(NEW_PASSWORD)
    await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await expect(page).to_have_url("/login?reset=done")
    await expect(page.locator(".notice")).to_have_text(
        "Your password was changed. Sign in with the new one."
    )
    await page.get_by_label("Email").fill("user@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("[data-form-error]")).to_contain_text("wrong email or password")
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url("/")
    await expect(page.locator(".user-email")).to_have_text("user@example.com")

    response = await page.goto(url)
    assert response is not None and response.status == 410
    await expect(page.locator("[data-link-error]")).to_contain_text("already been used")
    await expect(page.get_by_role("link", name="Ask for a new link")).to_be_visible()
    response = await page.goto("/reset-password?token=made-up")
    assert response is not None and response.status == 400
    await expect(page.locator("[data-link-error]")).to_contain_text("not valid")


async def test_without_email_the_forgot_page_says_to_ask_an_admin(anon_page: Page) -> None:
    await anon_page.goto("/forgot-password")
    await anon_page.get_by_label("Email").fill("user@example.com")
    await anon_page.get_by_role("button", name="Send the link").click()
    await expect(anon_page.locator("[data-form-error]")).to_contain_text("ask an admin")


async def test_a_token_is_shown_once_then_only_by_its_prefix(login_as: LoginAs, shot: Shot) -> None:
    page = await login_as("viewer")
    await page.goto("/")
    await page.locator("summary").filter(has_text="viewer@example.com").click()
    await page.get_by_role("link", name="API tokens").click()
    await expect(page).to_have_url("/tokens")
    await expect(page.locator("#tokens-table")).to_contain_text("test")

    await page.get_by_label("Expires after (days)").fill("0")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator('[data-error-for="name"]')).not_to_be_empty()
    await expect(page.locator('[data-error-for="expires_in_days"]')).to_contain_text(
        "greater than or equal to 1"
    )
    await page.get_by_label("Name").fill("laptop")
    await page.get_by_label("Expires after (days)").fill("30")
    await page.get_by_role("button", name="Create token").click()
    value = page.locator("[data-new-token-value]")
    await expect(value).to_have_value(re.compile(r"^crn_[\w-]{40,}$"))
    token = await value.input_value()
    await expect(page.locator("[data-new-token]")).to_contain_text("not shown again")
    row = page.locator("#tokens-table tr", has_text="laptop")
    await expect(row).to_contain_text(token[:10] + "…")
    await expect(row).to_contain_text("in 29 d")
    await shot(page, "tokens")

    await page.reload()
    await expect(row).to_contain_text(token[:10])
    assert token not in await page.content()

    await page.get_by_label("Name").fill("laptop")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator('[data-error-for="name"]')).to_contain_text("already have")

    await row.get_by_role("button", name="Revoke").click()
    await expect(page.locator("#confirm-dialog")).to_contain_text("Revoke the token laptop")
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator(".toast.ok")).to_contain_text("Token revoked")
    await expect(row).to_have_count(0)
    await page.reload()
    await expect(row).to_have_count(0)
