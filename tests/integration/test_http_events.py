"""HTTP request events against a local receiver: output recorded, non-2xx fails,
redirects limited, body capped, timeout honoured."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status

received: list[dict[str, Any]] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    received.append(
        {"method": request.method, "headers": dict(request.headers), "body": body.decode()}
    )
    return JSONResponse(
        {"ok": True, "method": request.method, "echo": body.decode()}, headers={"X-Test": "yes"}
    )


async def fail(request: Request) -> Response:
    return PlainTextResponse("broken", status_code=503)


async def loop(request: Request) -> Response:
    return RedirectResponse(url="/loop", status_code=302)


async def hop(request: Request) -> Response:
    return RedirectResponse(url="/echo", status_code=302)


async def slow(request: Request) -> Response:
    await asyncio.sleep(3)
    return PlainTextResponse("late")


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * (3 * 1024 * 1024))


receiver = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/fail", fail),
        Route("/loop", loop),
        Route("/hop", hop),
        Route("/slow", slow),
        Route("/big", big),
    ]
)


@pytest.fixture
async def receiver_url() -> AsyncIterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    received.clear()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def run_http(api: Api, http: dict[str, Any], **event: Any) -> dict[str, Any]:
    name = f"call-{len(received)}-{http['url'].rsplit('/', 1)[-1]}-{id(http)}"
    resp = await api.post("/events", json={"name": name, "type": "http", "http": http, **event})
    assert resp.status_code == 201, resp.text
    run = await api.post(f"/events/{resp.json()['id']}/run")
    return await wait_for_status(api, run.json()["execution_id"])


async def test_a_post_with_headers_and_json_body_is_recorded_as_output(
    api: dict[str, Api], node: Node, receiver_url: str
) -> None:
    done = await run_http(
        api["user"],
        {
            "method": "POST",
            "url": f"{receiver_url}/echo",
            "headers": {"X-Key": "abc"},
            "body": {"a": 1},
        },
    )
    assert done["status"] == "succeeded", done
    output = done["output"]
    assert output["status"] == 200
    assert output["body"]["ok"] is True
    assert output["headers"]["x-test"] == "yes"
    assert received[0]["headers"]["x-key"] == "abc"
    assert received[0]["body"] == '{"a":1}' or received[0]["body"] == '{"a": 1}'


async def test_a_non_2xx_response_fails_the_run_but_keeps_the_response(
    api: dict[str, Api], node: Node, receiver_url: str
) -> None:
    done = await run_http(api["user"], {"url": f"{receiver_url}/fail"})
    assert done["status"] == "failed"
    assert done["jobs"][0]["output"]["status"] == 503
    assert "HTTP 503" in done["error"]


async def test_redirects_are_followed_but_limited(
    api: dict[str, Api], node: Node, receiver_url: str
) -> None:
    ok = await run_http(api["user"], {"url": f"{receiver_url}/hop"})
    assert ok["status"] == "succeeded"
    looped = await run_http(api["user"], {"url": f"{receiver_url}/loop"})
    assert looped["status"] == "failed"
    assert "redirects" in looped["error"]


async def test_a_slow_server_times_out(api: dict[str, Api], node: Node, receiver_url: str) -> None:
    done = await run_http(api["user"], {"url": f"{receiver_url}/slow", "timeout_seconds": 1})
    assert done["status"] == "timed_out"


async def test_a_large_body_is_capped(api: dict[str, Api], node: Node, receiver_url: str) -> None:
    done = await run_http(api["user"], {"url": f"{receiver_url}/big"})
    assert done["status"] == "succeeded"
    assert done["output"]["truncated"] is True
    assert len(done["output"]["body"]) == 1024 * 1024


async def test_an_unreachable_host_fails_with_a_clear_error(
    api: dict[str, Api], node: Node
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = await run_http(api["user"], {"url": f"http://127.0.0.1:{port}/x"})
    assert done["status"] == "failed"
    assert "request failed" in done["error"]
