"""The events API refuses bad input with a JSON 4xx {"error": {code, message, details}},
never a 500 (DESIGN §10)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from cronium.core import Core
from tests.acceptance.test_events_api import SCRIPT, create, error_of, make_credential, make_server
from tests.conftest import Api

MIB = 1024 * 1024


async def post(api: dict[str, Api], persona: str = "user", **fields: Any) -> Any:
    return await api[persona].post("/events", json={**SCRIPT, **fields})


def cron(expression: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"schedule": {"kind": "cron", "cron": expression, "timezone": timezone}}


@pytest.mark.parametrize(
    "expression",
    [
        "*/5 * * * *",
        "0 3 * * MON-FRI",
        "*/2 * * * * *",
        "30 0 3 * * *",
        "0 0 29 2 *",
        "  0  3 * * * ",
    ],
)
async def test_it_accepts_a_cron_with_five_or_six_fields(
    api: dict[str, Api], expression: str
) -> None:
    resp = await post(api, **cron(expression))
    assert resp.status_code == 201, resp.text
    assert resp.json()["schedule"]["cron"] == " ".join(expression.split())


async def test_a_six_field_cron_has_seconds_first(api: dict[str, Api]) -> None:
    event = (await post(api, status="active", **cron("30 * * * * *"))).json()
    assert event["next_fire_at"].endswith(":30Z")


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("* * * *", "four fields"),
        ("0 0 * * * * *", "seven fields"),
        ("", "empty"),
        ("@daily", "a nickname"),
        ("61 * * * *", "minute 61"),
        ("0 24 * * *", "hour 24"),
        ("0 0 32 * *", "day 32"),
        ("0 0 0 * *", "day 0"),
        ("0 0 * 13 *", "month 13"),
        ("0 0 * * 8", "weekday 8"),
        ("60 * * * * *", "second 60"),
        ("-1 * * * *", "negative"),
        ("*/0 * * * *", "step 0"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 * JAN,XYZ *", "unknown month name"),
        ("R * * * *", "random"),
        ("H * * * *", "hashed"),
        ("a b c d e", "letters"),
    ],
)
async def test_it_refuses_a_bad_cron(api: dict[str, Api], expression: str, why: str) -> None:
    error_of(await post(api, **cron(expression)), 422, "schedule")


async def test_it_refuses_a_cron_with_seven_fields(api: dict[str, Api]) -> None:
    err = error_of(await post(api, **cron("0 0 12 * * * 2030")), 422, "schedule.cron")
    assert "got 7" in err["message"]


@pytest.mark.parametrize("zone", ["Mars/Olympus", "localtime", "utc+2", "", "Europe/Berlin\x00"])
async def test_it_refuses_an_unknown_timezone(api: dict[str, Api], zone: str) -> None:
    error_of(await post(api, **cron("0 3 * * *", zone)), 422, "schedule.timezone")


async def test_it_accepts_iana_timezones(api: dict[str, Api]) -> None:
    for index, zone in enumerate(["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"]):
        resp = await post(api, name=f"tz{index}", **cron("0 3 * * *", zone))
        assert resp.status_code == 201, resp.text
        assert resp.json()["schedule"]["timezone"] == zone


@pytest.mark.parametrize(
    "schedule",
    [
        {"kind": "interval", "every_seconds": 0},
        {"kind": "interval", "every_seconds": -5},
        {"kind": "interval", "every_seconds": "often"},
        {"kind": "interval"},
        {"kind": "once", "at": "2030-01-01T09:00:00"},
        {"kind": "once", "at": "tomorrow"},
        {"kind": "once", "at": "9999-12-31T23:00:00-05:00"},
        {"kind": "once"},
        {"kind": "weekly"},
        {"kind": "manual", "cron": "* * * * *"},
        {"cron": "* * * * *"},
        "daily",
    ],
)
async def test_it_refuses_a_bad_schedule(api: dict[str, Api], schedule: Any) -> None:
    error_of(await post(api, schedule=schedule), 422, "schedule")


async def test_a_once_schedule_needs_an_aware_datetime(api: dict[str, Api]) -> None:
    error_of(await post(api, schedule={"kind": "once", "at": "2030-01-01T09:00:00"}), 422, "at")
    resp = await post(api, schedule={"kind": "once", "at": "2030-01-01T09:00:00+02:00"})
    assert resp.status_code == 201
    assert resp.json()["schedule"] == {"kind": "once", "at": "2030-01-01T07:00:00Z"}
    error_of(await post(api, name="s", start_at="2030-01-01T09:00:00"), 422, "start_at")


async def test_script_content_is_limited_to_one_mebibyte(api: dict[str, Api]) -> None:
    error_of(await post(api, content="x" * (MIB + 1)), 422, "content")
    error_of(await post(api, content="é" * (MIB // 2) + "x"), 422, "content")  # bytes, not chars
    resp = await post(api, content="x" * MIB)
    assert resp.status_code == 201
    assert len(resp.json()["content"]) == MIB
    grow = await api["user"].patch(
        f"/events/{resp.json()['id']}", json={"content": "y" * (MIB + 1)}
    )
    error_of(grow, 422, "content")


async def test_names_are_unique_per_owner(api: dict[str, Api]) -> None:
    await create(api, name="backup")
    error_of(await post(api, name="backup"), 409, "name")
    error_of(await post(api, name="  backup  "), 409, "name")  # names are stripped
    other = await create(api, "other", name="backup")
    assert other["owner_id"] == 3
    second = await create(api, name="second")
    error_of(await api["user"].patch(f"/events/{second['id']}", json={"name": "backup"}), 409)
    same = await api["user"].patch(f"/events/{second['id']}", json={"name": "second"})
    assert same.status_code == 200


async def test_concurrent_creates_with_one_name_give_one_event(api: dict[str, Api]) -> None:
    results = await asyncio.gather(*(post(api, name="race") for _ in range(6)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 5, [r.text for r in results]


async def test_a_name_taken_by_a_transaction_in_flight_is_a_conflict(
    api: dict[str, Api], core: Core
) -> None:
    """The name check passes, then the insert waits on the unique index: still a 409."""
    async with core.engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(
            text("INSERT INTO events (owner_id, name, type) VALUES (2, 'race', 'script')")
        )
        request = asyncio.create_task(post(api, name="race"))
        await asyncio.sleep(0.5)  # the request checks the name and blocks on the index
        await tx.commit()
        resp = await request
    error_of(resp, 409, "name")


@pytest.mark.parametrize("name", ["", "   ", "\t\n", "a\x00b", "line\nbreak", "x" * 201])
async def test_it_refuses_a_bad_name(api: dict[str, Api], name: str) -> None:
    error_of(await post(api, name=name), 422, "name")


async def test_unknown_fields_are_refused_by_name(api: dict[str, Api]) -> None:
    err = error_of(await post(api, colour="blue"), 422, "colour")
    assert "unknown field" in err["message"]
    error_of(await post(api, schedule={"kind": "manual", "when": 1}), 422, "schedule.when")
    error_of(await post(api, targets={"local": True, "hosts": []}), 422, "targets.hosts")
    error_of(await post(api, webhook={"enabled": True, "key": "mine"}), 422, "webhook.key")
    error_of(await post(api, env_keys=["A"]), 422, "env_keys")
    event = await create(api)
    error_of(await api["user"].patch(f"/events/{event['id']}", json={"id": 5}), 422, "id")


@pytest.mark.parametrize(
    "env",
    [{"1ABC": "x"}, {"WITH SPACE": "x"}, {"DASH-ED": "x"}, {"": "x"}, {"CRONIUM_TOKEN": "x"},
     {"cronium_x": "x"}, {"A": 1}, {"A": "nul\x00"}, ["A=1"]],
)  # fmt: skip
async def test_it_refuses_bad_env(api: dict[str, Api], env: Any) -> None:
    error_of(await post(api, env=env), 422, "env")


@pytest.mark.parametrize(
    "image", ["Ubuntu", "-debian", "debian 12", "debian:", "a//b", "x" * 501, ""]
)
async def test_it_refuses_a_bad_image_reference(api: dict[str, Api], image: str) -> None:
    error_of(await post(api, image=image), 422, "image")


async def test_it_accepts_image_references(api: dict[str, Api]) -> None:
    for index, image in enumerate(
        [
            "debian",
            "debian:12-slim",
            "registry.local:5000/team/app:1.2",
            "alpine@sha256:" + "a" * 64,
        ]
    ):
        resp = await post(api, name=f"i{index}", image=image)
        assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "fields",
    [
        {"timeout_seconds": 0},
        {"timeout_seconds": "soon"},
        {"timeout_seconds": 1.5},
        {"timeout_seconds": 8 * 24 * 3600},
        {"retries": -1},
        {"retries": 21},
        {"retry_backoff_seconds": -1},
        {"max_executions": 0},
        {"max_executions": 2**31},
        {"max_concurrent": 0},
        {"misfire_window_seconds": 0},
        {"misfire_policy": "sometimes"},
        {"overlap_policy": "maybe"},
        {"status": "running"},
        {"type": "sql"},
        {"language": "ruby"},
        {"network": "yes please"},
        {"tags": "db"},
        {"tags": [" "]},
        {"tags": ["x" * 51]},
        {"tags": [f"t{i}" for i in range(31)]},
        {"input": [1, 2]},
        {"resources": {"cpu": 0}},
        {"resources": {"memory_mb": 1}},
        {"resources": {"pids": 1}},
        {"targets": {"local": False, "server_ids": []}},
        {"targets": {"server_ids": [0]}},
        {"targets": {"server_ids": [2**64]}},
        {"description": "x" * 10_001},
        {"content": "a\x00b"},
        {"webhook": {"enabled": True, "secret": "short"}},
    ],
)
async def test_it_refuses_a_bad_field(api: dict[str, Api], fields: dict[str, Any]) -> None:
    (field,) = fields
    error_of(await post(api, **fields), 422, field)


async def test_json_values_must_be_storable(api: dict[str, Api]) -> None:
    for raw in (b'{"x": NaN}', b'{"x": Infinity}', b'{"x": 1e400}', b'{"x": "\\u0000"}'):
        body = b'{"name": "j", "language": "bash", "input": ' + raw + b"}"
        resp = await api["user"].post(
            "/events", content=body, headers={"Content-Type": "application/json"}
        )
        error_of(resp, 422, "input")


@pytest.mark.parametrize(
    "http",
    [
        None,
        {"url": "ftp://127.0.0.1/x"},
        {"url": "127.0.0.1/x"},
        {"url": "http://127.0.0.1/a b"},
        {"url": "http://[::1"},
        {"url": "http://127.0.0.1", "method": "FETCH"},
        {"url": "http://127.0.0.1", "headers": {"X-A": "a\r\nInjected: 1"}},
        {"url": "http://127.0.0.1", "headers": {"Bad Name": "x"}},
        {"url": "http://127.0.0.1", "timeout_seconds": 0},
        {"url": "http://127.0.0.1", "body": {"k": "\x00"}},
    ],
)
async def test_it_refuses_a_bad_http_spec(api: dict[str, Api], http: Any) -> None:
    error_of(await post(api, type="http", http=http), 422)


async def test_tool_events_and_actions_need_a_credential_of_the_owner(
    api: dict[str, Api], core: Core
) -> None:
    foreign = await make_credential(core, owner_id=3)
    own = await make_credential(core, owner_id=2)
    for cred_id in (foreign, 999_999):
        tool = {"credential_id": cred_id, "action": "slack.send_message"}
        error_of(await post(api, type="tool", tool=tool), 422, "credential_id")
        action = {"on": "on_failure", "type": "tool", "credential_id": cred_id, "action": "x.y"}
        error_of(await post(api, actions=[action]), 422, "credential_id")
    error_of(await post(api, type="tool"), 422)
    error_of(await post(api, type="tool", tool={"credential_id": own}), 422, "tool.action")
    # The credential must belong to the event's owner, even when an admin writes the event.
    event = await create(api, name="n")
    tool = {"type": "tool", "tool": {"credential_id": foreign, "action": "slack.send_message"}}
    error_of(await api["admin"].patch(f"/events/{event['id']}", json=tool), 422, "credential_id")
    tool["tool"]["credential_id"] = own  # type: ignore[index]
    # A message with nothing to say is refused when saved, not when the first run sends it.
    error_of(await api["admin"].patch(f"/events/{event['id']}", json=tool), 422, "tool.params")
    tool["tool"]["params"] = {"text": "hi"}  # type: ignore[index]
    resp = await api["admin"].patch(f"/events/{event['id']}", json=tool)
    assert resp.status_code == 200, resp.text


async def test_actions_are_checked(api: dict[str, Api]) -> None:
    mine = await create(api, name="mine")
    theirs = await create(api, "other", name="theirs")
    bad = [
        {"on": "on_condition", "type": "run_event", "event_id": mine["id"]},
        {"on": "on_success", "condition": True, "type": "run_event", "event_id": mine["id"]},
        {"on": "on_success", "type": "run_event"},
        {"on": "on_success", "type": "tool", "action": "slack.send_message"},
        {"on": "whenever", "type": "run_event", "event_id": mine["id"]},
        {"on": "on_success", "type": "email", "event_id": mine["id"]},
        {"on": "on_success", "type": "run_event", "event_id": 2**63},
    ]
    for action in bad:
        error_of(await post(api, name="x", actions=[action]), 422, "actions")
    foreign = {"on": "on_success", "type": "run_event", "event_id": theirs["id"]}
    error_of(await post(api, name="x", actions=[foreign]), 422, "actions")
    error_of(await post(api, name="x", actions=[{**foreign, "event_id": 424242}]), 422, "actions")
    # An event may trigger itself (the chain depth limit stops loops).
    own = {"on": "always", "type": "run_event", "event_id": mine["id"]}
    resp = await api["user"].patch(f"/events/{mine['id']}", json={"actions": [own]})
    assert resp.status_code == 200, resp.text


async def test_targets_must_be_servers_of_the_owner(api: dict[str, Api]) -> None:
    mine = await make_server(api, "user")
    theirs = await make_server(api, "other")
    error_of(await post(api, targets={"local": True, "server_ids": [theirs]}), 422, "server_ids")
    error_of(await post(api, targets={"local": True, "server_ids": [123456]}), 422, "server_ids")
    resp = await post(api, targets={"local": False, "server_ids": [mine, mine]})
    assert resp.status_code == 201, resp.text
    assert resp.json()["targets"] == {"local": False, "server_ids": [mine]}


@pytest.mark.parametrize(
    "body",
    [b"{", b"", b"null", b"[]", b'"event"', b"{'name': 'x'}", b'{"name": "x",}', b"\xff\xfe"],
)
async def test_it_refuses_a_body_that_is_not_a_json_object(
    api: dict[str, Api], body: bytes
) -> None:
    for method, path in (
        ("POST", "/events"),
        ("PATCH", f"/events/{(await create(api, name=str(body)))['id']}"),
    ):
        resp = await api["user"].request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert 400 <= resp.status_code < 500, resp.text
        error_of(resp, resp.status_code)


@pytest.mark.parametrize(
    "path", ["/events/abc", "/events/0", "/events/-1", "/events/99999999999999999999"]
)
async def test_a_bad_event_id_is_a_4xx(api: dict[str, Api], path: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api["user"].request(method, path, json={})
        error_of(resp, 422, "event_id")
    for action in ("activate", "pause"):
        error_of(await api["user"].post(f"{path}/{action}"), 422, "event_id")
