"""Servers in the browser: add one against a real sshd, check it, use its terminal."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api
from tests.support.sshd import SshHost, add_server, ssh_user, sshd_factory

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]
Shot = Callable[[Page, str], Awaitable[Path]]


def field(page: Page, name: str) -> Locator:
    """A form input by its name (the labels also hold the help text)."""
    return page.locator(f'[name="{name}"]')


async def fill_server_form(page: Page, host: SshHost, name: str) -> None:
    await field(page, "name").fill(name)
    await field(page, "host").fill("127.0.0.1")
    await field(page, "port").fill(str(host.port))
    await field(page, "username").fill(host.user.name)
    await field(page, "auth.private_key").fill(host.user.private_key)


async def test_add_check_and_open_a_terminal(
    login_as: LoginAs, sshd_factory: HostFactory, shot: Shot
) -> None:
    host = sshd_factory("web-1")
    page = await login_as("user")
    await page.goto("/servers")
    await page.get_by_role("link", name="Add server").click()
    await expect(page).to_have_url("/servers/new")

    # The API's validation errors land next to their fields.
    await field(page, "name").fill("web-1")
    await field(page, "host").fill("root@example.com")
    await field(page, "username").fill(host.user.name)
    await page.get_by_role("button", name="Add server").click()
    await expect(page.locator('[data-error-for="host"]')).to_contain_text("hostname")
    await expect(page.locator('[data-error-for="auth.private_key"]')).not_to_be_empty()

    await fill_server_form(page, host, "web-1")
    await page.get_by_role("button", name="Add server").click()
    await expect(page).to_have_url(re.compile(r"/servers/\d+$"))
    await expect(page.get_by_role("heading", level=1)).to_contain_text("web-1")
    await expect(page.locator("[data-server-status]")).to_have_text("unknown")

    await page.get_by_role("button", name="Check").click()
    result = page.locator("#check-result")
    # Connecting and probing can take a while on a busy machine.
    await expect(result).to_contain_text("Reachable", timeout=20_000)
    await expect(result).to_contain_text(host.fingerprint)
    await expect(result).to_contain_text("Connect time")
    await expect(page.locator("[data-server-status]")).to_have_text("online")
    await expect(page.locator(".facts [data-server-fingerprint]")).to_have_text(host.fingerprint)
    # The key is write-only: the page says it is stored and never shows it.
    assert "PRIVATE KEY" not in await page.content()

    await page.goto("/servers")
    row = page.locator("tr", has_text="web-1")
    await expect(row.locator("[data-server-status]")).to_have_text("online")
    await expect(row).to_contain_text(host.fingerprint)
    await shot(page, "servers")

    await row.get_by_role("link", name="Terminal").click()
    await expect(page.locator("[data-terminal-state]")).to_have_text("connected", timeout=20_000)
    await expect(page.locator(".xterm-rows")).to_contain_text("$", timeout=20_000)  # the prompt
    await page.locator(".xterm").click()
    await page.keyboard.type("echo terminal-$((6*7))-ok")
    await page.keyboard.press("Enter")
    # The command line echoes "$((6*7))"; only the shell's output reads 42.
    await expect(page.locator(".xterm-rows")).to_contain_text("terminal-42-ok")
    await shot(page, "terminal")
    await page.keyboard.type("exit 5")
    await page.keyboard.press("Enter")
    await expect(page.locator("[data-terminal-state]")).to_have_text("ended (5)")
    await expect(page.locator("[data-terminal-reconnect]")).to_be_visible()


async def test_edit_keeps_stored_secrets_and_delete_confirms(
    login_as: LoginAs, api: dict[str, Api], sshd_factory: HostFactory
) -> None:
    host = sshd_factory("db-1")
    server_id = await add_server(api["user"], host)
    page = await login_as("user")
    await page.goto(f"/servers/{server_id}/edit")
    key_box = field(page, "auth.private_key")
    await expect(key_box).to_have_value("")
    await expect(key_box).to_have_attribute("placeholder", "stored")
    await field(page, "name").fill("db-renamed")
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(f"/servers/{server_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("db-renamed")
    # Saving without typing a key kept the stored one: the check still logs in.
    await page.get_by_role("button", name="Check").click()
    await expect(page.locator("#check-result")).to_contain_text("Reachable", timeout=20_000)

    # Switching to password auth without a password is refused next to the field.
    await page.goto(f"/servers/{server_id}/edit")
    await page.get_by_role("radio", name="Password").check()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="auth.password"]')).not_to_be_empty()

    await page.goto(f"/servers/{server_id}")
    await page.get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-cancel]").click()
    assert (await api["user"].get(f"/servers/{server_id}")).status_code == 200
    await page.get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page).to_have_url("/servers")
    assert (await api["user"].get(f"/servers/{server_id}")).status_code == 404


async def test_viewer_sees_servers_but_cannot_change_them(
    login_as: LoginAs, api: dict[str, Api], sshd_factory: HostFactory
) -> None:
    host = sshd_factory("ro-1")
    server_id = await add_server(api["user"], host)
    page = await login_as("viewer")
    await page.goto("/servers")
    row = page.locator("tr", has_text="ro-1")
    await expect(row).to_be_visible()
    await expect(page.get_by_role("link", name="Add server")).to_have_count(0)
    await expect(row.get_by_role("button")).to_have_count(0)
    await page.goto(f"/servers/{server_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("ro-1")
    await expect(page.get_by_role("button", name="Check")).to_have_count(0)
    await expect(page.get_by_role("link", name="Terminal")).to_have_count(0)
    response = await page.goto(f"/servers/{server_id}/terminal")
    assert response is not None and response.status == 403
    status = await page.evaluate(
        "async (id) => (await window.Cronium.api('POST', `/api/v1/servers/${id}/check`)).status",
        server_id,
    )
    assert status == 403


async def test_servers_list_at_phone_width(login_as: LoginAs, api: dict[str, Api]) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    body = {
        "name": "a-server-with-a-rather-long-name",
        "host": "build-agent-17.internal.example.com",
        "username": "deploy",
        "auth": {"type": "key", "private_key": key},
        "host_key_fingerprint": "SHA256:" + "x" * 43,
    }
    assert (await api["user"].post("/servers", json=body)).status_code == 201
    page = await login_as("user", viewport=PHONE)
    await page.goto("/servers")
    await expect(page.get_by_role("link", name=body["name"])).to_be_visible()
    await expect(page.get_by_role("button", name="Check")).to_be_visible()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
