"""Helpers for the execution-token tests: the app's routes (Runtime API calls with a valid
body each), jobs that hand their token to the test and wait, both ways into the Runtime
API, and the other doors a token could be tried on (REST, pages, WebSockets).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cronium.api.deps import SESSION_COOKIE
from cronium.app import API_PREFIX, create_app
from cronium.config import Settings, load_settings
from cronium.core import Core
from cronium.runtime import router as runtime_router
from cronium.security.tokens import hash_token
from tests.conftest import PASSWORD, Api, Persona
from tests.support.loopback import serve_on_loopback
from tests.support.runs import create_event, run

RUNTIME_PREFIX = runtime_router.router.prefix
NONE: dict[str, Any] = {}  # a request without a body
KEY = "probe_key"
# A valid body for every Runtime API route, so that only the token decides the answer.
CALLS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/runtime/v1/input"): NONE,
    ("PUT", "/runtime/v1/output"): {"value": {"written": "by a refused token"}},
    ("GET", "/runtime/v1/condition"): NONE,
    ("PUT", "/runtime/v1/condition"): {"value": True},
    ("GET", "/runtime/v1/context"): NONE,
    ("GET", "/runtime/v1/variables/{key}"): NONE,
    ("PUT", "/runtime/v1/variables/{key}"): {"value": "written by a refused token"},
    ("DELETE", "/runtime/v1/variables/{key}"): NONE,
    ("POST", "/runtime/v1/variables/{key}/increment"): {"by": 1},
    ("POST", "/runtime/v1/variables/{key}/append"): {"value": 1},
    ("POST", "/runtime/v1/tool-actions"): {"tool": "webhook", "action": "send", "params": {}},
}


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route of the app, included routers flattened (hidden
    ones too: OpenAPI lists only what is in the schema)."""
    settings = load_settings(DATABASE_URL="postgresql://unused@127.0.0.1:1/unused")
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # a router included by reference: its paths are relative
                walk(included.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute):
                found.extend((method, prefix + route.path) for method in route.methods or ())

    walk(create_app(settings).routes, "")
    return sorted(set(found))


def runtime_routes() -> list[tuple[str, str]]:
    return [(m, p) for m, p in app_routes() if p.startswith(RUNTIME_PREFIX + "/")]


def direct_routes() -> set[tuple[str, str]]:
    """The operations the Unix socket serves without the router (router.serve_directly)."""
    variables = RUNTIME_PREFIX + "/variables/{key}"
    return {(m, RUNTIME_PREFIX + p) for m, p in runtime_router._OPERATIONS} | {
        (m, variables + suffix) for m, suffix in runtime_router._VARIABLE_OPERATIONS
    }


def fill(path: str, ids: dict[str, int]) -> str:
    """A route path with its parameters (`{name}` or `{name:int}`) set from `ids`, else 1."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: str(ids.get(m.group(1), 1)), path)


async def call(
    c: httpx.AsyncClient, method: str, path: str, token: str | None, **kwargs: Any
) -> httpx.Response:
    """One Runtime API call with the route's body; `path` may hold `{key}`."""
    body = CALLS.get((method, path), NONE)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    headers |= kwargs.pop("headers", {})
    if body is not NONE:
        kwargs.setdefault("json", body)
    return await c.request(method, path.format(key=KEY), headers=headers, **kwargs)


def assert_refused(resp: httpx.Response, label: str) -> None:
    assert resp.status_code == 401, f"{label}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/json"), label
    assert resp.json()["error"]["code"] == "unauthorized", f"{label}: {resp.text[:300]}"


