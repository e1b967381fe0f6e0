"""The engine end to end with the local executor: run, logs, timeout, cancel, retries."""

from __future__ import annotations

from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status
from tests.support.runs import create_event, run


async def test_a_manual_run_succeeds_and_keeps_its_output(api: dict[str, Api], node: Node) -> None:
    event_id = await create_event(api["user"], content="echo hello; echo oops >&2; exit 0")
    execution_id = await run(api["user"], event_id)
    done = await wait_for_status(api["user"], execution_id)
    assert done["status"] == "succeeded"
    assert done["jobs"][0]["exit_code"] == 0
    logs = (await api["user"].get(f"/executions/{execution_id}/logs")).json()
    lines = [(line["stream"], line["line"]) for line in logs["items"]]
    assert ("stdout", "hello") in lines
    assert ("stderr", "oops") in lines
    assert [line["seq"] for line in logs["items"]] == sorted(line["seq"] for line in logs["items"])


async def test_a_non_zero_exit_fails_with_its_code(api: dict[str, Api], node: Node) -> None:
    event_id = await create_event(api["user"], content="exit 3")
    done = await wait_for_status(api["user"], await run(api["user"], event_id))
    assert done["status"] == "failed"
    assert done["jobs"][0]["exit_code"] == 3


async def test_a_sleep_past_its_timeout_ends_timed_out(api: dict[str, Api], node: Node) -> None:
    event_id = await create_event(api["user"], content="sleep 100", timeout_seconds=1)
    done = await wait_for_status(api["user"], await run(api["user"], event_id))
    assert done["status"] == "timed_out"


async def test_a_cancelled_run_ends_cancelled(api: dict[str, Api], node: Node) -> None:
    import asyncio

    event_id = await create_event(api["user"], content="echo started; sleep 100")
    execution_id = await run(api["user"], event_id)
    await wait_for_status(api["user"], execution_id, ("running",))
    await asyncio.sleep(0.3)
    resp = await api["user"].post(f"/executions/{execution_id}/cancel")
    assert resp.status_code == 202, resp.text
    done = await wait_for_status(api["user"], execution_id)
    assert done["status"] == "cancelled"
