"""The events REST API: create/read/patch/delete of the whole contract shape (DESIGN §10),
write-only env and webhook secrets, PATCH merging, activation and pausing.

Validation rules are in test_events_validation.py, listing and ownership in
test_events_listing.py; both import the helpers defined here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text

from cronium.core import Core
from cronium.db.models import ToolCredential, ToolKind
from tests.conftest import Api

SCRIPT: dict[str, Any] = {"name": "backup", "language": "bash", "content": "echo hi"}
SECRET = "s3cret-value-for-hmac"
ZONE = ZoneInfo("Europe/Berlin")


async def create(api: dict[str, Api], persona: str = "user", **fields: Any) -> dict[str, Any]:
    resp = await api[persona].post("/events", json={**SCRIPT, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def error_of(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """Assert a JSON error body with `status`; `field` must be named in its details."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    err: dict[str, Any] = body["error"]
    assert set(err) == {"code", "message", "details"}
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and err["message"]
    if field is not None:
        details = err["details"]
        named = [d["field"] for d in details] if isinstance(details, list) else [details["field"]]
        assert any(field in name for name in named), (field, err)
    return err


async def make_credential(core: Core, owner_id: int, name: str = "ops-slack") -> int:
    """There is no credentials API yet: insert the row directly."""
    async with core.sessions() as db, db.begin():
        cred = ToolCredential(
            owner_id=owner_id,
            name=name,
            tool=ToolKind.slack,
            config_encrypted=core.cipher.encrypt_json({"webhook_url": "http://127.0.0.1:9/x"}),
        )
        db.add(cred)
        await db.flush()
        return cred.id


async def make_server(api: dict[str, Api], persona: str = "user", name: str = "web-1") -> int:
    resp = await api[persona].post(
        "/servers",
        json={
            "name": name,
            "host": "127.0.0.1",
            "port": 22,
            "username": "deploy",
            "auth": {"type": "password", "password": "x"},
        },
    )
    assert resp.status_code == 201, resp.text
    server_id: int = resp.json()["id"]
    return server_id


async def sql(core: Core, statement: str, **params: Any) -> Any:
    async with core.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return result.first() if result.returns_rows else None


def full_script_event(server_id: int, target_id: int, cred_id: int) -> dict[str, Any]:
    return {
        "name": "Nightly backup",
        "description": "dumps the database",
        "type": "script",
        "language": "python",
        "content": "print('hi')\n",
        "status": "paused",
        "schedule": {"kind": "cron", "cron": "*/5 * * * *", "timezone": "Europe/Berlin"},
        "start_at": "2030-01-01T00:00:00Z",
        "max_executions": 10,
        "reset_counter_on_activate": True,
        "misfire_policy": "run_all",
        "misfire_window_seconds": 120,
        "overlap_policy": "queue",
        "max_concurrent": 2,
        "timeout_seconds": 60,
        "retries": 3,
        "retry_backoff_seconds": 5,
        "targets": {"local": True, "server_ids": [server_id]},
        "env": {"DB_PASSWORD": "hunter2", "MODE": "full"},
        "input": {"paths": ["/a", "/b"], "deep": {"n": 1.5, "none": None}},
        "image": "debian:12-slim",
        "resources": {"cpu": 0.5, "memory_mb": 512, "pids": 256},
        "network": True,
        "tags": ["db", "nightly"],
        "actions": [
            {"on": "on_success", "type": "run_event", "event_id": target_id},
            {"on": "on_condition", "condition": True, "type": "run_event", "event_id": target_id},
            {
                "on": "on_failure",
                "type": "tool",
                "credential_id": cred_id,
                "action": "slack.send_message",
                "params": {"text": "{{event.name}} failed"},
            },
        ],
        "webhook": {"enabled": True, "secret": SECRET},
    }


def assert_matches(out: dict[str, Any], sent: dict[str, Any]) -> None:
    """Every sent field comes back as sent, except the write-only ones."""
    for key, value in sent.items():
        if key == "env":
            assert out["env_keys"] == sorted(value)
            assert "env" not in out
        elif key == "webhook":
            assert out["webhook"]["enabled"] == value["enabled"]
            assert out["webhook"]["has_secret"] == bool(value.get("secret"))
            assert "secret" not in out["webhook"]
        elif key == "actions":
            got = [{k: v for k, v in a.items() if k != "id" and v is not None} for a in out[key]]
            assert got == [{"params": {}, **a} for a in value]
        elif key in ("start_at",):
            assert datetime.fromisoformat(out[key]) == datetime.fromisoformat(value)
        else:
            assert out[key] == value, key


