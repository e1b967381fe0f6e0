"""Execution tokens are narrow: one running job's key to the Runtime API and nothing else.

A token is refused on every Runtime API route (the list is generated from the app; each
call over the Unix socket and the main port) once its job has ended, however it ended; a
live token reaches only its own job and its owner's variables; it is no API token, no
session and no WebSocket key; a changed or cut token is refused; it is never stored or
shown, and even its hash is dropped when the job ends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronium.api.deps import SESSION_COOKIE
from cronium.app import API_PREFIX
from cronium.core import Core
from cronium.engine.node import Node
from cronium.security.tokens import hash_token
from tests.acceptance.test_authorization_matrix import BODIES, PUBLIC, api_routes
from tests.conftest import Api, Persona, wait_for_status
from tests.security.runtime_calls import (
    CALLS,
    KEY,
    NONE,
    RUNTIME_PREFIX,
    app_routes,
    assert_refused,
    both_ways,
    call,
    direct_routes,
    fill,
    hold_job,
    login,
    runtime_routes,
    server,  # noqa: F401 (a fixture)
    snapshot,
    tampered,
    variables_of,
    wait_for_file,
    websocket_status,
)
from tests.support.runs import create_event, run

pytestmark = pytest.mark.slow

ROUTES = runtime_routes()
ENDED = "execution token is invalid or its job has ended"


def test_every_runtime_route_has_a_call() -> None:
    """A new Runtime API route fails here until CALLS has a valid body for it."""
    assert len(ROUTES) >= 10  # the route table really was read
    assert set(ROUTES) == set(CALLS), "CALLS and the app's Runtime API routes differ"
    assert direct_routes() <= set(ROUTES), "the socket's fast path serves an unknown route"
    # The flattened route table agrees with the REST API's OpenAPI listing.
    rest = {(m, p.removeprefix(API_PREFIX)) for m, p in app_routes() if p.startswith(API_PREFIX)}
    assert rest == set(api_routes()) | PUBLIC


# -- after the job -------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["succeeded", "failed", "timed_out", "cancelled"])
async def test_a_token_is_refused_everywhere_once_its_job_has_ended(
    ending: str, api: dict[str, Api], node: Node, runtime_socket: Path, client: httpx.AsyncClient
) -> None:
    user = api["user"]
    assert (await user.post("/variables", json={"key": KEY, "value": "kept"})).status_code == 201
    timeout_s = 2 if ending == "timed_out" else 60
    job = await hold_job(user, runtime_socket.parent, timeout_seconds=timeout_s)
    async with both_ways(runtime_socket, client) as ways:
        for way, c in ways.items():  # alive, the token works both ways (and is cached)
            resp = await call(c, "GET", "/runtime/v1/context", job.token)
            assert resp.status_code == 200, (way, resp.text)
        if ending in ("succeeded", "failed"):
            await job.release(0 if ending == "succeeded" else 1)
        elif ending == "cancelled":
            assert (await user.post(f"/executions/{job.execution_id}/cancel")).status_code == 202
        done = await wait_for_status(user, job.execution_id, timeout_s=30)
        assert (done["status"], done["jobs"][0]["status"]) == (ending, ending), done

        for way, c in ways.items():
            for method, path in ROUTES:
                resp = await call(c, method, path, job.token)
                assert_refused(resp, f"{ending} {way} {method} {path}")
                assert resp.json()["error"]["message"] == ENDED
    await job.release()
    after = await wait_for_status(user, job.execution_id)
    assert after["output"] is None and after["condition"] is None
    assert await variables_of(user) == {KEY: "kept"}


async def test_a_retry_gets_a_new_token_and_the_first_one_dies(
    api: dict[str, Api], node: Node, runtime_socket: Path, client: httpx.AsyncClient
) -> None:
    folder = runtime_socket.parent
    script = (
        f'n=$(ls {folder} | grep -c "\\.attempt$")\n'
        f'printf %s "$CRONIUM_EXECUTION_TOKEN" > {folder}/$n.tmp\n'
        f"mv {folder}/$n.tmp {folder}/$n.attempt\n"
        f"while [ ! -e {folder}/$n.exit ]; do sleep 0.05; done\n"
        f"exit $(cat {folder}/$n.exit)\n"
    )
    event_id = await create_event(api["user"], content=script, retries=1, retry_backoff_seconds=0)
    execution_id = await run(api["user"], event_id)
    first = await wait_for_file(folder / "0.attempt")
    async with both_ways(runtime_socket, client) as ways:
        for c in ways.values():  # cached on the socket while it is live
            assert (await call(c, "GET", "/runtime/v1/context", first)).status_code == 200
        (folder / "0.exit").write_text("1")
        second = await wait_for_file(folder / "1.attempt")
        assert second != first
        for way, c in ways.items():
            assert_refused(await call(c, "GET", "/runtime/v1/context", first), way)
            context = await call(c, "GET", "/runtime/v1/context", second)
            assert context.status_code == 200 and context.json()["execution"]["attempt"] == 2
    (folder / "1.exit").write_text("0")
    assert (await wait_for_status(api["user"], execution_id))["status"] == "succeeded"


# -- while the job runs: only its own job and its owner's variables -------------------------


async def seed_two_owners(api: dict[str, Api]) -> int:
    """`shared` and a secret `vault` for user and other, `only_other` and a webhook
    credential for other only; returns the credential's id."""
    for name, value in (("user", "user-value"), ("other", "other-value")):
        for body in (
            {"key": "shared", "value": value},
            {"key": "vault", "value": f"{value}-secret", "secret": True},
        ):
            assert (await api[name].post("/variables", json=body)).status_code == 201
    assert (
        await api["other"].post("/variables", json={"key": "only_other", "value": 1})
    ).is_success
    hook = {"name": "hook", "tool": "webhook", "config": {"url": "http://127.0.0.1:1/hook"}}
    credential = await api["other"].post("/credentials", json=hook)
    assert credential.status_code == 201, credential.text
    return int(credential.json()["id"])


