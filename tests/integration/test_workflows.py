"""Workflows end to end: the graph API, the join rule, branches, cancel and a crashed node."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from cronium.core import Core
from cronium.engine.node import Node
from cronium.executors.registry import local_only
from tests.conftest import Api
from tests.integration.test_recovery import start_worker_node, wait_running_elsewhere
from tests.support.runs import create_event

FINAL = ("succeeded", "failed", "timed_out", "cancelled", "partial")


async def py_event(user: Api, name: str, code: str, **fields: object) -> int:
    return await create_event(user, name=name, language="python", content=code, **fields)


async def create_workflow(
    user: Api, nodes: list[tuple[str, int]], edges: list[tuple[str, str, str]], **fields: Any
) -> int:
    body = {
        "name": fields.pop("name", "wf"),
        "nodes": [{"key": key, "event_id": event_id} for key, event_id in nodes],
        "edges": [
            {"from": a, "to": b, "type": t.split(":")[0]}
            | ({"condition": t.endswith(":true")} if t.startswith("on_condition") else {})
            for a, b, t in edges
        ],
        **fields,
    }
    resp = await user.post("/workflows", json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def run_workflow(user: Api, workflow_id: int, input: Any = None) -> int:
    resp = await user.post(
        f"/workflows/{workflow_id}/run", json={"input": input} if input else None
    )
    assert resp.status_code == 202, resp.text
    return int(resp.json()["run_id"])


async def wait_run(user: Api, run_id: int, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = (await user.get(f"/workflow-runs/{run_id}")).json()
        if body["status"] in FINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow run {run_id} still {body['status']}: {body}")
        await asyncio.sleep(0.05)


def by_key(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["key"]: n for n in run["nodes"]}


# -- the graph API ---------------------------------------------------------------------------


async def test_a_cycle_is_refused_with_its_path(user: Api) -> None:
    e = await create_event(user, name="e")
    resp = await user.post(
        "/workflows",
        json={
            "name": "loop",
            "nodes": [{"key": k, "event_id": e} for k in ("a", "b", "c")],
            "edges": [
                {"from": "a", "to": "b"},
                {"from": "b", "to": "c"},
                {"from": "c", "to": "b"},
            ],
        },
    )
    assert resp.status_code == 422, resp.text
    message = resp.json()["error"]["message"]
    assert "cycle" in message and ("b → c → b" in message or "c → b → c" in message)


async def test_a_dangling_edge_and_a_foreign_event_are_refused(
    user: Api, api: dict[str, Api]
) -> None:
    mine = await create_event(user, name="mine")
    theirs = await create_event(api["other"], name="theirs")
    dangling = await user.post(
        "/workflows",
        json={
            "name": "w",
            "nodes": [{"key": "a", "event_id": mine}],
            "edges": [{"from": "a", "to": "zz"}],
        },
    )
    assert dangling.status_code == 422
    assert "no node has the key 'zz'" in dangling.json()["error"]["message"]
    foreign = await user.post(
        "/workflows", json={"name": "w", "nodes": [{"key": "a", "event_id": theirs}]}
    )
    assert foreign.status_code == 422
    assert f"event {theirs} not found" in foreign.json()["error"]["message"]
    bad_condition = await user.post(
        "/workflows",
        json={
            "name": "w",
            "nodes": [{"key": "a", "event_id": mine}, {"key": "b", "event_id": mine}],
            "edges": [{"from": "a", "to": "b", "type": "on_condition"}],
        },
    )
    assert bad_condition.status_code == 422


async def test_graph_round_trips_and_patch_keeps_nodes_by_key(
    user: Api, api: dict[str, Api]
) -> None:
    e = await create_event(user, name="e")
    workflow_id = await create_workflow(
        user, [("a", e), ("b", e)], [("a", "b", "on_condition:true")], name="round"
    )
    body = (await user.get(f"/workflows/{workflow_id}")).json()
    assert [n["key"] for n in body["nodes"]] == ["a", "b"]
    assert body["edges"][0] | {"id": 0} == {
        "id": 0,
        "from": "a",
        "to": "b",
        "type": "on_condition",
        "condition": True,
    }
    a_id = body["nodes"][0]["id"]
    patched = await user.patch(
        f"/workflows/{workflow_id}",
        json={
            "nodes": [{"key": "a", "event_id": e}, {"key": "c", "event_id": e}],
            "edges": [{"from": "a", "to": "c", "type": "always"}],
        },
    )
    assert patched.status_code == 200, patched.text
    after = patched.json()
    assert [n["key"] for n in after["nodes"]] == ["a", "c"]
    assert after["nodes"][0]["id"] == a_id
    assert (await api["viewer"].get(f"/workflows/{workflow_id}")).status_code == 200
    assert (await api["viewer"].post(f"/workflows/{workflow_id}/run")).status_code == 403
    assert (await api["other"].get(f"/workflows/{workflow_id}")).status_code == 404


# -- running -------------------------------------------------------------------------------


async def test_chain_passes_output_on_as_input(user: Api, node: Node) -> None:
    first = await py_event(user, "first", "cronium.output({'n': cronium.input()['n'] + 1})")
    second = await py_event(user, "second", "cronium.output({'n': cronium.input()['n'] * 10})")
    workflow_id = await create_workflow(
        user, [("one", first), ("two", second)], [("one", "two", "on_success")]
    )
    run = await wait_run(user, await run_workflow(user, workflow_id, {"n": 4}))
    assert run["status"] == "succeeded", run
    nodes = by_key(run)
    assert nodes["one"]["output"] == {"n": 5}
    assert nodes["two"]["input"] == {"n": 5}
    assert nodes["two"]["output"] == {"n": 50}
    assert all(n["duration_ms"] is not None for n in run["nodes"])


async def test_diamond_joins_both_parents_under_their_keys(user: Api, node: Node) -> None:
    start = await py_event(user, "start", "cronium.output({'v': 1})")
    left = await py_event(user, "left", "cronium.output({'left': cronium.input()['v']})")
    right = await py_event(user, "right", "cronium.output({'right': cronium.input()['v'] + 1})")
    join = await py_event(user, "join", "cronium.output(cronium.input())")
    workflow_id = await create_workflow(
        user,
        [("start", start), ("l", left), ("r", right), ("join", join)],
        [
            ("start", "l", "on_success"),
            ("start", "r", "on_success"),
            ("l", "join", "always"),
            ("r", "join", "always"),
        ],
    )
    run = await wait_run(user, await run_workflow(user, workflow_id))
    assert run["status"] == "succeeded", run
    joined = by_key(run)["join"]
    assert joined["output"] == {"l": {"left": 1}, "r": {"right": 2}}
    executions = [n["execution_id"] for n in run["nodes"]]
    assert len(set(executions)) == 4  # every node ran exactly once


async def test_failure_branch_runs_and_the_success_branch_is_skipped(user: Api, node: Node) -> None:
    broken = await create_event(user, name="broken", content="echo boom >&2; exit 3")
    notify = await create_event(user, name="notify", content="echo handling")
    happy = await create_event(user, name="happy", content="echo yay")
    after_happy = await create_event(user, name="after-happy", content="echo more")
    workflow_id = await create_workflow(
        user,
        [("broken", broken), ("notify", notify), ("happy", happy), ("after", after_happy)],
        [
            ("broken", "notify", "on_failure"),
            ("broken", "happy", "on_success"),
            ("happy", "after", "always"),
        ],
    )
    run = await wait_run(user, await run_workflow(user, workflow_id))
    nodes = by_key(run)
    assert nodes["broken"]["status"] == "failed"
    assert nodes["notify"]["status"] == "succeeded"
    assert nodes["happy"]["status"] == "skipped" and nodes["happy"]["execution_id"] is None
    assert nodes["after"]["status"] == "skipped"  # skips flow down the branch not taken
    assert run["status"] == "succeeded"  # the failure was handled by its branch


async def test_an_unhandled_failure_fails_the_run(user: Api, node: Node) -> None:
    broken = await create_event(user, name="broken", content="exit 1")
    workflow_id = await create_workflow(user, [("broken", broken)], [])
    run = await wait_run(user, await run_workflow(user, workflow_id))
    assert run["status"] == "failed" and "broken" in run["error"]


async def test_condition_picks_the_branch(user: Api, node: Node) -> None:
    decide = await py_event(user, "decide", "cronium.set_condition(cronium.input()['go'])")
    yes = await create_event(user, name="yes", content="echo yes")
    no = await create_event(user, name="no", content="echo no")
    workflow_id = await create_workflow(
        user,
        [("decide", decide), ("yes", yes), ("no", no)],
        [("decide", "yes", "on_condition:true"), ("decide", "no", "on_condition:false")],
    )
    run = by_key(await wait_run(user, await run_workflow(user, workflow_id, {"go": True})))
    assert (run["yes"]["status"], run["no"]["status"]) == ("succeeded", "skipped")
    run = by_key(await wait_run(user, await run_workflow(user, workflow_id, {"go": False})))
    assert (run["yes"]["status"], run["no"]["status"]) == ("skipped", "succeeded")


async def test_two_one_second_branches_run_in_parallel(user: Api, node: Node) -> None:
    slow = await create_event(user, name="slow", content="sleep 1")
    workflow_id = await create_workflow(user, [("p1", slow), ("p2", slow)], [])
    run = await wait_run(user, await run_workflow(user, workflow_id))
    assert run["status"] == "succeeded"
    a, b = run["nodes"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]
    assert run["duration_ms"] < 2000, run["duration_ms"]


async def test_cancel_stops_running_nodes_and_skips_the_rest(user: Api, node: Node) -> None:
    long = await create_event(user, name="long", content="echo started; sleep 60")
    later = await create_event(user, name="later", content="echo later")
    workflow_id = await create_workflow(
        user, [("long", long), ("later", later)], [("long", "later", "always")]
    )
    run_id = await run_workflow(user, workflow_id)
    for _ in range(200):
        body = (await user.get(f"/workflow-runs/{run_id}")).json()
        execution_id = by_key(body)["long"]["execution_id"]
        status = (await user.get(f"/executions/{execution_id}")).json()["status"]
        if status == "running":
            break
        await asyncio.sleep(0.05)
    resp = await user.post(f"/workflow-runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    run = await wait_run(user, run_id)
    nodes = by_key(run)
    assert run["status"] == "cancelled"
    assert nodes["long"]["status"] == "cancelled"
    assert nodes["later"]["status"] == "skipped"
    again = await user.post(f"/workflow-runs/{run_id}/cancel")
    assert again.status_code == 409


async def test_graph_edits_wait_for_open_runs(user: Api, node: Node) -> None:
    long = await create_event(user, name="long", content="sleep 30")
    workflow_id = await create_workflow(user, [("long", long)], [])
    run_id = await run_workflow(user, workflow_id)
    resp = await user.patch(
        f"/workflows/{workflow_id}", json={"nodes": [{"key": "x", "event_id": long}], "edges": []}
    )
    assert resp.status_code == 409 and str(run_id) in resp.json()["error"]["message"]
    renamed = await user.patch(f"/workflows/{workflow_id}", json={"description": "fine"})
    assert renamed.status_code == 200
    await user.post(f"/workflow-runs/{run_id}/cancel")


async def test_a_crashed_node_runner_neither_loses_nor_repeats_a_node(
    api: dict[str, Api], core: Core, database_url: str, tmp_path: Path
) -> None:
    user = api["user"]
    marker = tmp_path / "first-attempt"
    script = f"if [ -e {marker} ]; then echo second; exit 0; fi; touch {marker}; sleep 120"
    crashy = await create_event(
        user, name="crashy", content=script, retries=1, retry_backoff_seconds=0
    )
    after = await create_event(user, name="after", content="echo after")
    workflow_id = await create_workflow(
        user, [("crashy", crashy), ("after", after)], [("crashy", "after", "on_success")]
    )
    other = start_worker_node(database_url, tmp_path / "other", tmp_path / "other.log")
    try:
        run_id = await run_workflow(user, workflow_id)
        body = (await user.get(f"/workflow-runs/{run_id}")).json()
        execution_id = by_key(body)["crashy"]["execution_id"]
        await wait_running_elsewhere(core, execution_id, core.node_id)
        await asyncio.sleep(0.5)
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    survivor = Node(core, frozenset({"worker"}), local_only())
    task = asyncio.create_task(survivor.run())
    try:
        run = await wait_run(user, run_id, timeout_s=40)
    finally:
        survivor.stop()
        await asyncio.wait_for(task, timeout=30)
    assert run["status"] == "succeeded", run
    nodes = by_key(run)
    assert nodes["after"]["status"] == "succeeded"
    async with core.db.acquire() as conn:
        count = await conn.fetchval(
            "SELECT count(*) FROM executions WHERE workflow_run_id = $1", run_id
        )
    assert count == 2  # one execution per node: the retry reused crashy's


async def test_a_scheduled_workflow_runs_once_per_fire(user: Api, node: Node) -> None:
    tick = await create_event(user, name="tick", content="echo tick")
    workflow_id = await create_workflow(
        user,
        [("tick", tick)],
        [],
        status="active",
        schedule={"kind": "cron", "cron": "* * * * * *"},
    )
    deadline = time.monotonic() + 15
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = (await user.get(f"/workflows/{workflow_id}/runs")).json()["items"]
        if len([r for r in runs if r["status"] == "succeeded"]) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len([r for r in runs if r["status"] == "succeeded"]) >= 2, runs
    assert all(r["trigger"] == "schedule" for r in runs)
    fire_times = [r["scheduled_for"] for r in runs]
    assert len(fire_times) == len(set(fire_times))  # one run per fire time
    paused = await user.patch(f"/workflows/{workflow_id}", json={"status": "paused"})
    assert paused.status_code == 200 and paused.json()["next_fire_at"] is None
