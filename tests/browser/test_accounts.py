"""Accounts in the browser: an admin sets up email (a bad port is refused next to the
field), invites someone, and the invited person sets a password from the emailed link and
is signed in; admins manage users; non-admins get a 403 page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, LoginAs
from tests.support.mail import link_in, wait_for_mail
from tests.support.tool_receivers import SmtpServer

Shot = Callable[[Page, str], Awaitable[Path]]
NEW_PASSWORD = "invited-persons-password"


async def fill_smtp_settings(page: Page, smtp: SmtpServer) -> None:
    await page.get_by_label("SMTP server").fill("127.0.0.1")
    await page.get_by_label("Security").select_option("starttls")
    await page.get_by_label("Username").fill("robot")
    await page.locator('[name="smtp.password"]').fill("s3cret-pw")
    await page.get_by_label("Sender address").fill("cronium@example.com")
    await page.get_by_label("Check the server's TLS certificate").uncheck()
    await page.get_by_label("Port").fill(str(smtp.port))


async def test_admin_sets_up_email_and_an_invited_person_signs_up(
    login_as: LoginAs, anon_page: Page, smtp: SmtpServer, live_url: str, shot: Shot
) -> None:
    page = await login_as("admin")
    await page.goto("/settings")
    await expect(page.locator("[data-email-state]")).to_have_text("Email is not set up yet.")
    await expect(page.get_by_label("Public address of Cronium")).to_have_value(live_url)
    await fill_smtp_settings(page, smtp)
    await page.get_by_label("Port").fill("70000")
    await page.get_by_role("button", name="Save settings").click()
    port_error = page.locator('[data-error-for="smtp.port"]')
    await expect(port_error).to_contain_text("less than or equal to 65535")
    await expect(page.get_by_label("Port")).to_have_attribute("aria-invalid", "true")

    await page.get_by_label("Port").fill(str(smtp.port))
    await page.get_by_role("button", name="Save settings").click()
    await expect(page.locator(".toast.ok")).to_contain_text("Settings saved")
    await expect(port_error).to_be_empty()
    await expect(page.locator("[data-email-state]")).to_have_text("Email is set up.")
    await expect(page.locator('[name="smtp.password"]')).to_have_value("")
    await expect(page.locator('[name="smtp.password"]')).to_have_attribute(
        "placeholder", "•••••• stored"
    )
    await page.get_by_role("button", name="Send test email").click()
    await expect(page.locator("[data-test-email-result]")).to_have_text(
        "Sent a test message to admin@example.com."
    )
    await page.evaluate("window.scrollTo(0, 0)")
    await shot(page, "settings")
    await page.reload()
    await expect(page.get_by_label("Port")).to_have_value(str(smtp.port))
    assert "s3cret-pw" not in await page.content()

    await page.goto("/admin/users")
    await page.get_by_role("button", name="Invite by email").click()
    invite = page.locator("#invite-form")
    await invite.get_by_label("Email").fill("new.person@example.com")
    await invite.get_by_label("Role").select_option("viewer")
    await invite.get_by_role("button", name="Send invitation").click()
    row = page.locator("#invitations-table tr", has_text="new.person@example.com")
    await expect(row).to_contain_text("viewer")
    messages = await wait_for_mail(smtp.mailbox, 2)
    assert messages[1]["to"] == ["new.person@example.com"]
    url = link_in(messages[1])
    assert url.startswith(f"{live_url}/accept-invite?token=")

    await anon_page.goto(url)
    await expect(anon_page.get_by_label("Email")).to_have_value("new.person@example.com")
    await anon_page.locator('[name="password"]').fill(NEW_PASSWORD)
    await anon_page.get_by_label("Repeat the password").fill(NEW_PASSWORD + "x")
    await anon_page.get_by_role("button", name="Create account").click()
    await expect(anon_page.locator('[data-error-for="password_repeat"]')).to_have_text(
        "the two passwords differ"
    )
    await anon_page.get_by_label("Repeat the password").fill(NEW_PASSWORD)
    await anon_page.get_by_role("button", name="Create account").click()
    await expect(anon_page).to_have_url("/")
    await expect(anon_page.locator(".user-email")).to_have_text("new.person@example.com")

    # The link worked once; the invitation is no longer pending; the account is listed.
    await anon_page.goto(url)
    await expect(anon_page.locator("[data-link-error]")).to_contain_text("already been used")
    await page.reload()
    await expect(page.locator("#invitations-table")).to_have_count(0)
    await expect(page.locator("#users-table")).to_contain_text("new.person@example.com")


async def test_without_email_the_admin_gets_the_invitation_link(login_as: LoginAs) -> None:
    page = await login_as("admin")
    await page.goto("/admin/users")
    await page.get_by_role("button", name="Invite by email").click()
    invite = page.locator("#invite-form")
    await invite.get_by_label("Email").fill("user@example.com")
    await invite.get_by_role("button", name="Send invitation").click()
    await expect(invite.locator('[data-error-for="email"]')).to_contain_text("already exists")
    await invite.get_by_label("Email").fill("offline@example.com")
    await invite.get_by_role("button", name="Send invitation").click()
    await expect(page.locator("[data-invite-error]")).to_contain_text("email is not set up")
    await expect(page.locator("[data-invite-link]")).to_have_value(
        __import__("re").compile(r"/accept-invite\?token=")
    )
    await page.reload()
    row = page.locator("#invitations-table tr", has_text="offline@example.com")
    await row.get_by_role("button", name="Revoke").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator("#invitations-table")).to_have_count(0)


async def test_admin_creates_changes_disables_and_deletes_a_user(
    login_as: LoginAs, shot: Shot
) -> None:
    page = await login_as("admin")
    await page.goto("/admin/users")
    own = page.locator('[data-user-row="1"]')
    await expect(own).to_contain_text("you")
    await expect(own.get_by_role("button")).to_have_count(0)
    await expect(own.locator("select")).to_have_count(0)

    await page.get_by_role("button", name="New user").click()
    create = page.locator("#create-user-form")
    await create.get_by_label("Email").fill("not-an-address")
    await create.get_by_label("Password").fill("short")
    await create.get_by_role("button", name="Create user").click()
    await expect(create.locator('[data-error-for="email"]')).not_to_be_empty()
    await expect(create.locator('[data-error-for="password"]')).to_contain_text(
        "at least 8 characters"
    )
    await create.get_by_label("Email").fill("carol@example.com")
    await create.get_by_label("Password").fill("carols-long-password")
    await create.get_by_label("Role").select_option("viewer")
    await create.get_by_role("button", name="Create user").click()
    row = page.locator("tr", has_text="carol@example.com")
    await expect(row.locator("select")).to_have_value("viewer")

    await row.locator("select").select_option("user")
    await expect(page.locator(".toast.ok")).to_contain_text("Role changed to user")
    await row.get_by_role("button", name="Disable").click()
    await expect(page.locator("#confirm-dialog")).to_contain_text("Disable carol@example.com")
    await page.locator("[data-confirm-ok]").click()
    await expect(row).to_contain_text("disabled")
    await shot(page, "users")
    await row.get_by_role("button", name="Enable").click()
    await expect(row).to_contain_text("active")
    await page.reload()
    await expect(row.locator("select")).to_have_value("user")

    await page.get_by_role("searchbox").fill("carol")
    await expect(page).to_have_url("/admin/users?search=carol")
    await expect(page.locator("#users-table tbody tr")).to_have_count(1)
    await row.get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator("#users-table")).to_contain_text("No users match.")


async def test_demoting_the_last_other_admin_shows_the_apis_refusal(login_as: LoginAs) -> None:
    page = await login_as("admin")
    await page.goto("/admin/users")
    row = page.locator('[data-user-row="2"]')
    await row.locator("select").select_option("admin")
    await expect(page.locator(".toast.ok")).to_contain_text("Role changed to admin")
    # Admin 1 steps down through another session: now user 2 is the only admin left.
    other = await login_as("user")
    await other.goto("/admin/users")
    own = other.locator('[data-user-row="2"]')
    await expect(own).to_contain_text("you")
    target = other.locator('[data-user-row="1"]')
    await target.locator("select").select_option("user")
    await expect(other.locator(".toast.ok")).to_contain_text("Role changed to user")
    await page.goto("/admin/users")
    await expect(page.locator("h1")).to_have_text("Forbidden")


async def test_non_admins_get_a_403_page_for_users_and_settings(login_as: LoginAs) -> None:
    for persona in ("user", "viewer"):
        page = await login_as(persona)
        for path in ("/admin/users", "/settings"):
            response = await page.goto(path)
            assert response is not None and response.status == 403
            await expect(page.locator("h1")).to_have_text("Forbidden")
            await expect(page.locator("main")).to_contain_text("Only admins")
        await page.goto("/")
        await expect(page.locator("#main-nav")).not_to_contain_text("Users")
        await expect(page.locator("#main-nav")).not_to_contain_text("Settings")


@pytest.mark.parametrize("path", ["/admin/users", "/settings", "/tokens"])
async def test_account_pages_fit_a_phone(login_as: LoginAs, path: str) -> None:
    page = await login_as("admin", viewport=PHONE)
    await page.goto(path)
    await expect(page.locator("h1")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width} px wide at phone width"
