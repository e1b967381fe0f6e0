"""The workflows pages stay fast with 10,000 runs and 10,000 executions stored (300 ms)."""

from __future__ import annotations

import httpx

from cronium.core import Core
from tests.conftest import PASSWORD, Api, Persona
from tests.support.page_speed import BUDGET_S, timed


async def test_workflow_pages_with_ten_thousand_runs(
    client: httpx.AsyncClient, core: Core, api: dict[str, Api], personas: dict[str, Persona]
) -> None:
    user = api["user"]
    events = []
    for i in range(3):
        response = await user.post(
            "/events", json={"name": f"step {i}", "language": "bash", "content": "true"}
        )
        assert response.status_code == 201, response.text
        events.append(response.json()["id"])
    workflows = []
    for i in range(40):
        response = await user.post(
            "/workflows",
            json={
                "name": f"wf {i:02d}",
                "nodes": [{"key": f"n{k}", "event_id": e} for k, e in enumerate(events)],
                "edges": [{"from": "n0", "to": "n1"}, {"from": "n1", "to": "n2"}],
            },
        )
        assert response.status_code == 201, response.text
        workflows.append(response.json())
    busy = workflows[0]
    owner_id = busy["owner_id"]
    node_ids = [n["id"] for n in busy["nodes"]]
    async with core.db.acquire() as conn:
        # 8,000 finished runs of one workflow, 2,000 over the others, each node an execution.
        await conn.execute(
            """
            INSERT INTO workflow_runs (workflow_id, owner_id, status, trigger, created_at,
                                       finished_at)
            SELECT CASE WHEN n <= 8000 THEN $1 ELSE ($2::bigint[])[1 + n % 39] END, $3,
                   CASE WHEN n % 7 = 0 THEN 'failed' ELSE 'succeeded' END::execution_status,
                   'schedule', now() - n * interval '1 minute',
                   now() - n * interval '1 minute' + interval '3 s'
            FROM generate_series(1, 10000) AS n
            """,
            busy["id"],
            [w["id"] for w in workflows[1:]],
            owner_id,
        )
        await conn.execute(
            """
            INSERT INTO executions (event_id, owner_id, status, trigger, created_at, started_at,
                                    finished_at)
            SELECT $1, $2, 'succeeded', 'workflow', now() - n * interval '1 minute',
                   now() - n * interval '1 minute', now() - n * interval '1 minute' + interval '1 s'
            FROM generate_series(1, 10000) AS n
            """,
            events[0],
            owner_id,
        )
        last_run = await conn.fetchval(
            "SELECT max(id) FROM workflow_runs WHERE workflow_id = $1", busy["id"]
        )
        await conn.execute(
            """
            INSERT INTO workflow_node_runs (run_id, node_id, status, started_at, finished_at)
            SELECT $1, node, 'succeeded', now() - interval '3 s', now()
            FROM unnest($2::bigint[]) AS node
            """,
            last_run,
            node_ids,
        )
        await conn.execute("ANALYZE workflow_runs")
        await conn.execute("ANALYZE executions")
    login = await client.post(
        "/api/v1/auth/login", json={"email": personas["user"].email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    pages = [
        "/workflows",
        "/workflows?offset=25",
        "/workflows?q=wf%201",
        f"/workflows/{busy['id']}",
        f"/workflows/{busy['id']}/runs?offset=4000",
        f"/workflows/{busy['id']}/edit",
        "/workflows/new",
        f"/workflow-runs/{last_run}",
    ]
    for path in pages:
        took = await timed(client, path)
        assert took < BUDGET_S, f"{path} took {took * 1000:.0f} ms"
    listing = await client.get("/workflows")
    assert listing.text.count("data-workflow-id=") == 25
    assert "of 40" in listing.text
