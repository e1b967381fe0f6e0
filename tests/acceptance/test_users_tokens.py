"""User management (admins only) and personal API tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cronium.core import Core
from cronium.security.tokens import hash_token
from tests.conftest import PASSWORD, Api, Persona

NEW_PASSWORD = "another-long-password"
CLIENT_ADDR = "127.0.0.1"


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def audit_rows(core: Core, action: str) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(row._mapping) for row in result]


async def sql(core: Core, statement: str, **params: Any) -> list[dict[str, Any]]:
    async with core.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return [dict(r._mapping) for r in result] if result.returns_rows else []


async def cookie_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> None:
    resp = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text


def bearer(client: httpx.AsyncClient, token: str, persona: Persona) -> Api:
    return Api(client, Persona(persona.name, persona.email, persona.role, token))


# --- users ------------------------------------------------------------------------------


async def test_admin_creates_lists_gets_changes_and_deletes_a_user(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    admin = api["admin"]
    created = await admin.post(
        "/users", json={"email": " New@Example.com", "password": PASSWORD, "role": "viewer"}
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["email"], user["role"], user["is_active"]) == ("new@example.com", "viewer", True)
    assert "password" not in user and "password_hash" not in user
    uid = user["id"]

    listed = await admin.get("/users")
    assert listed.status_code == 200
    assert listed.json()["total"] == 5
    assert "new@example.com" in [u["email"] for u in listed.json()["items"]]
    only_viewers = await admin.get("/users", params={"role": "viewer"})
    assert sorted(u["email"] for u in only_viewers.json()["items"]) == [
        "new@example.com",
        "viewer@example.com",
    ]
    assert (await admin.get(f"/users/{uid}")).json()["email"] == "new@example.com"
    await cookie_login(client, "new@example.com")

    changed = await admin.patch(f"/users/{uid}", json={"role": "user", "email": "x@example.com"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["role"], changed.json()["email"]) == ("user", "x@example.com")

    assert (await admin.delete(f"/users/{uid}")).status_code == 204
    assert_error(await admin.get(f"/users/{uid}"), 404, "not_found")
    assert_error(await admin.delete(f"/users/{uid}"), 404, "not_found")
    assert_error(await client.get("/api/v1/auth/me"), 401, "unauthorized")


async def test_deleting_a_user_deletes_what_they_own(api: dict[str, Api], core: Core) -> None:
    resp = await api["user"].post("/variables", json={"key": "K", "value": "v"})
    assert resp.status_code == 201, resp.text
    assert (await api["admin"].delete("/users/2")).status_code == 204
    assert await sql(core, "SELECT id FROM variables") == []
    assert await sql(core, "SELECT id FROM api_tokens WHERE user_id = 2") == []


async def test_a_duplicate_email_answers_409(api: dict[str, Api]) -> None:
    resp = await api["admin"].post(
        "/users", json={"email": "USER@example.com", "password": PASSWORD}
    )
    assert_error(resp, 409, "conflict")
    resp = await api["admin"].patch("/users/3", json={"email": "user@example.com"})
    assert_error(resp, 409, "conflict")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "new@example.com", "password": "short"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "new@", "password": PASSWORD},
        {"email": "new@example.com", "password": PASSWORD, "role": "root"},
        {"email": "new@example.com", "password": PASSWORD, "is_admin": True},
        {"email": "new@example.com"},
    ],
    ids=["short-password", "bad-email", "half-email", "bad-role", "extra-field", "no-password"],
)
async def test_bad_user_bodies_answer_422(api: dict[str, Api], body: dict[str, Any]) -> None:
    assert_error(await api["admin"].post("/users", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"password": "short"},
        {"email": "nope"},
        {"email": None},
        {"role": None},
        {"is_active": None},
        {"role": "root"},
    ],
    ids=["short-password", "bad-email", "null-email", "null-role", "null-active", "bad-role"],
)
async def test_bad_user_patches_answer_422(api: dict[str, Api], body: dict[str, Any]) -> None:
    assert_error(await api["admin"].patch("/users/2", json=body), 422, "validation_error")


@pytest.mark.parametrize("persona", ["user", "other", "viewer"])
async def test_non_admins_get_403_on_every_users_route(api: dict[str, Api], persona: str) -> None:
    me = api[persona]
    body = {"email": "new@example.com", "password": PASSWORD}
    for resp in [
        await me.get("/users"),
        await me.post("/users", json=body),
        await me.get("/users/2"),
        await me.get("/users/999"),
        await me.patch("/users/2", json={"role": "admin"}),
        await me.delete("/users/2"),
    ]:
        assert_error(resp, 403, "forbidden")


async def test_a_missing_user_answers_404(api: dict[str, Api]) -> None:
    admin = api["admin"]
    for resp in [
        await admin.get("/users/999"),
        await admin.patch("/users/999", json={"role": "user"}),
        await admin.delete("/users/999"),
    ]:
        assert_error(resp, 404, "not_found")


async def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(
    api: dict[str, Api],
) -> None:
    admin = api["admin"]
    assert_error(await admin.patch("/users/1", json={"role": "user"}), 409, "conflict")
    assert_error(await admin.patch("/users/1", json={"role": "viewer"}), 409, "conflict")
    assert_error(await admin.patch("/users/1", json={"is_active": False}), 409, "conflict")
    assert_error(await admin.delete("/users/1"), 409, "conflict")
    # A no-op role change is fine.
    assert (await admin.patch("/users/1", json={"role": "admin"})).status_code == 200
    # With a second admin the first one may step down.
    assert (await admin.patch("/users/2", json={"role": "admin"})).status_code == 200
    assert (await admin.patch("/users/1", json={"role": "user"})).status_code == 200
    assert_error(await api["user"].delete("/users/2"), 409, "conflict")


async def test_a_disabled_admin_does_not_count_as_the_other_admin(api: dict[str, Api]) -> None:
    admin = api["admin"]
    assert (
        await admin.patch("/users/2", json={"role": "admin", "is_active": False})
    ).status_code == 200
    assert_error(await admin.delete("/users/1"), 409, "conflict")


async def test_changing_a_password_ends_that_users_sessions(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    await cookie_login(client, "user@example.com")
    assert (await client.get("/api/v1/auth/me")).status_code == 200
    resp = await api["admin"].patch("/users/2", json={"password": NEW_PASSWORD})
    assert resp.status_code == 200, resp.text
    assert_error(await client.get("/api/v1/auth/me"), 401, "unauthorized")
    client.cookies.clear()
    bad = await client.post(
        "/api/v1/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert_error(bad, 401, "unauthorized")
    await cookie_login(client, "user@example.com", NEW_PASSWORD)


async def test_disabling_a_user_ends_their_sessions_and_tokens(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    await cookie_login(client, "user@example.com")
    resp = await api["admin"].patch("/users/2", json={"is_active": False})
    assert resp.status_code == 200, resp.text
    assert_error(await client.get("/api/v1/auth/me"), 401, "unauthorized")
    assert_error(await api["user"].get("/events"), 401, "unauthorized")


async def test_user_changes_leave_audit_rows(api: dict[str, Api], core: Core) -> None:
    admin = api["admin"]
    uid = (
        await admin.post("/users", json={"email": "n@example.com", "password": PASSWORD})
    ).json()["id"]
    await admin.patch(f"/users/{uid}", json={"role": "viewer", "password": NEW_PASSWORD})
    await admin.delete(f"/users/{uid}")
    for action in ("user.create", "user.change", "user.delete"):
        (row,) = await audit_rows(core, action)
        assert (row["actor"], row["actor_user_id"]) == ("admin@example.com", 1), action
        assert (row["target_type"], row["target_id"]) == ("user", str(uid)), action
        assert row["client_addr"] == CLIENT_ADDR and row["at"] is not None, action
        assert NEW_PASSWORD not in str(row["details"]) and PASSWORD not in str(row["details"])
    (change,) = await audit_rows(core, "user.change")
    assert change["details"]["fields"] == ["password", "role"]


# --- tokens -----------------------------------------------------------------------------


async def create_token(me: Api, **body: Any) -> dict[str, Any]:
    resp = await me.post("/tokens", json={"name": "ci", **body})
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_a_token_is_shown_once_and_listed_by_prefix(api: dict[str, Api]) -> None:
    me = api["user"]
    created = await create_token(me)
    token = created["token"]
    assert token.startswith("crn_") and len(token) > 30
    assert token.startswith(created["prefix"]) and created["prefix"] != token
    assert (created["expires_at"], created["last_used_at"], created["revoked_at"]) == (None,) * 3
    listed = await me.get("/tokens")
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert sorted(t["name"] for t in items) == ["ci", "test"]
    assert token not in listed.text
    assert all("token" not in t and "token_hash" not in t for t in items)
    assert [t["prefix"] for t in items if t["name"] == "ci"] == [created["prefix"]]
    # Only your own tokens.
    assert [t["name"] for t in (await api["other"].get("/tokens")).json()["items"]] == ["test"]


async def test_a_new_token_works_as_bearer_and_records_its_last_use(
    api: dict[str, Api], client: httpx.AsyncClient, personas: dict[str, Persona]
) -> None:
    created = await create_token(api["viewer"])  # viewers manage their own tokens too
    mine = bearer(client, created["token"], personas["viewer"])
    me = await mine.get("/auth/me")
    assert me.status_code == 200 and me.json()["email"] == "viewer@example.com"
    listed = (await mine.get("/tokens")).json()["items"]
    (row,) = [t for t in listed if t["id"] == created["id"]]
    used = datetime.fromisoformat(row["last_used_at"])
    assert abs(datetime.now(UTC) - used) < timedelta(minutes=1)


async def test_a_revoked_token_answers_401_revoked(
    api: dict[str, Api], client: httpx.AsyncClient, personas: dict[str, Persona], core: Core
) -> None:
    created = await create_token(api["user"])
    mine = bearer(client, created["token"], personas["user"])
    assert (await mine.get("/auth/me")).status_code == 200
    assert (await mine.delete(f"/tokens/{created['id']}")).status_code == 204
    error = assert_error(await mine.get("/auth/me"), 401, "unauthorized")
    assert "revoked" in error["message"]
    assert_error(await api["user"].delete(f"/tokens/{created['id']}"), 404, "not_found")
    listed = (await api["user"].get("/tokens")).json()["items"]
    assert created["id"] not in [t["id"] for t in listed]
    with_revoked = await api["user"].get("/tokens", params={"include_revoked": "true"})
    (row,) = [t for t in with_revoked.json()["items"] if t["id"] == created["id"]]
    assert row["revoked_at"] is not None
    # The name is free again once revoked.
    await create_token(api["user"])


async def test_a_duplicate_active_token_name_answers_409(api: dict[str, Api]) -> None:
    await create_token(api["user"])
    assert_error(await api["user"].post("/tokens", json={"name": "ci"}), 409, "conflict")
    await create_token(api["other"])  # names are per user


BAD_TOKEN_BODIES: dict[str, dict[str, Any]] = {
    "past": {"expires_at": "2001-01-01T00:00:00Z"},
    "naive": {"expires_at": "2099-01-01T00:00:00"},
    "not-a-date": {"expires_at": "tomorrow"},
    "both-expiries": {"expires_at": "2099-01-01T00:00:00Z", "expires_in_days": 3},
    "zero-days": {"expires_in_days": 0},
    "negative-days": {"expires_in_days": -1},
    "after-year-9999": {"expires_at": "9999-12-31T23:59:59-14:00"},
    "before-year-1": {"expires_at": "0001-01-01T00:00:00+05:00"},
    "chosen-token": {"token": "crn_mine"},
    "empty-name": {"name": ""},
    "blank-name": {"name": "   "},
    "nul-in-name": {"name": "a\u0000b"},
    "no-name": {"name": None},
}


@pytest.mark.parametrize("body", list(BAD_TOKEN_BODIES.values()), ids=list(BAD_TOKEN_BODIES))
async def test_bad_token_bodies_answer_422(api: dict[str, Api], body: dict[str, Any]) -> None:
    body = {k: v for k, v in {"name": "ci", **body}.items() if v is not None}
    assert_error(await api["user"].post("/tokens", json=body), 422, "validation_error")


async def test_token_expiry(
    api: dict[str, Api], client: httpx.AsyncClient, personas: dict[str, Persona], core: Core
) -> None:
    at = datetime.now(UTC) + timedelta(days=30)
    absolute = await create_token(api["user"], name="abs", expires_at=at.isoformat())
    assert datetime.fromisoformat(absolute["expires_at"]) == at
    relative = await create_token(api["user"], name="rel", expires_in_days=7)
    expected = datetime.now(UTC) + timedelta(days=7)
    assert abs(datetime.fromisoformat(relative["expires_at"]) - expected) < timedelta(minutes=1)
    mine = bearer(client, relative["token"], personas["user"])
    assert (await mine.get("/auth/me")).status_code == 200

    await sql(
        core,
        "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = :id",
        id=relative["id"],
    )
    error = assert_error(await mine.get("/auth/me"), 401, "unauthorized")
    assert "expired" in error["message"]


async def test_nobody_can_revoke_another_users_token(api: dict[str, Api]) -> None:
    created = await create_token(api["user"])
    for persona in ("other", "viewer", "admin"):
        resp = await api[persona].delete(f"/tokens/{created['id']}")
        assert_error(resp, 404, "not_found")
    assert_error(await api["user"].delete("/tokens/999999"), 404, "not_found")
    assert created["id"] in [t["id"] for t in (await api["user"].get("/tokens")).json()["items"]]


async def test_tokens_are_stored_hashed(api: dict[str, Api], core: Core) -> None:
    created = await create_token(api["user"])
    (row,) = await sql(core, "SELECT * FROM api_tokens WHERE id = :id", id=created["id"])
    assert row["token_hash"] == hash_token(created["token"])
    assert row["token_hash"] != created["token"]
    assert created["token"] not in str(row)
    assert created["token"][len(created["prefix"]) :] not in str(row)


async def test_token_changes_leave_audit_rows(api: dict[str, Api], core: Core) -> None:
    created = await create_token(api["viewer"])
    assert (await api["viewer"].delete(f"/tokens/{created['id']}")).status_code == 204
    for action in ("token.create", "token.revoke"):
        (row,) = await audit_rows(core, action)
        assert (row["actor"], row["actor_user_id"]) == ("viewer@example.com", 4), action
        assert (row["target_type"], row["target_id"]) == ("api_token", str(created["id"]))
        assert row["client_addr"] == CLIENT_ADDR and row["at"] is not None, action
        assert created["token"] not in str(row)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    api: dict[str, Api], core: Core
) -> None:
    for _ in range(5):
        assert (await api["admin"].patch("/users/2", json={"role": "admin"})).status_code == 200
        results = await asyncio.gather(
            api["admin"].patch("/users/2", json={"role": "user"}),
            api["user"].patch("/users/1", json={"role": "user"}),
        )
        # The loser is refused either as a non-admin already or as the last admin.
        assert sorted(r.status_code for r in results) in ([200, 403], [200, 409]), [
            r.text for r in results
        ]
        rows = await sql(core, "SELECT id FROM users WHERE role = 'admin' AND is_active")
        assert len(rows) == 1
        if rows[0]["id"] == 2:
            assert (await api["user"].patch("/users/1", json={"role": "admin"})).status_code == 200


async def test_creating_the_same_user_twice_at_once_answers_409(api: dict[str, Api]) -> None:
    body = {"email": "twin@example.com", "password": PASSWORD}
    results = await asyncio.gather(*(api["admin"].post("/users", json=body) for _ in range(3)))
    assert sorted(r.status_code for r in results) == [201, 409, 409], [r.text for r in results]


@pytest.mark.parametrize("bad_id", ["0", "-1", "9223372036854775808", "99999999999999999999", "x"])
async def test_out_of_range_ids_answer_4xx_not_500(api: dict[str, Api], bad_id: str) -> None:
    for resp in [
        await api["admin"].get(f"/users/{bad_id}"),
        await api["admin"].patch(f"/users/{bad_id}", json={"role": "user"}),
        await api["admin"].delete(f"/users/{bad_id}"),
        await api["user"].delete(f"/tokens/{bad_id}"),
    ]:
        assert resp.status_code in (404, 422), (resp.request.url, resp.text)


BAD_QUERIES = "search=a%00 offset=9223372036854775808 offset=-1 limit=0 limit=201 role=root"


@pytest.mark.parametrize(
    "url",
    [f"/users?{q}" for q in [*BAD_QUERIES.split(), "sort=password_hash"]]
    + ["/tokens?sort=-token_hash", "/tokens?offset=100000000000000000000"],
)
async def test_bad_list_parameters_answer_422(api: dict[str, Api], url: str) -> None:
    assert_error(await api["admin"].get(url), 422, "validation_error")


async def test_users_are_searched_sorted_and_paged(api: dict[str, Api]) -> None:
    admin = api["admin"]
    found = await admin.get("/users", params={"search": "OTHER"})
    assert [u["email"] for u in found.json()["items"]] == ["other@example.com"]
    assert (await admin.get("/users", params={"search": "%"})).json()["total"] == 0
    page = (await admin.get("/users", params={"sort": "-email", "limit": 2, "offset": 1})).json()
    assert [u["email"] for u in page["items"]] == ["user@example.com", "other@example.com"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
