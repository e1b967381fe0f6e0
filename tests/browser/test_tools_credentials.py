"""The credentials pages: forms that follow the tool, "Send test" against real receivers
(HTTP and SMTP), errors next to fields, secrets that never come back, and viewers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, LoginAs
from tests.conftest import Api
from tests.support.tool_receivers import Answer, HttpReceiver, http_receiver, smtp_server

Shot = Callable[[Page, str], Awaitable[Path]]
TOKEN = "Bearer sekrit-token-5d1c"
HOOK_PATH = "/hooks/private-7e2a"


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


def credential_id(page: Page) -> int:
    found = re.search(r"/credentials/(\d+)", page.url)
    assert found, page.url
    return int(found.group(1))


async def test_webhook_credential_is_created_tested_and_its_secrets_stay_hidden(
    login_as: LoginAs, hook: HttpReceiver, shot: Shot
) -> None:
    page = await login_as("user")
    await page.goto("/credentials")
    await page.get_by_role("link", name="New credential").click()
    await expect(page).to_have_url("/credentials/new")
    form = page.locator("#credential-form")
    await form.get_by_label("Name", exact=True).fill("ops hook")
    await form.locator("select[name=tool]").select_option("webhook")
    await form.locator('[name="config.url"]').fill("not a url")
    await form.get_by_role("button", name="Create credential").click()
    # The API's error, next to the URL field.
    await expect(form.locator('[data-error-for="config.url"]')).to_contain_text(
        "must be an absolute http:// or https:// URL"
    )
    await expect(form.locator('[name="config.url"]')).to_have_attribute("aria-invalid", "true")
    await form.locator('[name="config.headers"]').fill("{not json")
    await form.get_by_role("button", name="Create credential").click()
    await expect(form.locator('[data-error-for="config.headers"]')).to_contain_text(
        "not valid JSON"
    )
    await form.locator('[name="config.url"]').fill(hook.url + HOOK_PATH)
    await form.locator('[name="config.headers"]').fill(f'{{"Authorization": "{TOKEN}"}}')
    await form.locator('[name="config.method"]').select_option("PUT")
    await form.get_by_role("button", name="Create credential").click()
    await expect(page).to_have_url(re.compile(r"/credentials/\d+\?created=1$"))
    cred = credential_id(page)

    # Secret fields: never in the page, only "stored".
    html = await page.content()
    assert HOOK_PATH not in html and "sekrit-token" not in html
    url_input = page.locator('[name="config.url"]')
    await expect(url_input).to_have_value("")
    await expect(url_input).to_have_attribute("placeholder", "stored; leave empty to keep")
    await expect(page.locator('[name="config.method"]')).to_have_value("PUT")

    await page.locator("#credential-test").get_by_role("button", name="Send test").click()
    outcome = page.locator("#credential-test-outcome")
    await expect(outcome).to_contain_text("Sent · receiver answered HTTP 200")
    await expect(outcome).to_have_attribute("data-outcome", "ok")
    assert len(hook.calls) == 1
    call = hook.calls[0]
    assert (call["method"], call["path"]) == ("PUT", HOOK_PATH)
    assert call["headers"]["authorization"] == TOKEN

    # Renaming keeps the secrets (left empty) and the test still reaches the receiver.
    await page.get_by_label("Name", exact=True).fill("ops hook renamed")
    await page.get_by_role("button", name="Save").click()
    await expect(page).to_have_url(f"/credentials/{cred}?saved=1")
    await expect(page.locator("h1")).to_contain_text("ops hook renamed")
    assert HOOK_PATH not in await page.content()

    # A receiver refusing the message: the code, its message and the HTTP status inline.
    hook.queued.append(Answer(403, {"error": "forbidden here"}))
    await page.locator("#credential-test").get_by_role("button", name="Send test").click()
    await expect(outcome).to_contain_text("Failed: auth_failed")
    await expect(outcome).to_contain_text("(HTTP 403)")
    await expect(outcome).to_have_attribute("data-outcome", "error")

    # The list: send a test from the row, the last result stays in the row.
    await page.goto("/credentials")
    row = page.locator(f'tr[data-credential-id="{cred}"]')
    await expect(row).to_contain_text("HTTP webhook")
    # This browser remembers the last outcome it saw.
    await expect(row.locator(f"#test-{cred}")).to_have_text("failed: auth_failed (HTTP 403)")
    await row.get_by_role("button", name="Send test").click()
    await expect(row.locator(f"#test-{cred}")).to_have_text("ok (HTTP 200)")
    assert len(hook.calls) == 3
    assert HOOK_PATH not in await page.content()
    await shot(page, "tools")


async def test_a_bad_url_on_edit_is_shown_next_to_the_field_and_nothing_changes(
    login_as: LoginAs, api: dict[str, Api], hook: HttpReceiver
) -> None:
    body = {"name": "hook", "tool": "webhook", "config": {"url": hook.url + HOOK_PATH}}
    made = (await api["user"].post("/credentials", json=body)).json()
    page = await login_as("user")
    await page.goto(f"/credentials/{made['id']}")
    await page.locator('[name="config.url"]').fill("ftp://example.com/x")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="config.url"]')).to_contain_text(
        "must be an absolute http:// or https:// URL"
    )
    await page.locator('[name="config.url"]').fill("")
    await page.get_by_label("Name", exact=True).fill("")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('[data-error-for="name"]')).not_to_be_empty()
    await page.get_by_role("button", name="Send test").click()
    await expect(page.locator("#credential-test-outcome")).to_contain_text("Sent")
    assert hook.paths() == [HOOK_PATH]


async def test_email_credential_sends_a_test_through_smtp(
    login_as: LoginAs, tmp_path: Path
) -> None:
    with smtp_server(tmp_path) as smtp:
        page = await login_as("user", viewport=PHONE)
        await page.goto("/credentials/new?tool=email")
        form = page.locator("#credential-form")
        await expect(form.locator('[data-tool-fields="email"]')).to_be_visible()
        await expect(form.locator('[data-tool-fields="webhook"]')).to_be_hidden()
        email = form.locator('[data-tool-fields="email"]')
        await form.get_by_label("Name", exact=True).fill("mail")
        await form.get_by_role("button", name="Create credential").click()
        await expect(email.locator('[data-error-for="config.host"]')).to_contain_text("required")
        await email.locator('[name="config.host"]').fill("127.0.0.1")
        await email.locator('[name="config.port"]').fill(str(smtp.port))
        await email.locator('[name="config.security"]').select_option("starttls")
        await email.locator('[name="config.username"]').fill("robot")
        await email.locator('[name="config.password"]').fill("s3cret-pw")
        await email.locator('[name="config.from"]').fill("robot@example.com")
        await email.locator('[name="config.ca_cert"]').fill(smtp.cert_pem)
        await form.get_by_role("button", name="Create credential").click()
        await expect(page).to_have_url(re.compile(r"/credentials/\d+\?created=1$"))
        assert "s3cret-pw" not in await page.content()
        await expect(page.locator('[name="config.username"]')).to_have_value("robot")

        await page.locator("#test-to").fill("ops@example.com")
        await page.locator("#credential-test").get_by_role("button", name="Send test").click()
        await expect(page.locator("#credential-test-outcome")).to_contain_text(
            "Sent · to ops@example.com"
        )
        message = smtp.mailbox.messages[-1]
        assert message["to"] == ["ops@example.com"] and message["tls"]
        assert message["subject"] == "Cronium test message"
        assert smtp.mailbox.logins == ["robot"]

        # A wrong password is reported inline, and fixing it keeps the other fields.
        await page.locator('[name="config.password"]').fill("wrong")
        await page.get_by_role("button", name="Save").click()
        await expect(page).to_have_url(re.compile(r"\?saved=1$"))
        await page.locator("#credential-test").get_by_role("button", name="Send test").click()
        await expect(page.locator("#credential-test-outcome")).to_contain_text(
            "Failed: auth_failed"
        )
        assert len(smtp.mailbox.messages) == 1
        await page.locator('[name="config.password"]').fill("s3cret-pw")
        async with page.expect_navigation():  # from ?saved=1 to ?saved=1 again
            await page.get_by_role("button", name="Save").click()
        await page.locator("#credential-test").get_by_role("button", name="Send test").click()
        await expect(page.locator("#credential-test-outcome")).to_contain_text("Sent")
        assert len(smtp.mailbox.messages) == 2


async def test_delete_asks_first_and_a_used_credential_says_why_it_stays(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    body = {"name": "doomed", "tool": "discord", "config": {"webhook_url": "http://127.0.0.1:1/x"}}
    doomed = (await api["user"].post("/credentials", json=body)).json()["id"]
    page = await login_as("user")
    await page.goto("/credentials")
    row = page.locator(f'tr[data-credential-id="{doomed}"]')
    await row.get_by_role("button", name="Delete").click()
    dialog = page.locator("#confirm-dialog")
    await expect(dialog).to_contain_text("Delete the credential “doomed”?")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(row).to_be_visible()
    assert (await api["user"].get(f"/credentials/{doomed}")).status_code == 200
    await row.get_by_role("button", name="Delete").click()
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(row).to_have_count(0)
    assert (await api["user"].get(f"/credentials/{doomed}")).status_code == 404
    await expect(page.locator(".empty")).to_contain_text("No credentials yet")


async def test_viewer_sees_no_write_controls_and_the_api_refuses_writes(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    body = {"name": "seen", "tool": "slack", "config": {"webhook_url": "http://127.0.0.1:1/s"}}
    cred = (await api["user"].post("/credentials", json=body)).json()["id"]
    page = await login_as("viewer")
    await page.goto("/credentials")
    row = page.locator(f'tr[data-credential-id="{cred}"]')
    await expect(row).to_contain_text("user@example.com")
    main = page.locator("main")
    for name in ("New credential", "Send test", "Edit", "Delete"):
        await expect(main.get_by_role("button", name=name)).to_have_count(0)
        await expect(main.get_by_role("link", name=name)).to_have_count(0)
    await row.get_by_role("link", name="View").click()
    await expect(page).to_have_url(f"/credentials/{cred}")
    for name in ("Save", "Send test", "Delete"):
        await expect(main.get_by_role("button", name=name)).to_have_count(0)
    await expect(page.locator('[name="config.default_channel"]')).to_be_disabled()
    status = await page.evaluate(
        """async (id) => [
            (await window.Cronium.api("POST", "/api/v1/credentials",
                {name: "x", tool: "webhook", config: {url: "http://127.0.0.1:1/"}})).status,
            (await window.Cronium.api("PATCH", "/api/v1/credentials/" + id, {name: "y"})).status,
            (await window.Cronium.api("POST", "/api/v1/credentials/" + id + "/test")).status,
            (await window.Cronium.api("DELETE", "/api/v1/credentials/" + id)).status,
        ]""",
        cred,
    )
    assert status == [403, 403, 403, 403]
    assert (await api["user"].get(f"/credentials/{cred}")).json()["name"] == "seen"


async def test_the_tool_filter_narrows_the_list(login_as: LoginAs, api: dict[str, Api]) -> None:
    for name, tool, config in (
        ("a-slack", "slack", {"webhook_url": "http://127.0.0.1:1/s"}),
        ("b-teams", "teams", {"webhook_url": "http://127.0.0.1:1/t"}),
    ):
        body = {"name": name, "tool": tool, "config": config}
        assert (await api["user"].post("/credentials", json=body)).status_code == 201
    page = await login_as("user")
    await page.goto("/credentials")
    rows = page.locator("#credentials-table tbody tr")
    await expect(rows).to_have_count(2)
    await page.get_by_role("combobox", name="Tool").select_option("teams")  # submits on change
    await expect(page).to_have_url("/credentials?tool=teams")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("b-teams")
    await page.get_by_role("link", name="New credential").click()
    await expect(page.locator("select[name=tool]")).to_have_value("teams")
    await page.goto("/credentials?tool=nonsense")  # an old bookmark: every tool
    await expect(rows).to_have_count(2)