async def test_a_live_token_reaches_only_its_own_job_and_its_owners_variables(
    api: dict[str, Api], node: Node, runtime_socket: Path, client: httpx.AsyncClient
) -> None:
    user, other = api["user"], api["other"]
    credential_id = await seed_two_owners(api)
    folder = runtime_socket.parent
    a = await hold_job(user, folder, input={"who": "A"})
    sibling = await hold_job(user, folder, input={"who": "A2"})  # same owner, another job
    b = await hold_job(other, folder, input={"who": "B"})
    b_job = (await other.get(f"/executions/{b.execution_id}")).json()["jobs"][0]["id"]
    # B's ids wherever a request could carry them: all ignored, the token alone decides.
    aim: dict[str, Any] = {
        "params": {"execution_id": b.execution_id, "job_id": b_job, "owner_id": 3},
        "headers": {"X-Cronium-Execution-Id": str(b.execution_id), "X-Cronium-Job-Id": str(b_job)},
    }

    async def as_a(c: httpx.AsyncClient, method: str, path: str, body: Any = NONE) -> Any:
        resp = await call(
            c, method, path, a.token, **aim, **({} if body is NONE else {"json": body})
        )
        return resp.status_code, resp.json() if resp.content else None

    v = "/runtime/v1/variables"
    expected = {"shared": "user-value", "vault": "user-value-secret"}
    async with both_ways(runtime_socket, client) as ways:
        for way, c in ways.items():
            assert await as_a(c, "GET", "/runtime/v1/input") == (200, {"value": {"who": "A"}}), way
            _, context = await as_a(c, "GET", "/runtime/v1/context")
            assert context["execution"]["id"] == a.execution_id
            assert context["user"] == {"id": 2, "email": "user@example.com"}
            for key, value in expected.items():
                assert await as_a(c, "GET", f"{v}/{key}") == (200, {"key": key, "value": value})
            for method in ("GET", "DELETE"):
                assert (await as_a(c, method, f"{v}/only_other"))[0] == 404, (way, method)
            expected["shared"] = f"A-{way}"
            assert (await as_a(c, "PUT", f"{v}/shared", {"value": expected["shared"]}))[0] == 200
            assert (await as_a(c, "POST", f"{v}/counter/increment", {"by": 1}))[0] == 200
            assert (await as_a(c, "PUT", "/runtime/v1/output", {"value": {"by": "A"}}))[0] == 200
            assert (await as_a(c, "PUT", "/runtime/v1/condition", {"value": True}))[0] == 200
            # Another user's credential is not found, exactly as a made-up id.
            action = {"tool": "webhook", "action": "send", "params": {}}
            for cid in (credential_id, 987654):
                status, _ = await as_a(
                    c, "POST", "/runtime/v1/tool-actions", action | {"credential_id": cid}
                )
                assert status == 404, (way, cid)
            # Without an id, only the owner's own credentials are looked at: they have none.
            status, body = await as_a(c, "POST", "/runtime/v1/tool-actions", action)
            assert (status, body["error"]["details"]["code"]) == (422, "credential_not_found")
        for way, c in ways.items():  # B and A's sibling still see their own, untouched
            assert (await call(c, "GET", "/runtime/v1/input", b.token)).json()["value"] == {
                "who": "B"
            }
            for token in (b.token, sibling.token):
                assert (await call(c, "GET", "/runtime/v1/condition", token)).json() == {
                    "value": None
                }
            for key, value in (("shared", "other-value"), ("vault", "other-value-secret")):
                got = await call(c, "GET", f"{v}/{key}", b.token)
                assert got.json()["value"] == value, way
    for job in (a, sibling, b):
        await job.release()
    finished = [await wait_for_status(job.api, job.execution_id) for job in (a, sibling, b)]
    assert [(done["output"], done["condition"]) for done in finished] == [
        ({"by": "A"}, True),
        (None, None),
        (None, None),
    ]
    assert await variables_of(other) == {"shared": "other-value", "vault": None, "only_other": 1}
    mine = await variables_of(user)
    assert (mine["shared"], mine["counter"]) == ("A-port", 2)


