"""The event editor and the event page in the browser: inline errors, preview, run now."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import LoginAs
from tests.conftest import Api

Shot = Callable[[Page, str], Awaitable[Path]]


async def test_create_python_event_fix_cron_and_run_it(
    login_as: LoginAs, shot: Shot, api: dict[str, Api]
) -> None:
    page = await login_as("user")
    await page.goto("/events")
    await page.get_by_role("link", name="New event").click()
    await expect(page).to_have_url("/events/new")
    await page.locator('[name="name"]').fill("Nightly report")
    await page.locator('[name="tags"]').fill("reports, nightly")
    await expect(page.locator(".cm-content")).to_contain_text("Hello from Cronium")

    # A bad cron shows its error while typing (preview) and next to the field on save.
    await page.locator('[name="schedule.kind"]').select_option("cron")
    cron = page.locator('[name="schedule.cron"]')
    await cron.fill("61 * * * *")
    await expect(page.locator("[data-preview-error]")).to_contain_text("invalid cron")
    await page.get_by_role("button", name="Create event").click()
    slot = page.locator('[data-error-for="schedule.cron"]')
    await expect(slot).to_contain_text("invalid cron expression")
    await expect(cron).to_have_attribute("aria-invalid", "true")
    await expect(page).to_have_url("/events/new")

    # Fixed: five fire times in the event's timezone.
    await cron.fill("*/5 * * * *")
    await page.locator('[name="schedule.timezone"]').select_option("Europe/Berlin")
    fires = page.locator("#schedule-preview [data-fires] li")
    await expect(fires).to_have_count(5)
    await expect(page.locator("#schedule-preview")).to_contain_text("Europe/Berlin")
    await expect(page.locator("[data-preview-error]")).to_have_count(0)
    await expect(slot).to_be_empty()
    await expect(cron).not_to_have_attribute("aria-invalid", "true")
    await page.locator("#schedule-fields").scroll_into_view_if_needed()
    await shot(page, "event-editor")
    await page.get_by_role("button", name="Create event").click()

    await expect(page).to_have_url(re.compile(r"/events/\d+$"))
    event_id = int(page.url.rsplit("/", 1)[1])
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Nightly report")
    await expect(page.locator('[data-summary="schedule"]')).to_have_text(
        "cron */5 * * * * (Europe/Berlin)"
    )
    await expect(page.locator('[data-summary="next-fire"]')).to_contain_text("UTC")
    await expect(page.locator('[data-summary="next-fire"]')).to_contain_text(re.compile("CES?T"))
    stored = (await api["user"].get(f"/events/{event_id}")).json()
    assert stored["schedule"] == {
        "kind": "cron",
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
    }
    assert stored["language"] == "python" and stored["tags"] == ["reports", "nightly"]
    assert stored["status"] == "active"

    # Run now: bad JSON is refused inline; good JSON starts a run and opens it.
    run_input = page.locator('#run-form [name="input"]')
    await run_input.fill("{not json")
    await page.get_by_role("button", name="Run now").click()
    await expect(page.locator('[data-error-for="input"]')).to_contain_text("not valid JSON")
    await run_input.fill('{"day": "friday"}')
    await page.get_by_role("button", name="Run now").click()
    await expect(page).to_have_url(re.compile(r"/executions/\d+$"))
    execution_id = int(page.url.rsplit("/", 1)[1])
    execution = (await api["user"].get(f"/executions/{execution_id}")).json()
    assert execution["event_id"] == event_id
    assert execution["input"] == {"day": "friday"}

    # The history lists the run and follows it live until it has finished.
    await page.goto(f"/events/{event_id}")
    row = page.locator(f'#history tr[data-run-id="{execution_id}"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".badge")).to_have_text("succeeded", timeout=20_000)
    # Every 5 minutes: the next fire is always near, so the history keeps refreshing to
    # show the scheduled runs as they come (a manual event stops: see the test below).
    await expect(page.locator("#history")).to_have_attribute("data-live", "")
    await shot(page, "event")
    await page.locator('[data-run-filter="failed"]').click()
    await expect(page.locator("#history")).to_contain_text("No runs with status failed")
    await page.locator('[data-run-filter="succeeded"]').click()
    await expect(page.locator(f'#history tr[data-run-id="{execution_id}"]')).to_be_visible()


async def test_editing_keeps_stored_values_and_places_nested_errors(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    target = await api["user"].post(
        "/events", json={"name": "Cleanup", "content": "true", "language": "bash"}
    )
    assert target.status_code == 201, target.text
    created = await api["user"].post(
        "/events",
        json={
            "name": "Ping",
            "type": "http",
            "http": {"method": "POST", "url": "https://example.com/a", "headers": {"X-A": "1"}},
            "schedule": {"kind": "interval", "every_seconds": 7200},
            "env": {"TOKEN": "s3cret"},
            "actions": [{"on": "on_failure", "type": "run_event", "event_id": target.json()["id"]}],
            "webhook": {"enabled": True},
        },
    )
    assert created.status_code == 201, created.text
    event = created.json()
    page = await login_as("user")
    await page.goto(f"/events/{event['id']}/edit")
    await expect(page.locator('[name="http.url"]')).to_have_value("https://example.com/a")
    await expect(page.locator('[name="interval_value"]')).to_have_value("2")
    await expect(page.locator('[name="interval_unit"]')).to_have_value("hours")
    await expect(page.locator("#schedule-preview [data-fires] li")).to_have_count(5)
    await expect(page.locator('[data-kv="headers"] [data-k]')).to_have_value("X-A")
    await expect(page.locator('[data-kv="env"] [data-k]')).to_have_value("TOKEN")
    await expect(page.locator('.action-row [data-a="event_id"]')).to_have_value(
        str(target.json()["id"])
    )
    hook = page.locator("#webhook-url")
    await expect(hook).to_have_value(re.compile(r"/api/v1/webhooks/" + event["webhook"]["key"]))

    # A bad URL lands next to the URL field; a tool action without credential on its row.
    await page.locator('[name="http.url"]').fill("ftp://nowhere")
    await page.get_by_role("button", name="Add action").click()
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator('[data-error-for="http.url"]')).to_contain_text("http:// or https://")
    await expect(page.locator('[data-error-for="actions.1"]')).to_contain_text("credential_id")
    await page.locator(".action-row").nth(1).get_by_role("button", name="Remove action").click()
    await page.locator('[name="http.url"]').fill("https://example.com/b")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page).to_have_url(f"/events/{event['id']}")

    stored = (await api["user"].get(f"/events/{event['id']}")).json()
    assert stored["http"]["url"] == "https://example.com/b"
    assert stored["http"]["headers"] == {"X-A": "1"}
    assert stored["env_keys"] == ["TOKEN"]  # untouched env is not sent, so it is kept
    assert stored["schedule"] == {"kind": "interval", "every_seconds": 7200}
    assert stored["webhook"]["key"] == event["webhook"]["key"]
    assert [a["event_id"] for a in stored["actions"]] == [target.json()["id"]]

    # Changing env without re-entering the stored value is stopped before the request.
    await page.goto(f"/events/{event['id']}/edit")
    await page.get_by_role("button", name="Add variable").click()
    await page.locator('[data-kv="env"] .kv-row').nth(1).locator("[data-k]").fill("MODE")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator('[data-error-for="env"]')).to_contain_text("TOKEN")


async def test_tool_event_with_once_schedule_and_conditional_actions(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    cred = await api["user"].post(
        "/credentials",
        json={"name": "ops hook", "tool": "webhook", "config": {"url": "https://example.com/h"}},
    )
    assert cred.status_code == 201, cred.text
    other = await api["user"].post(
        "/events", json={"name": "Follow-up", "language": "bash", "content": "true"}
    )
    assert other.status_code == 201, other.text
    page = await login_as("user")
    await page.goto("/events/new")
    await page.locator('[name="name"]').fill("Notify")
    await page.locator('[name="type"]').select_option("tool")
    await expect(page.locator('[data-section="script"]').first).to_be_hidden()
    await page.locator('[name="tool.credential_id"]').select_option(label="ops hook (webhook)")
    await expect(page.locator('[name="tool.action"] option')).to_have_count(2)  # "choose" + send
    await page.locator('[name="tool.action"]').select_option("webhook.send")
    await page.locator('[name="tool.params"]').fill('{"body": "hi"}')

    # Once, at a wall-clock time in Berlin: stored as the matching UTC instant.
    await page.locator('[name="schedule.kind"]').select_option("once")
    await page.locator('[name="schedule.timezone"]').select_option("Europe/Berlin")
    await page.locator("[data-at-local]").fill("2030-01-15T09:00:00")
    await expect(page.locator("#schedule-preview [data-fires] li")).to_have_text(
        re.compile(r"Tue 2030-01-15 09:00:00 CET\s+08:00:00 UTC")
    )

    # Actions: run another event on success; a tool message with bad JSON is refused inline.
    await page.get_by_role("button", name="Add action").click()
    first = page.locator(".action-row").nth(0)
    await first.locator('[data-a="on"]').select_option("on_success")
    await first.locator('[data-a="type"]').select_option("run_event")
    await first.locator('[data-a="event_id"]').select_option(label="Follow-up")
    await page.get_by_role("button", name="Add action").click()
    second = page.locator(".action-row").nth(1)
    await second.locator('[data-a="on"]').select_option("on_condition")
    await second.locator('[data-a="condition"]').select_option("false")
    await second.locator('[data-a="credential_id"]').select_option(label="ops hook (webhook)")
    await second.locator('[data-a="action"]').select_option("webhook.send")
    await second.locator('[data-a="params"]').fill("{oops")
    await page.get_by_role("button", name="Create event").click()
    await expect(page.locator('[data-error-for="actions.1"]')).to_contain_text("not valid JSON")
    await second.locator('[data-a="params"]').fill('{"body": "{{ event.name }}"}')
    await page.get_by_role("button", name="Create event").click()
    await expect(page).to_have_url(re.compile(r"/events/\d+$"))
    event_id = int(page.url.rsplit("/", 1)[1])
    await expect(page.locator(".summary")).to_contain_text("run event “Follow-up”")

    stored = (await api["user"].get(f"/events/{event_id}")).json()
    assert stored["type"] == "tool"
    assert stored["tool"] == {
        "credential_id": cred.json()["id"],
        "action": "webhook.send",
        "params": {"body": "hi"},
    }
    assert stored["schedule"] == {"kind": "once", "at": "2030-01-15T08:00:00Z"}
    actions = [
        {k: v for k, v in a.items() if k != "id" and v not in (None, {})} for a in stored["actions"]
    ]
    assert actions == [
        {"on": "on_success", "type": "run_event", "event_id": other.json()["id"]},
        {
            "on": "on_condition",
            "condition": False,
            "type": "tool",
            "credential_id": cred.json()["id"],
            "action": "webhook.send",
            "params": {"body": "{{ event.name }}"},
        },
    ]

    # The editor shows the stored time back on the event's clock.
    await page.goto(f"/events/{event_id}/edit")
    await expect(page.locator("[data-at-local]")).to_have_value("2030-01-15T08:00")


async def test_event_page_follows_a_run_live_and_its_buttons_work(
    login_as: LoginAs, api: dict[str, Api]
) -> None:
    created = await api["user"].post(
        "/events",
        json={
            "name": "Slow",
            "language": "bash",
            "content": "sleep 4; echo done",
            "status": "active",
        },
    )
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    run = await api["user"].post(f"/events/{event_id}/run")
    assert run.status_code == 202, run.text
    execution_id = run.json()["execution_id"]

    page = await login_as("user")
    await page.goto(f"/events/{event_id}")
    row = page.locator(f'#history tr[data-run-id="{execution_id}"]')
    await expect(row.locator(".badge")).to_have_text(re.compile("queued|running"))
    await expect(page.locator("#history")).to_have_attribute("data-live", "")
    # No reload: the fragment polls itself every 3 s and stops once nothing is running.
    await expect(row.locator(".badge")).to_have_text("succeeded", timeout=20_000)
    await expect(page.locator("#history")).not_to_have_attribute("data-live", "")

    await page.get_by_role("button", name="Pause").click()
    await expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("paused")
    assert (await api["user"].get(f"/events/{event_id}")).json()["status"] == "paused"
    await page.get_by_role("button", name="Activate").click()
    await expect(page.get_by_role("heading", level=1).locator(".badge")).to_have_text("active")

    await page.get_by_role("button", name="Delete").click()
    await expect(page.locator("#confirm-dialog")).to_contain_text("Delete the event “Slow”")
    await page.locator("[data-confirm-cancel]").click()
    assert (await api["user"].get(f"/events/{event_id}")).status_code == 200
    await page.get_by_role("button", name="Delete").click()
    await page.locator("[data-confirm-ok]").click()
    await expect(page).to_have_url("/events")
    assert (await api["user"].get(f"/events/{event_id}")).status_code == 404


async def test_targets_pick_the_owners_ssh_servers(login_as: LoginAs, api: dict[str, Api]) -> None:
    server = {
        "host": "10.0.0.5",
        "port": 22,
        "username": "deploy",
        "auth": {"type": "password", "password": "pw"},
    }
    mine = await api["user"].post("/servers", json={"name": "web-1", **server})
    assert mine.status_code == 201, mine.text
    theirs = await api["other"].post("/servers", json={"name": "not-mine", **server})
    assert theirs.status_code == 201, theirs.text
    page = await login_as("user")
    await page.goto("/events/new")
    await page.locator('[name="name"]').fill("Deploy")
    await page.locator('[name="language"]').select_option("bash")
    await expect(page.locator(".cm-content")).to_contain_text('echo "Hello from Cronium"')
    await expect(page.locator("[data-server]")).to_have_count(1)  # only the user's own
    await expect(page.locator(".server-list")).not_to_contain_text("not-mine")
    await page.locator('[name="targets.local"]').uncheck()
    await page.get_by_role("button", name="Create event").click()
    await expect(page.locator('[data-error-for="targets"]')).to_contain_text("at least one server")
    await page.get_by_label("web-1").check()
    await page.locator('[name="timeout_seconds"]').fill("0")
    await page.get_by_role("button", name="Create event").click()
    await expect(page.locator('[data-error-for="timeout_seconds"]')).to_contain_text(
        "greater than or equal to 1"
    )
    await page.locator('[name="timeout_seconds"]').fill("60")
    await page.get_by_role("button", name="Create event").click()
    await expect(page).to_have_url(re.compile(r"/events/\d+$"))
    await expect(page.locator(".summary")).to_contain_text("web-1")
    event_id = int(page.url.rsplit("/", 1)[1])
    stored = (await api["user"].get(f"/events/{event_id}")).json()
    assert stored["targets"] == {"local": False, "server_ids": [mine.json()["id"]]}
    assert stored["timeout_seconds"] == 60 and stored["language"] == "bash"