@asynccontextmanager
async def both_ways(socket: Path, port: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """The Runtime API over the Unix socket (served directly) and over the main port."""
    transport = httpx.AsyncHTTPTransport(uds=str(socket))
    async with httpx.AsyncClient(transport=transport, base_url="http://cronium") as over_socket:
        yield {"socket": over_socket, "port": port}


@dataclass
class HeldJob:
    """A running job that gave the test its token and waits for `release`."""

    api: Api
    event_id: int
    execution_id: int
    token: str
    folder: Path
    name: str

    async def release(self, exit_code: int = 0) -> None:
        (self.folder / f"{self.name}.exit").write_text(str(exit_code))


async def hold_job(api: Api, folder: Path, prelude: str = "", **event: Any) -> HeldJob:
    """Start a job that runs `prelude`, writes its token to `folder`, then runs until
    released (or stopped)."""
    name = f"held-{secrets.token_hex(4)}"
    script = prelude + (
        f'printf %s "$CRONIUM_EXECUTION_TOKEN" > {folder}/{name}.tmp\n'
        f"mv {folder}/{name}.tmp {folder}/{name}.token\n"
        f"while [ ! -e {folder}/{name}.exit ]; do sleep 0.05; done\n"
        f"exit $(cat {folder}/{name}.exit)\n"
    )
    body = {"input": event.pop("input")} if "input" in event else {}
    event_id = await create_event(api, name=name, content=script, **event)
    execution_id = await run(api, event_id, **body)
    token = await wait_for_file(folder / f"{name}.token")
    return HeldJob(api, event_id, execution_id, token, folder, name)


async def wait_for_file(path: Path, timeout_s: float = 60) -> str:
    """The content of a file a job writes (renamed into place, so never half written)."""
    async with asyncio.timeout(timeout_s):
        while (content := _read_if_there(path)) is None:
            await asyncio.sleep(0.05)
    return content


def _read_if_there(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


async def variables_of(api: Api) -> dict[str, Any]:
    items = (await api.get("/variables", params={"limit": 200})).json()["items"]
    return {item["key"]: item["value"] for item in items}


# -- the other doors ------------------------------------------------------------------------

TABLES = (
    *("users", "sessions", "api_tokens", "account_tokens", "settings"),
    *("events", "variables", "servers", "tool_credentials", "action_templates", "workflows"),
)


async def snapshot(core: Core) -> dict[str, list[dict[str, Any]]]:
    """Every row a REST or page call could create, change or delete."""
    async with core.db.acquire() as conn:
        return {
            t: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1")] for t in TABLES
        }


@pytest.fixture
async def server(settings: Settings, core: Core) -> AsyncIterator[str]:
    """`host:port` of the app on a loopback TCP port, for WebSocket handshakes."""
    async with serve_on_loopback(settings, core) as address:
        yield address


async def websocket_status(url: str, headers: dict[str, str]) -> int:
    """The handshake's HTTP status; fails when the server opens the socket."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers, proxy=None, open_timeout=10):
            pass
    return int(refused.value.response.status_code)


async def login(client: httpx.AsyncClient, persona: Persona) -> dict[str, str]:
    """A session cookie header for `persona`; the shared client itself stays anonymous."""
    body = {"email": persona.email, "password": PASSWORD}
    resp = await client.post(f"{API_PREFIX}/auth/login", json=body)
    assert resp.status_code == 200, resp.text
    client.cookies.clear()
    return {"Cookie": f"{SESSION_COOKIE}={resp.cookies[SESSION_COOKIE]}"}


def tampered(token: str) -> dict[str, dict[str, str]]:
    """Headers carrying a changed, cut or misplaced copy of a live token."""
    body = token.removeprefix("cxt_")
    bearer = {
        "truncated by one": token[:-1],
        "cut in half": token[: len(token) // 2],
        "one character changed": token[:-1] + ("A" if token[-1] != "A" else "B"),
        "one character more": token + "A",
        "twice": token + token,
        "upper-cased": token.upper(),
        "without its prefix": body,
        "with an API token's prefix": "crn_" + body,
        "the prefix alone": "cxt_",
        "its stored hash": hash_token(token),
        "a space inside": f"{token[:10]} {token[10:]}",
    }
    headers = {label: {"Authorization": f"Bearer {value}"} for label, value in bearer.items()}
    headers["no scheme"] = {"Authorization": token}
    headers["basic scheme"] = {"Authorization": f"Basic {token}"}
    headers["token scheme"] = {"Authorization": f"Token {token}"}
    headers["as a cookie"] = {"Cookie": f"{SESSION_COOKIE}={token}"}
    headers["in another header"] = {"X-Cronium-Execution-Token": token}
    return headers
