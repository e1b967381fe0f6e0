"""Conditional actions: each fires exactly once per execution, passes output on as input,
and chains stop at the depth limit with a message."""

from __future__ import annotations

import asyncio
from typing import Any

from cronium.engine.actions import MAX_CHAIN_DEPTH
from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status

CURL = 'curl -s --unix-socket "${CRONIUM_RUNTIME_URL#unix://}" -H "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN"'


async def make(api: Api, name: str, content: str, **fields: Any) -> int:
    resp = await api.post(
        "/events", json={"name": name, "language": "bash", "content": content, **fields}
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def runs_of(
    api: Api, event_id: int, count: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        items = (await api.get(f"/executions?event_id={event_id}&limit=200")).json()["items"]
        done = [i for i in items if i["status"] not in ("queued", "running")]
        if len(done) >= count or asyncio.get_running_loop().time() > deadline:
            return done
        await asyncio.sleep(0.1)


async def test_on_success_runs_the_next_event_with_this_output_as_input(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    second = await make(user, "second", f"{CURL} http://x/runtime/v1/input; echo")
    first = await make(
        user,
        "first",
        f"""{CURL} -X PUT -d '{{"value": {{"answer": 42}}}}' http://x/runtime/v1/output""",
        actions=[
            {"on": "on_success", "type": "run_event", "event_id": second},
            {"on": "on_failure", "type": "run_event", "event_id": second},
        ],
    )
    run = await user.post(f"/events/{first}/run")
    await wait_for_status(user, run.json()["execution_id"])
    [child] = await runs_of(user, second, 1)
    assert child["trigger"] == "action"
    assert child["parent_execution_id"] == run.json()["execution_id"]
    assert child["input"] == {"answer": 42}
    logs = [
        line["line"] for line in (await user.get(f"/executions/{child['id']}/logs")).json()["items"]
    ]
    assert '{"value":{"answer":42}}' in logs
    await asyncio.sleep(1)
    assert len(await runs_of(user, second, 2, timeout_s=0)) == 1  # on_failure did not fire


async def test_on_condition_picks_the_branch_the_script_chose(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    yes = await make(user, "yes", "echo yes")
    no = await make(user, "no", "echo no")
    decider = await make(
        user,
        "decider",
        f"""{CURL} -X PUT -d '{{"value": false}}' http://x/runtime/v1/condition""",
        actions=[
            {"on": "on_condition", "condition": True, "type": "run_event", "event_id": yes},
            {"on": "on_condition", "condition": False, "type": "run_event", "event_id": no},
        ],
    )
    run = await user.post(f"/events/{decider}/run")
    done = await wait_for_status(user, run.json()["execution_id"])
    assert done["condition"] is False
    assert len(await runs_of(user, no, 1)) == 1
    await asyncio.sleep(0.5)
    assert await runs_of(user, yes, 1, timeout_s=0) == []


async def test_on_failure_and_always_fire_once_for_a_failed_run(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    alert = await make(user, "alert", "echo alert")
    failing = await make(
        user,
        "failing",
        "exit 1",
        actions=[
            {"on": "on_failure", "type": "run_event", "event_id": alert},
            {"on": "always", "type": "run_event", "event_id": alert},
            {"on": "on_success", "type": "run_event", "event_id": alert},
        ],
    )
    run = await user.post(f"/events/{failing}/run")
    await wait_for_status(user, run.json()["execution_id"])
    await asyncio.sleep(1)
    assert len(await runs_of(user, alert, 2)) == 2


async def test_a_self_triggering_chain_stops_at_the_depth_limit(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    loop_id = await make(user, "loop", "echo again")
    resp = await user.patch(
        f"/events/{loop_id}",
        json={"actions": [{"on": "always", "type": "run_event", "event_id": loop_id}]},
    )
    assert resp.status_code == 200, resp.text
    await user.post(f"/events/{loop_id}/run")
    runs = await runs_of(user, loop_id, MAX_CHAIN_DEPTH + 1, timeout_s=40)
    await asyncio.sleep(1)
    runs = await runs_of(user, loop_id, MAX_CHAIN_DEPTH + 2, timeout_s=0)
    assert len(runs) == MAX_CHAIN_DEPTH + 1
    deepest = max(runs, key=lambda r: r["id"])
    logs = [
        line["line"]
        for line in (await user.get(f"/executions/{deepest['id']}/logs")).json()["items"]
    ]
    assert any("chain depth limit" in line for line in logs)
