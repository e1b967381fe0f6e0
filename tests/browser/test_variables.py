"""Variables in the browser: secrets are masked and never reach the page."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from cronium.core import Core
from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api

Shot = Callable[[Page, str], Awaitable[Path]]
SECRET = "s3cr3t-d0-not-show-7f3a"


def field(page: Page, name: str) -> Locator:
    return page.locator(f'[name="{name}"]')


async def test_secret_variable_is_masked_and_never_sent(
    login_as: LoginAs, api: dict[str, Api], core: Core, shot: Shot
) -> None:
    await api["user"].post(
        "/variables", json={"key": "REGION", "value": "eu-west-1", "description": "where"}
    )
    await api["user"].post("/variables", json={"key": "limits", "value": {"cpu": 2}})
    page = await login_as("user")
    await page.goto("/variables")
    await page.get_by_role("link", name="New variable").click()
    await expect(page).to_have_url("/variables/new")

    # The API's validation error shows next to the key.
    await field(page, "key").fill("1bad key")
    await page.get_by_role("button", name="Create variable").click()
    await expect(page.locator('[data-error-for="key"]')).to_contain_text("must start with")

    await field(page, "key").fill("DB_PASSWORD")
    await field(page, "value").fill(SECRET)
    await field(page, "secret").check()
    await field(page, "description").fill("production database")
    await page.get_by_role("button", name="Create variable").click()
    await expect(page).to_have_url("/variables")

    row = page.locator("tr", has_text="DB_PASSWORD")
    await expect(row).to_contain_text("••••••")
    await expect(row).to_contain_text("secret")
    await expect(page.locator("tr", has_text="REGION")).to_contain_text("eu-west-1")
    await expect(page.locator("tr", has_text="limits")).to_contain_text('{"cpu": 2}')
    assert SECRET not in await page.content()
    await shot(page, "variables")

    # The search filters the table in place (HTMX) and lands in the address.
    await page.get_by_role("searchbox").fill("regi")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("REGION")
    await expect(page).to_have_url(re.compile(r"/variables\?search=regi"))
    await page.goto("/variables?kind=secret")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("DB_PASSWORD")
    await page.goto("/variables")

    # Editing a secret starts empty; saving it so keeps the stored value.
    await row.get_by_role("link", name="Edit").click()
    await expect(field(page, "value")).to_have_value("")
    assert SECRET not in await page.content()
    await field(page, "description").fill("prod db")
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url("/variables")
    await expect(page.locator("tr", has_text="DB_PASSWORD")).to_contain_text("prod db")
    stored = await _secret_value(core, "DB_PASSWORD")
    assert stored == SECRET

    # Making it plain without a new value is refused next to the value field.
    await page.locator("tr", has_text="DB_PASSWORD").get_by_role("link", name="Edit").click()
    await field(page, "secret").uncheck()
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="value"]')).to_contain_text("new value")

    # JSON values are parsed before they are sent; bad JSON is caught next to the field.
    await page.goto("/variables/new")
    await field(page, "key").fill("retries")
    await page.locator("[data-value-kind]").select_option("json")
    await field(page, "value").fill("{nope")
    await page.get_by_role("button", name="Create variable").click()
    await expect(page.locator('[data-error-for="value"]')).to_contain_text("not valid JSON")
    await field(page, "value").fill("[1, 2, 3]")
    await page.get_by_role("button", name="Create variable").click()
    await expect(page).to_have_url("/variables")
    await expect(page.locator("tr", has_text="retries")).to_contain_text("[1, 2, 3]")

    await page.locator("tr", has_text="REGION").get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page.locator("tr", has_text="REGION")).to_have_count(0)


async def _secret_value(core: Core, key: str) -> object:
    """The stored secret, decrypted as a script's read would (the API never returns it)."""
    async with core.db.acquire() as conn:
        encrypted = await conn.fetchval(
            "SELECT value_encrypted FROM variables WHERE key = $1 AND owner_id = 2", key
        )
    return core.cipher.decrypt_json(encrypted)


async def test_viewer_sees_no_edit_buttons_and_writes_are_refused(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    await api["user"].post("/variables", json={"key": "SHARED", "value": "x"})
    page = await login_as("viewer")
    await page.goto("/variables")
    await expect(page.locator("tr", has_text="SHARED")).to_be_visible()
    await expect(page.get_by_role("link", name="New variable")).to_have_count(0)
    await expect(page.get_by_role("link", name="Edit")).to_have_count(0)
    await expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    response = await page.goto("/variables/new")
    assert response is not None and response.status == 403
    await page.goto("/variables")
    status = await page.evaluate(
        "async () => (await window.Cronium.api('POST', '/api/v1/variables',"
        " {key: 'FROM_VIEWER', value: 'x'})).status"
    )
    assert status == 403
    listing = (await api["admin"].get("/variables", params={"search": "FROM_VIEWER"})).json()
    assert listing["total"] == 0


async def test_variables_at_phone_width(login_as: LoginAs, api: dict[str, Api]) -> None:
    await api["user"].post(
        "/variables", json={"key": "a_long_variable_key_name", "value": "v" * 300}
    )
    page = await login_as("user", viewport=PHONE)
    await page.goto("/variables")
    await expect(page.locator("tr", has_text="a_long_variable_key_name")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
