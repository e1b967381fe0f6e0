"""Listing executions: the created-at filters."""

from __future__ import annotations

import pytest

from tests.acceptance.test_events_api import error_of
from tests.conftest import Api


@pytest.mark.parametrize(
    "query",
    [
        # Year 1 with a positive offset is before year 1 in UTC (found by schemathesis).
        "since=0001-01-01T00:29:14%2B08:04",
        "until=0001-01-01T00:00:00%2B01:00",
    ],
)
async def test_a_bound_outside_the_utc_range_is_a_422(api: dict[str, Api], query: str) -> None:
    body = error_of(await api["user"].get(f"/executions?{query}"), 422)
    assert "out of range" in body["message"]


async def test_naive_and_aware_bounds_are_accepted(api: dict[str, Api]) -> None:
    for query in ("since=2030-01-01T00:00:00", "until=2030-01-01T00:00:00%2B02:00"):
        resp = await api["user"].get(f"/executions?{query}")
        assert resp.status_code == 200, resp.text
        assert resp.json()["items"] == []