# -- it is no other kind of credential ------------------------------------------------------


async def test_a_live_token_is_no_api_token_no_session_and_no_page_key(
    api: dict[str, Api],
    node: Node,
    runtime_socket: Path,
    client: httpx.AsyncClient,
    personas: dict[str, Persona],
    server: str,  # noqa: F811 (the fixture)
    core: Core,
) -> None:
    job = await hold_job(api["user"], runtime_socket.parent)
    ids = {"execution_id": job.execution_id, "event_id": job.event_id, "user_id": 2}
    as_header = {
        "bearer": {"Authorization": f"Bearer {job.token}"},
        "cookie": {"Cookie": f"{SESSION_COOKIE}={job.token}"},
    }
    before = await snapshot(core)
    # REST: every route of /api/v1 the authorization matrix knows (all but the public ones).
    for method, path in api_routes():
        body = BODIES[(method, path)]
        kwargs: dict[str, Any] = {} if body is NONE else {"json": body}
        url = API_PREFIX + fill(path, ids)
        for label, headers in as_header.items():
            resp = await client.request(method, url, headers=headers, **kwargs)
            assert_refused(resp, f"{label} {method} {url}")
    assert await snapshot(core) == before, "a refused call changed something"
    # The owner's real API token opens the same execution: the token made the difference.
    assert (await api["user"].get(f"/executions/{job.execution_id}")).status_code == 200
    # WebSockets: the execution's own log stream refuses it like any unknown credential.
    stream = f"ws://{server}{API_PREFIX}/executions/{job.execution_id}/stream"
    for headers in as_header.values():
        assert await websocket_status(stream, headers) == 403
    # Pages: the token gets exactly what a made-up credential in its place gets.
    made_up = "cxt_" + "A" * len(job.token.removeprefix("cxt_"))
    for method, path in app_routes():
        if method != "GET" or path.startswith((API_PREFIX, RUNTIME_PREFIX)):
            continue
        url = fill(path, ids)
        for label, headers in as_header.items():
            fake = {name: value.replace(job.token, made_up) for name, value in headers.items()}
            baseline, resp = (
                await client.get(url, headers=fake),
                await client.get(url, headers=headers),
            )
            seen = (resp.status_code, resp.headers.get("location"))
            assert seen == (baseline.status_code, baseline.headers.get("location")), (label, url)
    session = await login(client, personas["user"])
    assert (await client.get(f"/executions/{job.execution_id}", headers=session)).status_code == 200
    await job.release()
    assert (await wait_for_status(api["user"], job.execution_id))["status"] == "succeeded"