async def test_a_script_event_with_every_field_round_trips(api: dict[str, Api], core: Core) -> None:
    server_id = await make_server(api)
    target = await create(api, name="target")
    cred_id = await make_credential(core, owner_id=2)
    sent = full_script_event(server_id, target["id"], cred_id)

    created = await api["user"].post("/events", json=sent)
    assert created.status_code == 201, created.text
    out = created.json()
    assert_matches(out, sent)
    assert out["owner_id"] == 2 and out["execution_count"] == 0
    assert out["next_fire_at"] is None  # paused
    assert len(out["webhook"]["key"]) >= 20

    fetched = await api["user"].get(f"/events/{out['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == out

    deleted = await api["user"].delete(f"/events/{out['id']}")
    assert deleted.status_code == 204
    error_of(await api["user"].get(f"/events/{out['id']}"), 404)
    error_of(await api["user"].delete(f"/events/{out['id']}"), 404)


async def test_every_field_can_be_patched(api: dict[str, Api], core: Core) -> None:
    first, second = await make_server(api, name="a"), await make_server(api, name="b")
    target = await create(api, name="target")
    cred_id = await make_credential(core, owner_id=2)
    event = await create(api, **full_script_event(first, target["id"], cred_id))
    changes: dict[str, Any] = {
        "name": "Weekly backup",
        "description": "",
        "language": "node",
        "content": "console.log(1)",
        "status": "draft",
        "schedule": {"kind": "interval", "every_seconds": 90},
        "start_at": "2031-06-01T12:00:00Z",
        "max_executions": None,
        "reset_counter_on_activate": False,
        "misfire_policy": "skip",
        "misfire_window_seconds": 60,
        "overlap_policy": "skip",
        "max_concurrent": None,
        "timeout_seconds": 30,
        "retries": 0,
        "retry_backoff_seconds": 0,
        "targets": {"local": False, "server_ids": [second]},
        "env": {"OTHER": "x"},
        "input": {},
        "image": None,
        "resources": {"cpu": 2.0, "memory_mb": 64, "pids": 16},
        "network": False,
        "tags": ["weekly"],
        "actions": [{"on": "always", "type": "run_event", "event_id": target["id"]}],
        "webhook": {"enabled": False},
    }
    resp = await api["user"].patch(f"/events/{event['id']}", json=changes)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert_matches(out, {k: v for k, v in changes.items() if k != "webhook"})
    assert out["webhook"] == {"enabled": False, "key": None, "has_secret": True}
    assert (await api["user"].get(f"/events/{event['id']}")).json() == out


async def test_an_http_event_round_trips(api: dict[str, Api]) -> None:
    http = {
        "method": "POST",
        "url": "https://127.0.0.1:8443/hook?x=1",
        "headers": {"Content-Type": "application/json", "X-Token": "abc"},
        "body": {"hello": ["world", 1, True, None]},
        "timeout_seconds": 15,
    }
    event = await create(api, name="ping", type="http", language=None, content="", http=http)
    assert event["type"] == "http" and event["http"] == http and event["tool"] is None

    resp = await api["user"].patch(
        f"/events/{event['id']}", json={"http": {"url": "http://127.0.0.1/health"}}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["http"] == {
        "method": "GET",
        "url": "http://127.0.0.1/health",
        "headers": {},
        "body": None,
        "timeout_seconds": None,
    }


async def test_a_tool_event_uses_the_owners_credential(api: dict[str, Api], core: Core) -> None:
    cred_id = await make_credential(core, owner_id=2)
    tool = {"credential_id": cred_id, "action": "slack.send_message", "params": {"text": "hi"}}
    event = await create(api, name="notify", type="tool", language=None, tool=tool)
    assert event["tool"] == tool and event["http"] is None
    assert (await api["user"].get(f"/events/{event['id']}")).json()["tool"] == tool


async def test_env_values_are_write_only_and_encrypted_at_rest(
    api: dict[str, Api], core: Core
) -> None:
    event = await create(api, env={"API_KEY": "plaintext-needle-42", "B": "two"})
    assert event["env_keys"] == ["API_KEY", "B"]
    assert "plaintext-needle-42" not in (await api["user"].get(f"/events/{event['id']}")).text

    row = await sql(core, "SELECT env_encrypted FROM events WHERE id = :id", id=event["id"])
    assert row.env_encrypted and b"plaintext-needle-42" not in bytes(row.env_encrypted)
    assert core.cipher.decrypt_json(bytes(row.env_encrypted)) == {
        "API_KEY": "plaintext-needle-42",
        "B": "two",
    }

    kept = await api["user"].patch(f"/events/{event['id']}", json={"name": "renamed"})
    assert kept.json()["env_keys"] == ["API_KEY", "B"]
    row2 = await sql(core, "SELECT env_encrypted FROM events WHERE id = :id", id=event["id"])
    assert core.cipher.decrypt_json(bytes(row2.env_encrypted))["API_KEY"] == "plaintext-needle-42"

    cleared = await api["user"].patch(f"/events/{event['id']}", json={"env": {}})
    assert cleared.json()["env_keys"] == []
    row3 = await sql(core, "SELECT env_encrypted FROM events WHERE id = :id", id=event["id"])
    assert row3.env_encrypted is None


async def test_enabling_a_webhook_shows_a_key_and_hides_the_secret(
    api: dict[str, Api], core: Core
) -> None:
    event = await create(api)
    assert event["webhook"] == {"enabled": False, "key": None, "has_secret": False}
    path = f"/events/{event['id']}"

    on = (
        await api["user"].patch(path, json={"webhook": {"enabled": True, "secret": SECRET}})
    ).json()
    key = on["webhook"]["key"]
    assert on["webhook"]["enabled"] and on["webhook"]["has_secret"] and key
    assert SECRET not in (await api["user"].get(path)).text
    row = await sql(
        core, "SELECT webhook_secret_encrypted FROM events WHERE id = :id", id=event["id"]
    )
    assert SECRET.encode() not in bytes(row.webhook_secret_encrypted)

    renamed = (await api["user"].patch(path, json={"name": "other"})).json()
    assert renamed["webhook"] == {"enabled": True, "key": key, "has_secret": True}

    # A webhook patch that names only regenerate_key keeps the hook enabled and its secret.
    new = (await api["user"].patch(path, json={"webhook": {"regenerate_key": True}})).json()
    assert new["webhook"]["enabled"] and new["webhook"]["has_secret"]
    assert new["webhook"]["key"] not in (None, key)

    off = (await api["user"].patch(path, json={"webhook": {"enabled": False}})).json()
    assert off["webhook"] == {"enabled": False, "key": None, "has_secret": True}
    again = (await api["user"].patch(path, json={"webhook": {"enabled": True}})).json()
    assert again["webhook"]["key"] == new["webhook"]["key"]  # the key survives a pause

    cleared = (await api["user"].patch(path, json={"webhook": {"secret": None}})).json()
    assert cleared["webhook"] == {
        "enabled": True,
        "key": new["webhook"]["key"],
        "has_secret": False,
    }


async def test_patching_only_the_name_keeps_everything_else(
    api: dict[str, Api], core: Core
) -> None:
    server_id = await make_server(api)
    target = await create(api, name="target")
    cred_id = await make_credential(core, owner_id=2)
    before = await create(api, **full_script_event(server_id, target["id"], cred_id))
    resp = await api["user"].patch(f"/events/{before['id']}", json={"name": "Renamed"})
    assert resp.status_code == 200, resp.text
    after = resp.json()
    assert after["name"] == "Renamed"
    ignore = {"name", "updated_at", "actions"}
    assert {k: v for k, v in after.items() if k not in ignore} == {
        k: v for k, v in before.items() if k not in ignore
    }
    strip_ids = [{k: v for k, v in a.items() if k != "id"} for a in after["actions"]]
    assert strip_ids == [{k: v for k, v in a.items() if k != "id"} for a in before["actions"]]


async def test_a_patch_that_makes_the_event_invalid_is_refused(api: dict[str, Api]) -> None:
    event = await create(api)
    path = f"/events/{event['id']}"
    error_of(await api["user"].patch(path, json={"type": "http"}), 422)
    error_of(await api["user"].patch(path, json={"type": "tool"}), 422)
    error_of(await api["user"].patch(path, json={"targets": {"local": False}}), 422)
    for field in ("name", "timeout_seconds", "schedule", "webhook", "type", "tags", "retries"):
        error_of(await api["user"].patch(path, json={field: None}), 422, field)
    error_of(await api["user"].patch(path, json={"timeout_seconds": 0}), 422, "timeout_seconds")
    unchanged = (await api["user"].get(path)).json()
    assert unchanged == event


async def test_an_empty_patch_changes_nothing(api: dict[str, Api]) -> None:
    event = await create(api, env={"A": "1"}, webhook={"enabled": True, "secret": SECRET})
    resp = await api["user"].patch(f"/events/{event['id']}", json={})
    assert resp.status_code == 200, resp.text
    ignore = {"updated_at"}
    assert {k: v for k, v in resp.json().items() if k not in ignore} == {
        k: v for k, v in event.items() if k not in ignore
    }


def _fire(out: dict[str, Any]) -> datetime | None:
    value = out["next_fire_at"]
    return datetime.fromisoformat(value) if value else None


async def test_activation_computes_the_next_fire_and_pausing_clears_it(api: dict[str, Api]) -> None:
    now = datetime.now(UTC)
    at = (now + timedelta(days=3)).replace(microsecond=0)
    schedules = {
        "cron": {"kind": "cron", "cron": "0 3 * * *", "timezone": "Europe/Berlin"},
        "interval": {"kind": "interval", "every_seconds": 600},
        "once": {"kind": "once", "at": at.isoformat()},
        "manual": {"kind": "manual"},
    }
    for name, schedule in schedules.items():
        event = await create(api, name=name, schedule=schedule)
        assert event["status"] == "draft" and event["next_fire_at"] is None
        active = await api["user"].post(f"/events/{event['id']}/activate")
        assert active.status_code == 200, active.text
        fire = _fire(active.json())
        assert active.json()["status"] == "active"
        if name == "manual":
            assert fire is None
        elif name == "once":
            assert fire == at
        elif name == "interval":
            assert fire is not None and timedelta(0) < fire - now <= timedelta(seconds=605)
        else:
            assert fire is not None and timedelta(0) < fire - now <= timedelta(days=1)
            assert fire.astimezone(ZONE).hour == 3 and fire.minute == 0
        paused = await api["user"].post(f"/events/{event['id']}/pause")
        assert paused.status_code == 200
        assert paused.json()["status"] == "paused" and paused.json()["next_fire_at"] is None


async def test_creating_an_active_event_schedules_it(api: dict[str, Api]) -> None:
    before = datetime.now(UTC)
    event = await create(api, status="active", schedule={"kind": "cron", "cron": "*/2 * * * * *"})
    after = datetime.now(UTC)
    fire = _fire(event)
    assert fire is not None and fire.second % 2 == 0
    # The next even second after the moment of creation (not after "now": a slow machine
    # may already have passed it by the time the answer is read).
    assert before < fire <= after + timedelta(seconds=2)


async def test_an_interval_with_a_future_start_fires_first_at_the_start(
    api: dict[str, Api],
) -> None:
    start = "2030-05-01T08:00:00Z"
    interval = {"kind": "interval", "every_seconds": 3600}
    event = await create(api, status="active", start_at=start, schedule=interval)
    assert _fire(event) == datetime.fromisoformat(start)


async def test_activation_resets_the_counter_when_asked(api: dict[str, Api], core: Core) -> None:
    resetting = await create(api, name="r", reset_counter_on_activate=True, max_executions=5)
    keeping = await create(
        api, name="k", max_executions=5, schedule={"kind": "cron", "cron": "0 * * * *"}
    )
    await sql(core, "UPDATE events SET execution_count = 5")

    out = (await api["user"].post(f"/events/{resetting['id']}/activate")).json()
    assert out["execution_count"] == 0
    kept = (await api["user"].post(f"/events/{keeping['id']}/activate")).json()
    assert kept["execution_count"] == 5
    assert kept["next_fire_at"] is None  # max_executions reached: no more fires

    # Activating an already active event does not reset again.
    await sql(core, "UPDATE events SET execution_count = 3 WHERE id = :id", id=resetting["id"])
    again = (await api["user"].post(f"/events/{resetting['id']}/activate")).json()
    assert again["execution_count"] == 3


async def test_a_start_at_the_end_of_time_does_not_break_scheduling(api: dict[str, Api]) -> None:
    start = "9999-12-31T23:59:59Z"
    cron = await create(
        api,
        name="cron",
        status="active",
        start_at=start,
        schedule={"kind": "cron", "cron": "* * * * *"},
    )
    assert cron["status"] == "active" and cron["next_fire_at"] is None  # no minute after it
    interval = {"kind": "interval", "every_seconds": 60}
    event = await create(api, name="interval", status="active", start_at=start, schedule=interval)
    assert _fire(event) == datetime.fromisoformat(start)
