"""An events list page shows each event exactly as its own page does: its servers and its
actions, not a neighbour's (the list loads them for all events of the page at once)."""

from __future__ import annotations

from tests.acceptance.test_events_api import create, make_server
from tests.conftest import Api


async def test_each_listed_event_carries_its_own_servers_and_actions(
    api: dict[str, Api],
) -> None:
    web, db, cache = [await make_server(api, name=n) for n in ("web", "db", "cache")]
    target = await create(api, name="target")
    bare = await create(api, name="a-bare")
    two = await create(
        api,
        name="b-two-servers",
        targets={"local": False, "server_ids": [cache, web]},
        actions=[
            {"on": "on_failure", "type": "run_event", "event_id": target["id"]},
            {"on": "on_success", "type": "run_event", "event_id": bare["id"]},
        ],
    )
    one = await create(
        api,
        name="c-one-server",
        targets={"local": True, "server_ids": [db]},
        actions=[{"on": "always", "type": "run_event", "event_id": two["id"]}],
    )
    listed = (await api["user"].get("/events?limit=200")).json()["items"]
    assert [e["name"] for e in listed] == ["a-bare", "b-two-servers", "c-one-server", "target"]
    for item in listed:
        detail = await api["user"].get(f"/events/{item['id']}")
        assert item == detail.json()
    by_name = {e["name"]: e for e in listed}
    assert by_name["b-two-servers"]["targets"]["server_ids"] == sorted([cache, web])
    assert [a["on"] for a in by_name["b-two-servers"]["actions"]] == ["on_failure", "on_success"]
    assert by_name["c-one-server"]["targets"] == {"local": True, "server_ids": [db]}
    assert by_name["a-bare"]["actions"] == [] and by_name["a-bare"]["targets"]["server_ids"] == []
    assert one["actions"][0]["event_id"] == two["id"]