# -- only the exact token ---------------------------------------------------------------------


async def test_only_the_exact_token_is_accepted(
    api: dict[str, Api], node: Node, runtime_socket: Path, client: httpx.AsyncClient
) -> None:
    job = await hold_job(api["user"], runtime_socket.parent)
    async with both_ways(runtime_socket, client) as ways:
        for way, c in ways.items():
            for label, headers in tampered(job.token).items():
                for method, path in (("GET", "/runtime/v1/context"), ("PUT", "/runtime/v1/output")):
                    resp = await call(c, method, path, None, headers=headers)
                    assert_refused(resp, f"{way} {label} {method}")
            query = await call(c, "GET", f"/runtime/v1/context?token={job.token}", None)
            assert_refused(query, f"{way} in the query string")
            exact = await call(c, "GET", "/runtime/v1/context", job.token)
            assert exact.status_code == 200 and exact.json()["execution"]["id"] == job.execution_id
    await job.release()
    assert (await wait_for_status(api["user"], job.execution_id))["output"] is None


# -- never stored, never shown ------------------------------------------------------------------


async def test_the_token_is_never_stored_or_shown(
    api: dict[str, Api],
    node: Node,
    runtime_socket: Path,
    client: httpx.AsyncClient,
    personas: dict[str, Persona],
    core: Core,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    user = api["user"]
    session = await login(client, personas["user"])
    # The script prints its token alone and inside a line, on both streams.
    prints = 'echo "$CRONIUM_EXECUTION_TOKEN"\necho "token=$CRONIUM_EXECUTION_TOKEN;"\n'
    job = await hold_job(
        user, runtime_socket.parent, prelude=prints + prints.replace("\n", " >&2\n")
    )
    token, hashed = job.token, hash_token(job.token)

    async def shown() -> list[str]:
        """The run as its owner sees it: REST answers and pages."""
        x, e = job.execution_id, job.event_id
        rest = [
            f"/executions/{x}",
            f"/executions/{x}/logs",
            f"/events/{e}",
            "/executions",
            "/events",
        ]
        pages = [f"/executions/{x}", f"/executions/{x}/summary", f"/events/{e}/history"]
        answers = [await user.get(path) for path in rest]
        answers += [await client.get(page, headers=session) for page in pages]
        assert all(a.status_code == 200 for a in answers), [a.url for a in answers]
        return [a.text for a in answers]

    async def stored() -> tuple[list[str], list[str | None]]:
        """Every value of the log, execution and job rows; and the jobs' token hashes."""
        async with core.db.acquire() as conn:
            rows = [
                dict(r)
                for t in ("log_lines", "executions", "jobs")
                for r in await conn.fetch(f"SELECT * FROM {t}")
            ]
        values = [str(v) for row in rows for k, v in row.items() if k != "runtime_token_hash"]
        return values, [row["runtime_token_hash"] for row in rows if "runtime_token_hash" in row]

    seen, (kept, hashes) = await shown(), await stored()
    assert hashes == [hashed]  # while the job runs, only the hash, on the job row
    await job.release(0)
    assert (await wait_for_status(user, job.execution_id))["status"] == "succeeded"
    seen_after, (kept_after, hashes) = await shown(), await stored()
    assert hashes == [None]  # and not even that once it has ended

    lines = [
        i["line"] for i in (await user.get(f"/executions/{job.execution_id}/logs")).json()["items"]
    ]
    assert sorted(x for x in lines if "*" in x) == ["********"] * 2 + ["token=********;"] * 2
    assert not [t for t in [*seen, *seen_after] if token in t or hashed in t], "shown"
    assert not [t for t in [*kept, *kept_after] if token in t], "stored"
    assert not [r.getMessage() for r in caplog.records if token in r.getMessage()], "logged"
