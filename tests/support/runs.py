"""Helpers every engine test uses: create an event, run it, read its log lines."""

from __future__ import annotations

from tests.conftest import Api


async def create_event(api: Api, **fields: object) -> int:
    """A bash `echo hi` event named "e" unless `fields` say otherwise; returns its id."""
    body = {"name": "e", "language": "bash", "content": "echo hi", **fields}
    resp = await api.post("/events", json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def run(api: Api, event_id: int, **body: object) -> int:
    """Start a run (optional body such as input=…); returns the execution id."""
    resp = await api.post(f"/events/{event_id}/run", json=body or None)
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


async def log_lines(api: Api, execution_id: int) -> list[tuple[str, str]]:
    """(stream, line) pairs of an execution's first page of logs."""
    items = (await api.get(f"/executions/{execution_id}/logs")).json()["items"]
    return [(item["stream"], item["line"]) for item in items]
