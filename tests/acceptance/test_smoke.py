from __future__ import annotations

import httpx

from tests.conftest import PASSWORD, Api


async def test_health_answers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


async def test_a_user_logs_in_and_sees_themselves(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/api/v1/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    me = await client.get("/api/v1/auth/me")
    assert me.json()["email"] == "user@example.com"


async def test_a_user_creates_an_event(api: dict[str, Api]) -> None:
    resp = await api["user"].post(
        "/events", json={"name": "hello", "language": "bash", "content": "echo hi"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["owner_id"] == 2
