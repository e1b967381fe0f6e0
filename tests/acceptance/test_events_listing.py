"""Listing events (pagination, filters, sorting) and who may see or change which event."""

from __future__ import annotations

from typing import Any

import pytest

from tests.acceptance.test_events_api import create, error_of
from tests.conftest import Api


async def names(api: dict[str, Api], query: str = "", persona: str = "user") -> list[str]:
    resp = await api[persona].get(f"/events{query}")
    assert resp.status_code == 200, resp.text
    return [e["name"] for e in resp.json()["items"]]


async def seed(api: dict[str, Api]) -> dict[str, dict[str, Any]]:
    """Five events of the user in creation order, and one of the other user."""
    made = {
        "charlie": await create(api, name="charlie", tags=["db", "nightly"], status="active"),
        "alpha": await create(api, name="alpha", language="python", description="Backs up 100%_ok"),
        "echo": await create(
            api, name="echo", type="http", language=None, http={"url": "http://127.0.0.1/"}
        ),
        "bravo": await create(api, name="bravo", tags=["db"], status="paused"),
        "delta": await create(api, name="delta", language="node", status="archived"),
    }
    made["foreign"] = await create(api, "other", name="foreign", tags=["db"])
    return made


async def test_a_list_pages_through_the_users_events(api: dict[str, Api]) -> None:
    await seed(api)
    resp = await api["user"].get("/events?limit=2&offset=0")
    page = resp.json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 0)
    assert [e["name"] for e in page["items"]] == ["alpha", "bravo"]
    assert await names(api, "?limit=2&offset=2") == ["charlie", "delta"]
    assert await names(api, "?limit=2&offset=4") == ["echo"]
    past = (await api["user"].get("/events?offset=50")).json()
    assert past["items"] == [] and past["total"] == 5
    default = (await api["user"].get("/events")).json()
    assert default["limit"] == 50 and default["offset"] == 0
    item = default["items"][0]
    assert "env_keys" in item and "env" not in item and "webhook" in item


async def test_a_list_filters_by_status_type_language_tag_and_search(api: dict[str, Api]) -> None:
    await seed(api)
    assert await names(api, "?status=active") == ["charlie"]
    assert await names(api, "?status=archived") == ["delta"]
    assert await names(api, "?type=http") == ["echo"]
    assert await names(api, "?type=script&language=bash") == ["bravo", "charlie"]
    assert await names(api, "?language=python") == ["alpha"]
    assert await names(api, "?tag=db") == ["bravo", "charlie"]
    assert await names(api, "?tag=nightly") == ["charlie"]
    assert await names(api, "?tag=none") == []
    assert await names(api, "?search=ELT") == ["delta"]  # case-insensitive, in the name
    assert await names(api, "?search=backs") == ["alpha"]  # or in the description
    assert await names(api, "?search=100%25_") == ["alpha"]  # % and _ are literal
    assert await names(api, "?search=%25") == ["alpha"]
    total = (await api["user"].get("/events?tag=db&status=paused")).json()["total"]
    assert total == 1


async def test_a_list_sorts_by_allowed_fields(api: dict[str, Api]) -> None:
    await seed(api)
    assert await names(api, "?sort=-name") == ["echo", "delta", "charlie", "bravo", "alpha"]
    assert await names(api, "?sort=-created_at") == ["delta", "bravo", "echo", "alpha", "charlie"]
    assert await names(api, "?sort=created_at") == ["charlie", "alpha", "echo", "bravo", "delta"]
    assert (await names(api, "?sort=status"))[0] in ("alpha", "echo")  # draft sorts first


@pytest.mark.parametrize(
    "query",
    [
        "?sort=owner_id",
        "?sort=-",
        "?sort=env",
        "?limit=0",
        "?limit=500",
        "?limit=-1",
        "?limit=ten",
        "?offset=-1",
        "?offset=99999999999999999999",
        "?status=running",
        "?type=sql",
        "?language=ruby",
        "?tag=%00",
        "?search=%00",
        "?search=" + "x" * 201,
    ],
)
async def test_a_list_refuses_bad_parameters(api: dict[str, Api], query: str) -> None:
    error_of(await api["user"].get(f"/events{query}"), 422)


async def test_users_see_only_their_own_events(api: dict[str, Api]) -> None:
    made = await seed(api)
    assert "foreign" not in await names(api)
    assert await names(api, persona="other") == ["foreign"]
    foreign = made["foreign"]["id"]
    path = f"/events/{foreign}"
    error_of(await api["user"].get(path), 404)
    error_of(await api["user"].patch(path, json={"name": "mine now"}), 404)
    error_of(await api["user"].delete(path), 404)
    error_of(await api["user"].post(f"{path}/activate"), 404)
    error_of(await api["user"].post(f"{path}/pause"), 404)
    # The 404 for a foreign event reads like the one for a missing event.
    missing = error_of(await api["user"].get("/events/987654"), 404)
    assert error_of(await api["user"].get(path), 404)["code"] == missing["code"]
    unchanged = (await api["other"].get(path)).json()
    assert unchanged["name"] == "foreign" and unchanged["status"] == "draft"


async def test_an_admin_sees_and_changes_every_event(api: dict[str, Api]) -> None:
    made = await seed(api)
    assert len(await names(api, persona="admin")) == 6
    assert (await api["admin"].get("/events?search=foreign")).json()["total"] == 1
    path = f"/events/{made['alpha']['id']}"
    patched = await api["admin"].patch(path, json={"description": "checked"})
    assert patched.status_code == 200 and patched.json()["owner_id"] == 2  # owner unchanged
    assert (await api["admin"].post(f"{path}/activate")).json()["status"] == "active"
    assert (await api["admin"].post(f"{path}/pause")).json()["status"] == "paused"
    assert (await api["admin"].delete(path)).status_code == 204
    error_of(await api["user"].get(path), 404)
    # Name uniqueness is per owner: the admin may have their own "charlie".
    assert (await create(api, "admin", name="charlie"))["owner_id"] == 1


async def test_a_viewer_reads_everything_and_changes_nothing(api: dict[str, Api]) -> None:
    made = await seed(api)
    assert len(await names(api, persona="viewer")) == 6
    path = f"/events/{made['foreign']['id']}"
    assert (await api["viewer"].get(path)).json()["name"] == "foreign"
    error_of(await api["viewer"].post("/events", json={"name": "v", "language": "bash"}), 403)
    error_of(await api["viewer"].post("/events", json={"bad": True}), 403)
    error_of(await api["viewer"].patch(path, json={"name": "v"}), 403)
    error_of(await api["viewer"].delete(path), 403)
    error_of(await api["viewer"].post(f"{path}/activate"), 403)
    error_of(await api["viewer"].post(f"{path}/pause"), 403)
    assert (await api["other"].get(path)).json() == made["foreign"]


async def test_anonymous_callers_are_turned_away(api: dict[str, Api]) -> None:
    client = api["user"].client
    error_of(await client.get("/api/v1/events"), 401)
    error_of(await client.post("/api/v1/events", json={"name": "x", "language": "bash"}), 401)
    bad = {"Authorization": "Bearer crn_not-a-token"}
    error_of(await client.get("/api/v1/events", headers=bad), 401)
