"""Who may do what, for every route of the API, generated from the app's own route table.

Each case is (method, path) x persona (admin, user, other, viewer, anonymous) x scope:
`own` acts on an object the persona owns, `foreign` on one owned by `user` (by `other`
when the persona is `user`); routes without an object id have scope `any`. The rules:

* anonymous: 401 everywhere;
* /users: admins only (403 for everyone else);
* /auth/me, /auth/logout, /tokens: every signed-in persona, on their own things; another
  user's token is a 404 even for admins (tokens are personal);
* /tools: every signed-in persona;
* events, servers, variables, executions, workflows, workflow runs, credentials, action
  templates: viewers read everything and write nothing (403); users see
  and change only their own objects (a foreign id answers 404, never 403); admins do all.

A route the matrix does not know fails loudly: add it to BODIES (and, for a new kind of
object, to FAMILIES, SEEDS and PARAMS) so that every new route gets these checks.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cronium.app import API_PREFIX, create_app
from cronium.config import load_settings
from cronium.core import Core
from tests.conftest import PASSWORD, Api

IDS = {"admin": 1, "user": 2, "other": 3, "viewer": 4}
PERSONAS = ("admin", "user", "other", "viewer", "anonymous")
# No authentication by design: tested in test_auth.py and test_webhooks.py (the key is
# the credential, plus an optional HMAC signature).
PUBLIC = {("POST", "/auth/login"), ("POST", "/webhooks/{key}")}
# Reached from emailed links, without login (test_password_reset.py, test_invitations.py).
PUBLIC |= {
    ("POST", "/auth/password-reset"),
    ("POST", "/auth/password-reset/confirm"),
    ("POST", "/auth/invitations/accept"),
}
SECRET = "seeded-secret-value-7f3a"
REQUEST_TIMEOUT_S = 15

# First path segment -> family. Owned families name the table holding owner_id.
FAMILIES = {
    "auth": "self",
    "users": "admin-only",
    "settings": "admin-only",
    "tokens": "personal",
    "events": "owned",
    "servers": "owned",
    "variables": "owned",
    "executions": "owned",
    "workflows": "owned",
    "workflow-runs": "owned",
    "credentials": "owned",
    "action-templates": "owned",
    "tools": "self",
}
# Path parameter -> the table its id points into.
PARAMS = {
    "event_id": "events",
    "server_id": "servers",
    "variable_id": "variables",
    "token_id": "api_tokens",
    "user_id": "users",
    "invitation_id": "account_tokens",
    "execution_id": "executions",
    "workflow_id": "workflows",
    "run_id": "workflow_runs",
    "credential_id": "tool_credentials",
    "template_id": "action_templates",
}
# Refused writes must leave these tables as they were.
TABLES = (
    "users",
    "api_tokens",
    "account_tokens",
    "events",
    "servers",
    "variables",
    "executions",
    "workflows",
    "workflow_runs",
    "tool_credentials",
    "action_templates",
)
# Owned families whose table is not named after their path segment.
SEGMENT_TABLES = {"credentials": "tool_credentials"}
# How to create one object of each owned kind (as `user`, then re-owned by SQL).
SEEDS: dict[str, dict[str, Any]] = {
    "events": {"name": "seed", "language": "bash", "content": "echo hi", "env": {"K": SECRET}},
    "servers": {
        "name": "seed",
        # Loopback, a port nothing listens on: a check answers at once (connection refused)
        # and tests send no traffic off this machine.
        "host": "127.0.0.1",
        "port": 1,
        "username": "deploy",
        "auth": {"type": "password", "password": SECRET},
    },
    "variables": {"key": "SEED", "value": SECRET, "secret": True},
    # Loopback, nothing listening: a credential test fails at once (and answers 200).
    "credentials": {
        "name": "seed",
        "tool": "webhook",
        "config": {"url": "http://127.0.0.1:1/hook", "headers": {"Authorization": SECRET}},
    },
    "action-templates": {
        "name": "seed",
        "tool": "slack",
        "action": "send_message",
        "params": {"text": "{{ event.name }}"},
    },
}
NONE: dict[str, Any] = {}  # a request without a body
# A valid body for every route, so that a 422 never hides an authorization answer.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/auth/me"): NONE,
    ("POST", "/auth/logout"): NONE,
    ("GET", "/users"): NONE,
    ("POST", "/users"): {"email": "new@example.com", "password": PASSWORD, "role": "user"},
    ("GET", "/users/{user_id}"): NONE,
    ("PATCH", "/users/{user_id}"): {"role": "viewer"},
    ("DELETE", "/users/{user_id}"): NONE,
    ("GET", "/users/invitations"): NONE,
    ("POST", "/users/invitations"): {"email": "invited@example.com", "role": "viewer"},
    ("DELETE", "/users/invitations/{invitation_id}"): NONE,
    ("GET", "/settings"): NONE,
    ("PUT", "/settings"): {"smtp": {"host": "127.0.0.1", "from_address": "c@example.com"}},
    ("POST", "/settings/test-email"): NONE,
    ("GET", "/tokens"): NONE,
    ("POST", "/tokens"): {"name": "matrix", "expires_in_days": 30},
    ("DELETE", "/tokens/{token_id}"): NONE,
    ("GET", "/events"): NONE,
    ("POST", "/events"): {"name": "matrix", "language": "python", "content": "print(1)"},
    ("GET", "/events/{event_id}"): NONE,
    ("PATCH", "/events/{event_id}"): {"description": "changed"},
    ("DELETE", "/events/{event_id}"): NONE,
    ("POST", "/events/{event_id}/activate"): NONE,
    ("POST", "/events/{event_id}/pause"): NONE,
    ("GET", "/servers"): NONE,
    ("POST", "/servers"): {**SEEDS["servers"], "name": "matrix"},
    ("GET", "/servers/{server_id}"): NONE,
    ("PATCH", "/servers/{server_id}"): {"max_concurrent_jobs": 2},
    ("DELETE", "/servers/{server_id}"): NONE,
    ("POST", "/servers/{server_id}/check"): NONE,
    ("GET", "/variables"): NONE,
    ("POST", "/variables"): {"key": "MATRIX", "value": 1},
    ("GET", "/variables/{variable_id}"): NONE,
    ("PATCH", "/variables/{variable_id}"): {"description": "changed"},
    ("DELETE", "/variables/{variable_id}"): NONE,
    ("POST", "/events/{event_id}/run"): {"input": {"n": 1}},
    ("GET", "/executions"): NONE,
    ("GET", "/executions/{execution_id}"): NONE,
    ("GET", "/executions/{execution_id}/logs"): NONE,
    ("POST", "/executions/{execution_id}/cancel"): NONE,
    ("GET", "/workflows"): NONE,
    ("POST", "/workflows"): {"name": "matrix"},
    ("GET", "/workflows/{workflow_id}"): NONE,
    ("PATCH", "/workflows/{workflow_id}"): {"description": "changed"},
    ("DELETE", "/workflows/{workflow_id}"): NONE,
    ("POST", "/workflows/{workflow_id}/run"): {"input": {"n": 1}},
    ("GET", "/workflows/{workflow_id}/runs"): NONE,
    ("GET", "/workflow-runs/{run_id}"): NONE,
    ("POST", "/workflow-runs/{run_id}/cancel"): NONE,
    ("GET", "/tools"): NONE,
    ("GET", "/credentials"): NONE,
    ("POST", "/credentials"): {**SEEDS["credentials"], "name": "matrix"},
    ("GET", "/credentials/{credential_id}"): NONE,
    ("PATCH", "/credentials/{credential_id}"): {"name": "changed"},
    ("DELETE", "/credentials/{credential_id}"): NONE,
    ("POST", "/credentials/{credential_id}/test"): NONE,
    ("GET", "/action-templates"): NONE,
    ("POST", "/action-templates"): {**SEEDS["action-templates"], "name": "matrix"},
    ("GET", "/action-templates/{template_id}"): NONE,
    ("PATCH", "/action-templates/{template_id}"): {"description": "changed"},
    ("DELETE", "/action-templates/{template_id}"): NONE,
    ("POST", "/action-templates/{template_id}/test"): NONE,
    ("POST", "/action-templates/preview"): {
        k: v for k, v in SEEDS["action-templates"].items() if k != "name"
    },
}


def api_routes() -> list[tuple[str, str]]:
    """(method, path below /api/v1) for every operation the app serves."""
    settings = load_settings(DATABASE_URL="postgresql://unused@127.0.0.1:1/unused")
    schema = create_app(settings).openapi()
    routes = [
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in schema["paths"].items()
        if path.startswith(API_PREFIX + "/")
        for method in operations
        if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ]
    return sorted(r for r in routes if r not in PUBLIC)


ROUTES = api_routes()


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    persona: str
    scope: str  # own | foreign | any

    @property
    def segment(self) -> str:
        return self.path.split("/")[1]

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def cases() -> list[Any]:
    out = []
    for method, path in ROUTES:
        has_id = "{" in path and FAMILIES.get(path.split("/")[1]) in ("owned", "personal")
        for persona in PERSONAS:
            scopes = ["own", "foreign"] if has_id and persona != "anonymous" else ["any"]
            if has_id and persona == "anonymous":
                scopes = ["foreign"]
            for scope in scopes:
                case = Case(method, path, persona, scope)
                out.append(pytest.param(case, id=f"{method} {path} {persona} {scope}"))
    return out


def expected(case: Case) -> int | None:
    """The status the case must answer; None means any 2xx."""
    family = FAMILIES[case.segment]
    if case.persona == "anonymous":
        return 401
    if family == "admin-only":
        return None if case.persona == "admin" else 403
    if family == "self":
        return None
    if family == "personal":
        return 404 if case.scope == "foreign" else None
    if case.method != "GET" and case.persona == "viewer":
        return 403
    if case.scope == "foreign" and case.persona not in ("admin", "viewer"):
        return 404
    return None


def check_known(case: Case) -> None:
    where = f"{case.method} {API_PREFIX}{case.path}"
    if case.segment not in FAMILIES:
        pytest.fail(f"{where}: new API area {case.segment!r}: add it to FAMILIES and TABLES")
    if (case.method, case.path) not in BODIES:
        pytest.fail(f"{where} is not in the authorization matrix: add a valid body to BODIES")
    for name in case.params:
        if name not in PARAMS:
            pytest.fail(f"{where}: unknown path parameter {name!r}: add it to PARAMS")


def test_the_matrix_knows_exactly_the_apps_routes() -> None:
    assert len(ROUTES) >= len(BODIES) > 20  # the route table really was read
    assert set(ROUTES) == set(BODIES), "BODIES and the app's routes differ"


# --- seeding ------------------------------------------------------------------------------


async def sql(core: Core, statement: str, **params: Any) -> list[dict[str, Any]]:
    async with core.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return [dict(r._mapping) for r in result] if result.returns_rows else []


def owner_for(case: Case) -> str:
    if case.scope == "own":
        return case.persona
    return "other" if case.persona == "user" else "user"


async def seed_owned(segment: str, api: dict[str, Api], core: Core, owner: str) -> int:
    """One object of an owned kind, created by `user` and then handed to `owner`."""
    if segment == "executions":
        event_id = await seed_owned("events", api, core, owner)
        resp = await api["admin"].post(f"/events/{event_id}/run", json={})
        assert resp.status_code == 202, resp.text
        object_id = int(resp.json()["execution_id"])
    elif segment == "workflows":
        event_id = await seed_owned("events", api, core, "user")
        body = {"name": "seed", "nodes": [{"key": "only", "event_id": event_id}]}
        resp = await api["user"].post("/workflows", json=body)
        assert resp.status_code == 201, resp.text
        object_id = int(resp.json()["id"])
    elif segment == "workflow-runs":
        workflow_id = await seed_owned("workflows", api, core, owner)
        resp = await api["admin"].post(f"/workflows/{workflow_id}/run", json={})
        assert resp.status_code == 202, resp.text
        object_id = int(resp.json()["run_id"])
    else:
        resp = await api["user"].post(f"/{segment}", json=SEEDS[segment])
        assert resp.status_code == 201, resp.text
        object_id = int(resp.json()["id"])
    table = SEGMENT_TABLES.get(segment, segment.replace("-", "_"))
    statement = f"UPDATE {table} SET owner_id = :owner WHERE id = :id"
    await sql(core, statement, owner=IDS[owner], id=object_id)
    return object_id


async def seed(case: Case, api: dict[str, Api], core: Core) -> dict[str, int]:
    """Create the object the case acts on; returns the value of each path parameter."""
    family = FAMILIES[case.segment]
    if family == "owned":
        owner = owner_for(case) if case.scope != "any" else "user"
        object_id = await seed_owned(case.segment, api, core, owner)
        return dict.fromkeys(case.params, object_id)
    if family == "personal" and case.params:
        resp = await api[owner_for(case)].post("/tokens", json={"name": "target"})
        assert resp.status_code == 201, resp.text
        return {"token_id": resp.json()["id"]}
    if family == "admin-only" and "invitation_id" in case.params:
        resp = await api["admin"].post("/users/invitations", json={"email": "x@example.com"})
        assert resp.status_code == 201, resp.text
        return {"invitation_id": resp.json()["id"]}
    if family == "admin-only" and case.params:
        return {"user_id": IDS["other"]}
    return {}


async def snapshot(core: Core) -> dict[str, list[dict[str, Any]]]:
    return {t: await sql(core, f"SELECT * FROM {t} ORDER BY id") for t in TABLES}


# --- the matrix ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases())
async def test_authorization(
    case: Case, api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    check_known(case)
    values = await seed(case, api, core)
    path = case.path.format(**values)
    body = BODIES[(case.method, case.path)]
    before = await snapshot(core)
    kwargs: dict[str, Any] = {"json": body} if body is not NONE else {}
    try:
        # A bounded wait: a request stuck on a lock must fail this case, not hang the run.
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            if case.persona == "anonymous":
                resp = await client.request(case.method, API_PREFIX + path, **kwargs)
            else:
                resp = await api[case.persona].request(case.method, path, **kwargs)
    except TimeoutError:
        pytest.fail(f"{case.persona} {case.method} {path}: no answer in {REQUEST_TIMEOUT_S} s")

    want = expected(case)
    label = f"{case.persona} {case.method} {path}: {resp.text[:300]}"
    if want is None:
        assert 200 <= resp.status_code < 300, label
    else:
        assert resp.status_code == want, label
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found"}
        assert resp.json()["error"]["code"] == codes[want], label
        if case.method != "GET":
            assert await snapshot(core) == before, f"refused but changed: {label}"
    assert SECRET not in resp.text, f"a secret leaked: {label}"
    if case.method == "GET" and want is None and "{" not in case.path:
        await check_listing(case, resp, values)


async def check_listing(case: Case, resp: httpx.Response, values: dict[str, int]) -> None:
    """Lists hold exactly what the persona may see."""
    family = FAMILIES[case.segment]
    if family not in ("owned", "personal", "admin-only"):
        return
    if family == "admin-only" and case.path != "/users":
        return  # settings and invitations: checked in their own tests
    body = resp.json()
    assert set(body) >= {"items", "total", "limit", "offset"}
    owners = {item.get("owner_id", item.get("user_id")) for item in body["items"]}
    if family == "owned":
        # One seeded object, owned by `user`.
        assert body["total"] == (0 if case.persona == "other" else 1), body
        if case.persona == "other":
            assert owners == set()
        else:
            assert owners == {IDS["user"]}
    elif family == "personal":
        assert [t["name"] for t in body["items"]] == ["test"]  # only the persona's own token
    else:
        assert body["total"] == len(IDS)
