"""The events pages stay fast with 10,000 executions stored (the UI's 300 ms budget)."""

from __future__ import annotations

import httpx

from cronium.core import Core
from tests.conftest import PASSWORD, Api, Persona
from tests.support.page_speed import BUDGET_S, timed


async def test_pages_with_ten_thousand_executions(
    client: httpx.AsyncClient, core: Core, api: dict[str, Api], personas: dict[str, Persona]
) -> None:
    event_ids: list[int] = []
    owner_id = 0
    for i in range(60):
        response = await api["user"].post(
            "/events",
            json={
                "name": f"event {i:02d}",
                "language": "bash",
                "content": "true",
                "tags": [f"t{i % 5}"],
                "status": "active",
                "schedule": {"kind": "cron", "cron": "0 3 * * *", "timezone": "UTC"},
            },
        )
        assert response.status_code == 201, response.text
        event_ids.append(response.json()["id"])
        owner_id = response.json()["owner_id"]
    busy = event_ids[0]
    async with core.db.acquire() as conn:
        # 8,000 runs of one event, 2,000 spread over the others; a few still running.
        await conn.execute(
            """
            INSERT INTO executions (event_id, owner_id, status, trigger, created_at, started_at,
                                    finished_at, error)
            SELECT CASE WHEN n <= 8000 THEN $1 ELSE ($2::bigint[])[1 + n % 59] END,
                   $3, CASE WHEN n % 997 = 0 THEN 'running' WHEN n % 7 = 0 THEN 'failed'
                            ELSE 'succeeded' END::execution_status,
                   'schedule', now() - n * interval '1 minute',
                   now() - n * interval '1 minute', now() - n * interval '1 minute' + interval '2 s',
                   CASE WHEN n % 7 = 0 THEN 'exit code 1' END
            FROM generate_series(1, 10000) AS n
            """,
            busy,
            event_ids[1:],
            owner_id,
        )
        await conn.execute("ANALYZE executions")
    login = await client.post(
        "/api/v1/auth/login", json={"email": personas["user"].email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    headers = {"HX-Request": "true"}
    pages = [
        "/events",
        "/events?sort=-next_fire_at&tag=t1&status=active",
        "/events?offset=50",
        f"/events/{busy}",
        f"/events/{busy}?run_status=failed&offset=400",
        f"/events/{event_ids[5]}",
        f"/events/{busy}/edit",
    ]
    for path in pages:
        took = await timed(client, path)
        assert took < BUDGET_S, f"{path} took {took * 1000:.0f} ms"
    took = await timed(client, f"/events/{busy}/history?run_status=succeeded")
    assert took < BUDGET_S
    client.headers.update(headers)
    took = await timed(client, "/events?search=event%201")
    assert took < BUDGET_S
    fragment = await client.get("/events?search=event%201")
    assert "<html" not in fragment.text and 'data-event-id="' in fragment.text
    assert fragment.headers["vary"] == "HX-Request"  # caches keep page and fragment apart
