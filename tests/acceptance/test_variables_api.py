"""Variables API: any JSON value; secret values are encrypted and never returned."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cronium.core import Core
from tests.conftest import Api

SECRET = "s3cr3t-token-value-0123456789"
MIB = 1024 * 1024


def _assert_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] and error["message"]
    return error


async def _create(api: Api, key: str = "K", value: Any = "v", **extra: Any) -> dict[str, Any]:
    resp = await api.post("/variables", json={"key": key, "value": value, **extra})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def _stored(core: Core, var_id: int) -> tuple[Any, Any, bool]:
    """(plain value column, decrypted secret or None, secret flag) straight from the table."""
    async with core.sessions() as db:
        sql = "SELECT value, value IS NULL AS no_value, value_encrypted, secret FROM variables"
        row = (await db.execute(text(sql + " WHERE id = :id"), {"id": var_id})).one()
    if row.secret:  # a secret keeps nothing, not even a JSON null, in the plain column
        assert row.no_value
    else:
        assert row.value_encrypted is None
    decrypted = core.cipher.decrypt_json(row.value_encrypted) if row.value_encrypted else None
    return row.value, decrypted, row.secret


VALUES = ["text", "", 42, -3.5, 10**30, True, None, [1, "two", None], {"a": {"b": [1, 2]}}, {}]


@pytest.mark.parametrize("value", VALUES)
async def test_a_plain_variable_holds_any_json_value(
    api: dict[str, Api], core: Core, value: Any
) -> None:
    created = await _create(api["user"], value=value, description="about it")
    assert (created["key"], created["value"], created["secret"]) == ("K", value, False)
    assert created["description"] == "about it"
    assert (await api["user"].get(f"/variables/{created['id']}")).json()["value"] == value
    assert (await api["user"].get("/variables")).json()["items"][0]["value"] == value
    plain, encrypted, _ = await _stored(core, created["id"])
    assert (plain, encrypted) == (value, None)


@pytest.mark.parametrize("value", [SECRET, {"token": SECRET, "n": 1}, [SECRET], None])
async def test_a_secret_value_is_never_returned(
    api: dict[str, Api], core: Core, value: Any
) -> None:
    user = api["user"]
    resp = await user.post("/variables", json={"key": "TOKEN", "value": value, "secret": True})
    assert resp.status_code == 201, resp.text
    vid = resp.json()["id"]
    responses = [resp, await user.get(f"/variables/{vid}"), await user.get("/variables")]
    responses += [await user.patch(f"/variables/{vid}", json={"description": "rotated weekly"})]
    responses += [
        await api["admin"].get("/variables"),
        await api["viewer"].get(f"/variables/{vid}"),
    ]
    responses += [await user.get("/variables", params={"secret": "true"})]
    for r in responses:
        assert r.status_code in (200, 201), r.text
        assert SECRET not in r.text
        item = r.json()["items"][0] if "items" in r.json() else r.json()
        assert (item["value"], item["secret"]) == (None, True)
    assert responses[3].json()["description"] == "rotated weekly"
    assert await _stored(core, vid) == (None, value, True)


async def test_a_value_is_patched_in_place(api: dict[str, Api], core: Core) -> None:
    user = api["user"]
    plain = await _create(user, "PLAIN", "old")
    resp = await user.patch(f"/variables/{plain['id']}", json={"value": {"new": [1]}})
    assert (resp.status_code, resp.json()["value"]) == (200, {"new": [1]})
    resp = await user.patch(f"/variables/{plain['id']}", json={"value": None})
    assert (resp.status_code, resp.json()["value"]) == (200, None)
    assert (await user.get(f"/variables/{plain['id']}")).json()["value"] is None

    secret = await _create(user, "SECRET", "first", secret=True)
    resp = await user.patch(f"/variables/{secret['id']}", json={"value": SECRET})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["value"], resp.json()["secret"]) == (None, True)
    assert SECRET not in resp.text
    assert await _stored(core, secret["id"]) == (None, SECRET, True)
    renamed = await user.patch(f"/variables/{secret['id']}", json={"key": "SECRET_2"})
    assert renamed.json()["key"] == "SECRET_2"
    assert await _stored(core, secret["id"]) == (None, SECRET, True)


async def test_a_secret_only_becomes_plain_with_a_new_value(
    api: dict[str, Api], core: Core
) -> None:
    user = api["user"]
    vid = (await _create(user, "TOKEN", SECRET, secret=True))["id"]
    error = _assert_error(await user.patch(f"/variables/{vid}", json={"secret": False}), 422)
    assert "new value" in error["message"]
    assert error["details"] == {"field": "value"}
    assert await _stored(core, vid) == (None, SECRET, True)

    resp = await user.patch(f"/variables/{vid}", json={"secret": False, "value": "public"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["value"], resp.json()["secret"]) == ("public", False)
    assert await _stored(core, vid) == ("public", None, False)


async def test_making_a_plain_variable_secret_moves_its_value_into_encryption(
    api: dict[str, Api], core: Core
) -> None:
    user = api["user"]
    vid = (await _create(user, "API_KEY", {"key": SECRET}))["id"]
    resp = await user.patch(f"/variables/{vid}", json={"secret": True})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["value"], resp.json()["secret"]) == (None, True)
    assert SECRET not in resp.text
    assert await _stored(core, vid) == (None, {"key": SECRET}, True)
    async with core.sessions() as db:
        raw = await db.scalar(text("SELECT t::text FROM variables t WHERE id = :id"), {"id": vid})
    assert SECRET not in raw

    again = await user.patch(f"/variables/{vid}", json={"secret": True, "value": "next"})
    assert again.status_code == 200, again.text
    assert await _stored(core, vid) == (None, "next", True)


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("A", True),
        ("_private", True),
        ("db.host", True),
        ("my-var_2", True),
        ("x" * 200, True),
        ("x" * 201, False),
        ("", False),
        ("1abc", False),
        ("-dash", False),
        ("has space", False),
        ("a$b", False),
        ("naïve", False),
        ("a\x00b", False),
        ("a/b", False),
        (None, False),
    ],
)
async def test_a_variable_key_is_validated(api: dict[str, Api], key: str | None, ok: bool) -> None:
    resp = await api["user"].post("/variables", json={"key": key, "value": 1})
    if ok:
        assert (resp.status_code, resp.json()["key"]) == (201, key), resp.text
        return
    assert _assert_error(resp, 422)["details"][0]["field"] == "key"
    vid = (await _create(api["user"], "GOOD"))["id"]
    assert _assert_error(await api["user"].patch(f"/variables/{vid}", json={"key": key}), 422)


async def test_a_variable_key_is_unique_per_owner(api: dict[str, Api]) -> None:
    user = api["user"]
    first = await _create(user, "SHARED")
    error = _assert_error(await user.post("/variables", json={"key": "SHARED", "value": 2}), 409)
    assert "SHARED" in error["message"]
    secret = await user.post("/variables", json={"key": "SHARED", "secret": True, "value": 3})
    _assert_error(secret, 409)
    await _create(api["other"], "SHARED")
    second = await _create(user, "OTHER")
    _assert_error(await user.patch(f"/variables/{second['id']}", json={"key": "SHARED"}), 409)
    same = await user.patch(f"/variables/{first['id']}", json={"key": "SHARED"})
    assert same.status_code == 200, same.text


async def test_a_value_over_one_mebibyte_is_rejected(api: dict[str, Api]) -> None:
    user = api["user"]
    largest = "x" * (MIB - 2)  # with its quotes: exactly 1 MiB of JSON
    assert (await user.post("/variables", json={"key": "BIG", "value": largest})).status_code == 201
    for secret in (False, True):
        body = {"key": f"TOO_BIG_{secret}", "value": largest + "x", "secret": secret}
        error = _assert_error(await user.post("/variables", json=body), 422)
        assert "limit" in error["message"]
    small = await _create(user, "SMALL")
    huge = {"items": ["y" * 1000] * 1100}
    _assert_error(await user.patch(f"/variables/{small['id']}", json={"value": huge}), 422)
    assert (await user.get(f"/variables/{small['id']}")).json()["value"] == "v"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"key": "K", "value": NaN}',
        b'{"key": "K", "value": [Infinity]}',
        b'{"key": "K", "value": -Infinity, "secret": true}',
        b'{"key": "K", "value": "nul \\u0000 inside"}',
        b'{"key": "K", "value": {"nul\\u0000key": 1}}',
        b'{"key": "K", "value": ' + b"[" * 200 + b"]" * 200 + b"}",
        b'{"key": "K", "value": 1, "description": "nul \\u0000"}',
        b'{"key": "K", "value": 1, "description": "' + b"d" * 2001 + b'"}',
        b'{"key": "K", "value": 1, "secret": "maybe"}',
        b'{"key": "K", "value": 1, "owner_id": 1}',
        b'{"key": "K"',
        b"[]",
    ],
)
async def test_a_value_postgres_cannot_store_is_a_422(api: dict[str, Api], raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    _assert_error(await api["user"].post("/variables", content=raw, headers=headers), 422)
    vid = (await _create(api["user"], "EXISTING"))["id"]
    patch = raw.replace(b'"key": "K", ', b"")
    resp = await api["user"].patch(f"/variables/{vid}", content=patch, headers=headers)
    _assert_error(resp, 422)


async def _keys(api: Api, **params: Any) -> list[str]:
    resp = await api.get("/variables", params=params)
    assert resp.status_code == 200, resp.text
    return [v["key"] for v in resp.json()["items"]]


async def test_variables_are_listed_filtered_searched_sorted_and_paged(api: dict[str, Api]) -> None:
    user = api["user"]
    await _create(user, "DB_HOST", "db", description="database host")
    token = await _create(user, "API_TOKEN", SECRET, secret=True, description="Slack token")
    await _create(user, "zeta", 1)
    await _create(user, "PCT", "p", description="100% sure")
    await user.patch(f"/variables/{token['id']}", json={"description": "touched"})

    assert await _keys(user) == ["API_TOKEN", "DB_HOST", "PCT", "zeta"]
    assert await _keys(user, sort="-key") == ["zeta", "PCT", "DB_HOST", "API_TOKEN"]
    assert await _keys(user, sort="created_at") == ["DB_HOST", "API_TOKEN", "zeta", "PCT"]
    assert (await _keys(user, sort="-updated_at"))[0] == "API_TOKEN"
    assert await _keys(user, secret="true") == ["API_TOKEN"]
    assert await _keys(user, secret="false") == ["DB_HOST", "PCT", "zeta"]
    assert await _keys(user, search="db") == ["DB_HOST"]
    assert await _keys(user, search="SLACK") == []  # description was replaced by "touched"
    assert await _keys(user, search="touch") == ["API_TOKEN"]
    assert await _keys(user, search="%") == ["PCT"]
    assert await _keys(user, search="_") == ["API_TOKEN", "DB_HOST"]

    page = (await user.get("/variables", params={"limit": 2, "offset": 2, "sort": "key"})).json()
    assert ([v["key"] for v in page["items"]], page["total"]) == (["PCT", "zeta"], 4)
    assert (page["limit"], page["offset"]) == (2, 2)
    bad = ["sort=value", "sort=value_encrypted", "secret=perhaps", "limit=0", "limit=500"]
    for query in [*bad, "offset=-1", "search=a%00b", f"search={'s' * 201}"]:
        _assert_error(await user.get(f"/variables?{query}"), 422)


async def test_users_only_see_and_change_their_own_variables(api: dict[str, Api]) -> None:
    mine = await _create(api["user"], "MINE", "m")
    theirs = await _create(api["other"], "THEIRS", "t")
    vid = mine["id"]
    assert mine["owner_id"] == 2

    other = api["other"]
    assert await _keys(other) == ["THEIRS"]
    _assert_error(await other.get(f"/variables/{vid}"), 404)
    _assert_error(await other.patch(f"/variables/{vid}", json={"value": "stolen"}), 404)
    _assert_error(await other.delete(f"/variables/{vid}"), 404)

    viewer = api["viewer"]
    assert (await viewer.get(f"/variables/{vid}")).json()["value"] == "m"
    assert await _keys(viewer) == ["MINE", "THEIRS"]
    _assert_error(await viewer.post("/variables", json={"key": "V", "value": 1}), 403)
    _assert_error(await viewer.patch(f"/variables/{vid}", json={"value": 2}), 403)
    _assert_error(await viewer.delete(f"/variables/{vid}"), 403)

    admin = api["admin"]
    assert await _keys(admin) == ["MINE", "THEIRS"]
    patched = await admin.patch(f"/variables/{theirs['id']}", json={"value": "by admin"})
    assert (patched.status_code, patched.json()["owner_id"]) == (200, 3)
    assert (await api["user"].get(f"/variables/{vid}")).json()["value"] == "m"
    _assert_error(await api["user"].client.get("/api/v1/variables"), 401)

    assert (await api["user"].delete(f"/variables/{vid}")).status_code == 204
    _assert_error(await api["user"].get(f"/variables/{vid}"), 404)
    _assert_error(await api["user"].delete(f"/variables/{vid}"), 404)


@pytest.mark.parametrize("variable_id", ["abc", "1.5", str(2**70), "-1", "0", "999"])
async def test_a_bad_or_unknown_id_is_a_clean_4xx(api: dict[str, Api], variable_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"value": 1}} if method == "PATCH" else {}
        resp = await api["user"].request(method, f"/variables/{variable_id}", **kwargs)
        assert resp.status_code in (404, 422), resp.text
        assert resp.json()["error"]["message"]
