"""A run's output set through another node's Runtime API is masked too.

Scripts reach the Runtime API of the node that runs them (its socket), whose masker knows
the job's secrets. A script may still call another node's main port: that node loads the
execution's secrets from the database to mask the output it stores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import open_core
from cronium.engine.node import Node
from cronium.logs.capture import MASK
from tests.conftest import Api, wait_for_status
from tests.support.runs import create_event, run

VARIABLE_SECRET = "var-S3cret-5e6f7a8b"
ENV_SECRET = "env-S3cret-1a2b3c4d"


async def _wait_for(path: Path) -> str:
    async with asyncio.timeout(20):
        while not await asyncio.to_thread(path.exists):
            await asyncio.sleep(0.05)
    return await asyncio.to_thread(path.read_text)


async def test_output_set_through_another_nodes_main_port_is_masked(
    api: dict[str, Api], node: Node, settings: Settings, tmp_path: Path
) -> None:
    user = api["user"]
    made = await user.post(
        "/variables", json={"key": "vault", "value": VARIABLE_SECRET, "secret": True}
    )
    assert made.status_code == 201, made.text
    token_file, go = tmp_path / "token", tmp_path / "go"
    script = (
        f'printf %s "$CRONIUM_EXECUTION_TOKEN" > {token_file}.part && mv {token_file}.part '
        f"{token_file}; while [ ! -e {go} ]; do sleep 0.05; done"
    )
    event_id = await create_event(user, content=script, env={"API_KEY": ENV_SECRET})
    execution_id = await run(user, event_id)
    token = await _wait_for(token_file)

    other = await open_core(settings, run_migrations=False)  # a second node, same database
    try:
        transport = httpx.ASGITransport(app=create_app(settings, core=other))
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as client:
            resp = await client.put(
                "/runtime/v1/output",
                headers={"Authorization": f"Bearer {token}"},
                json={"value": {"v": VARIABLE_SECRET, "e": ENV_SECRET, "t": token, "n": 1}},
            )
        assert resp.status_code == 200, resp.text
    finally:
        await other.close()
    await asyncio.to_thread(go.touch)

    done = await wait_for_status(user, execution_id)
    assert done["status"] == "succeeded", done
    assert done["output"] == {"v": MASK, "e": MASK, "t": MASK, "n": 1}
