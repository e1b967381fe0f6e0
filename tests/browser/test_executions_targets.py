"""A run on several targets (this machine and a real sshd on loopback): the run page shows
one tab per target plus "All", and each tab shows only that target's lines."""

from __future__ import annotations

from collections.abc import Callable

from playwright.async_api import expect

from tests.browser.conftest import LoginAs
from tests.conftest import Api, wait_for_status
from tests.support.runs import run
from tests.support.sshd import SshHost, add_server, ssh_event, ssh_user, sshd_factory

__all__ = ["ssh_user", "sshd_factory"]

HostFactory = Callable[..., SshHost]


async def test_per_target_tabs_filter_the_log(
    login_as: LoginAs, api: dict[str, Api], sshd_factory: HostFactory
) -> None:
    user = api["user"]
    host = sshd_factory("web-1")
    server_id = await add_server(user, host)
    event_id = await ssh_event(
        user,
        [server_id],
        'for i in 1 2 3; do echo "$CRONIUM_EXECUTION_MODE says $i"; done',
        targets={"local": True, "server_ids": [server_id]},
    )
    execution_id = await run(user, event_id)
    assert (await wait_for_status(user, execution_id))["status"] == "succeeded"

    page = await login_as("user")
    await page.goto(f"/executions/{execution_id}")
    tabs = page.locator("[data-log-tabs]")
    await expect(tabs.get_by_role("tab")).to_have_text(["All", "local", "web-1"])
    log = page.locator("[data-log]")
    await expect(log.locator(".line", has_text="ssh says 3")).to_be_visible()
    await expect(log.locator(".line", has_text="local says 3")).to_be_visible()
    # On "All", each line names its target.
    await expect(log.locator('.line[data-target="web-1"] .target').first).to_have_text("web-1")

    await tabs.get_by_role("tab", name="web-1").click()
    await expect(tabs.get_by_role("tab", name="web-1")).to_have_attribute("aria-selected", "true")
    await expect(log.locator(".line", has_text="local says 1")).to_be_hidden()
    await expect(log.locator(".line", has_text="ssh says 1")).to_be_visible()

    await tabs.get_by_role("tab", name="All").click()
    await expect(log.locator(".line", has_text="local says 1")).to_be_visible()
    jobs = page.locator(".jobs-table tbody tr")
    await expect(jobs).to_have_count(2)
