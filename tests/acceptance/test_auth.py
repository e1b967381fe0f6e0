"""Login, logout, sessions, CSRF, rate limits and the audit rows they leave."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cronium.core import Core
from tests.conftest import PASSWORD, Api

LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
LOGOUT = "/api/v1/auth/logout"
COOKIE = "cronium_session"
CLIENT_ADDR = "127.0.0.1"  # the address the `client` fixture's transport reports


async def login(
    client: httpx.AsyncClient, email: str = "user@example.com", password: str = PASSWORD
) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def logged_in(client: httpx.AsyncClient, email: str = "user@example.com") -> str:
    """Log in with the cookie jar of `client`; returns the CSRF token."""
    resp = await login(client, email)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["csrf_token"])


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def session_cookie_header(resp: httpx.Response) -> str:
    headers = [h for h in resp.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, resp.headers.get_list("set-cookie")
    return headers[0]


async def audit_rows(core: Core, action: str) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(row._mapping) for row in result]


# --- login and sessions -------------------------------------------------------------


async def test_login_sets_an_httponly_samesite_lax_cookie_and_returns_a_csrf_token(
    client: httpx.AsyncClient,
) -> None:
    resp = await login(client)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["email"] == "user@example.com"
    assert body["user"]["role"] == "user"
    assert "password_hash" not in body["user"]
    assert len(body["csrf_token"]) >= 20
    attrs = [a.strip().lower() for a in session_cookie_header(resp).split(";")]
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/" in attrs
    assert client.cookies.get(COOKIE)


async def test_wrong_password_answers_401_json(client: httpx.AsyncClient) -> None:
    error = assert_error(await login(client, password="not-the-password"), 401, "unauthorized")
    assert error["message"] == "wrong email or password"
    assert COOKIE not in client.cookies


async def test_unknown_email_answers_the_same_401_as_a_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    wrong = assert_error(await login(client, password="not-the-password"), 401, "unauthorized")
    unknown = assert_error(await login(client, "nobody@example.com"), 401, "unauthorized")
    assert unknown == wrong


async def test_a_disabled_user_cannot_log_in(
    client: httpx.AsyncClient, api: dict[str, Api]
) -> None:
    resp = await api["admin"].patch("/users/2", json={"is_active": False})
    assert resp.status_code == 200, resp.text
    error = assert_error(await login(client), 401, "unauthorized")
    assert error["message"] == "wrong email or password"


async def test_login_is_case_insensitive_on_the_email(client: httpx.AsyncClient) -> None:
    resp = await login(client, "  User@Example.COM ")
    assert resp.status_code == 200, resp.text


async def test_me_answers_with_the_session_cookie(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(ME), 401, "unauthorized")
    await logged_in(client, "viewer@example.com")
    resp = await client.get(ME)
    assert resp.status_code == 200, resp.text
    assert resp.json()["email"] == "viewer@example.com"
    assert resp.json()["role"] == "viewer"
    assert resp.json()["last_login_at"] is not None


async def test_logout_deletes_the_session(client: httpx.AsyncClient) -> None:
    csrf = await logged_in(client)
    cookie = client.cookies[COOKIE]
    assert_error(await client.post(LOGOUT), 403, "forbidden")  # cookie auth needs CSRF
    resp = await client.post(LOGOUT, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 204, resp.text
    assert COOKIE not in client.cookies  # the response expires the cookie
    client.cookies.clear()
    # The old cookie value no longer names a session.
    old = await client.get(ME, headers={"Cookie": f"{COOKIE}={cookie}"})
    assert_error(old, 401, "unauthorized")


async def test_a_client_supplied_session_id_is_not_reused_at_login(
    client: httpx.AsyncClient,
) -> None:
    planted = "attacker-chosen-session-id-0123456789"
    client.cookies.set(COOKIE, planted)
    resp = await login(client)
    assert resp.status_code == 200, resp.text
    issued = session_cookie_header(resp).split(";")[0].partition("=")[2]
    assert issued and issued != planted
    client.cookies.clear()
    assert_error(
        await client.get(ME, headers={"Cookie": f"{COOKIE}={planted}"}), 401, "unauthorized"
    )
    ok = await client.get(ME, headers={"Cookie": f"{COOKIE}={issued}"})
    assert ok.status_code == 200, ok.text


async def test_a_garbage_session_cookie_answers_401(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(ME, headers={"Cookie": f"{COOKIE}=garbage"}), 401, "unauthorized")


# --- CSRF -------------------------------------------------------------------------------


async def test_cookie_authenticated_writes_need_the_csrf_header(
    client: httpx.AsyncClient,
) -> None:
    csrf = await logged_in(client)
    created = await client.post(
        "/api/v1/variables", json={"key": "K", "value": "v"}, headers={"X-CSRF-Token": csrf}
    )
    assert created.status_code == 201, created.text
    url = f"/api/v1/variables/{created.json()['id']}"
    attempts = [
        ("POST", "/api/v1/variables", {"key": "K2", "value": "v"}),
        ("PATCH", url, {"description": "changed"}),
        ("DELETE", url, None),
    ]
    for method, path, body in attempts:
        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
            resp = await client.request(method, path, json=body, headers=headers)
            error = assert_error(resp, 403, "forbidden")
            assert "CSRF" in error["message"]
    # Nothing was written by the refused requests.
    listed = await client.get("/api/v1/variables")
    assert [(v["key"], v["description"]) for v in listed.json()["items"]] == [("K", "")]
    ok = [
        await client.post(
            "/api/v1/variables", json={"key": "K2", "value": "v"}, headers={"X-CSRF-Token": csrf}
        ),
        await client.patch(url, json={"description": "changed"}, headers={"X-CSRF-Token": csrf}),
        await client.delete(url, headers={"X-CSRF-Token": csrf}),
    ]
    assert [r.status_code for r in ok] == [201, 200, 204], [r.text for r in ok]


async def test_the_csrf_token_of_another_session_is_refused(client: httpx.AsyncClient) -> None:
    other_csrf = await logged_in(client, "other@example.com")
    client.cookies.clear()
    await logged_in(client)
    resp = await client.post(
        "/api/v1/variables", json={"key": "K", "value": 1}, headers={"X-CSRF-Token": other_csrf}
    )
    assert_error(resp, 403, "forbidden")


async def test_a_non_ascii_csrf_header_is_refused_not_a_crash(client: httpx.AsyncClient) -> None:
    await logged_in(client)
    resp = await client.post(
        "/api/v1/variables", json={"key": "K", "value": 1}, headers={b"X-CSRF-Token": b"\xc3\xa9"}
    )
    assert_error(resp, 403, "forbidden")


async def test_cookie_authenticated_reads_need_no_csrf(client: httpx.AsyncClient) -> None:
    await logged_in(client)
    for path in (ME, "/api/v1/events", "/api/v1/variables", "/api/v1/tokens"):
        resp = await client.get(path)
        assert resp.status_code == 200, (path, resp.text)


async def test_bearer_authenticated_writes_need_no_csrf(
    client: httpx.AsyncClient, api: dict[str, Api]
) -> None:
    await logged_in(client)  # a cookie in the jar does not make bearer requests need CSRF
    resp = await api["user"].post("/variables", json={"key": "K", "value": "v"})
    assert resp.status_code == 201, resp.text
    resp = await api["user"].delete(f"/variables/{resp.json()['id']}")
    assert resp.status_code == 204, resp.text


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"email": "user@example.com"}', "application/json"),
        ('{"password": "x"}', "application/json"),
        ("{}", "application/json"),
        ('{"email": "user@example.com", "password": "x", "admin": true}', "application/json"),
        ('{"email": "user@example.com", "password": ', "application/json"),
        ("email=user@example.com&password=x", "application/x-www-form-urlencoded"),
        ("just text", "text/plain"),
        ('["user@example.com", "x"]', "application/json"),
        ('{"email": 5, "password": null}', "application/json"),
        ("", "application/json"),
        ('{"email": "a\\u0000b@example.com", "password": "x"}', "application/json"),
    ],
    ids=[
        "no-password",
        "no-email",
        "empty",
        "extra-field",
        "truncated-json",
        "form",
        "text",
        "array",
        "wrong-types",
        "no-body",
        "nul-in-email",
    ],
)
async def test_malformed_login_bodies_answer_422_json(
    client: httpx.AsyncClient, content: str, content_type: str
) -> None:
    resp = await client.post(LOGIN, content=content, headers={"Content-Type": content_type})
    error = assert_error(resp, 422, "validation_error")
    assert error["details"]


async def test_basic_auth_answers_401_naming_bearer(client: httpx.AsyncClient) -> None:
    error = assert_error(
        await client.get(ME, headers={"Authorization": "Basic x"}), 401, "unauthorized"
    )
    assert "Bearer" in error["message"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer not-a-token", "Token abc"])
async def test_bad_authorization_headers_answer_401(client: httpx.AsyncClient, header: str) -> None:
    assert_error(await client.get(ME, headers={"Authorization": header}), 401, "unauthorized")


async def test_anonymous_requests_answer_401(client: httpx.AsyncClient) -> None:
    error = assert_error(await client.get("/api/v1/events"), 401, "unauthorized")
    assert "Bearer" in error["message"]


# --- rate limits ------------------------------------------------------------------------


async def test_ten_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(10):
        assert_error(await login(client, password="wrong-password"), 401, "unauthorized")
    resp = await login(client)
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0
    # Other accounts from the same client are not locked.
    assert (await login(client, "other@example.com")).status_code == 200


async def test_parallel_guesses_cannot_outrun_the_account_lock(client: httpx.AsyncClient) -> None:
    guesses = [login(client, password=f"guess-{i}") for i in range(15)]
    results = await asyncio.gather(*guesses)
    assert sorted(r.status_code for r in results) == [401] * 10 + [429] * 5


async def test_the_account_lock_ignores_email_case(client: httpx.AsyncClient) -> None:
    for i in range(10):
        email = "USER@example.com" if i % 2 else "user@example.com"
        assert_error(await login(client, email, "wrong-password"), 401, "unauthorized")
    assert_error(await login(client, "User@Example.com"), 429, "rate_limited")


async def test_a_successful_login_resets_the_account_failure_count(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(9):
        assert_error(await login(client, password="wrong-password"), 401, "unauthorized")
    assert (await login(client)).status_code == 200
    for _ in range(9):
        assert_error(await login(client, password="wrong-password"), 401, "unauthorized")
    assert (await login(client)).status_code == 200


async def test_one_client_gets_30_attempts_in_five_minutes_across_accounts(
    client: httpx.AsyncClient,
) -> None:
    for i in range(30):
        assert_error(await login(client, f"nobody{i}@example.com"), 401, "unauthorized")
    resp = await login(client)  # the right password for an unlocked account
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) > 0


# --- audit ------------------------------------------------------------------------------


async def test_logins_and_logouts_leave_audit_rows(client: httpx.AsyncClient, core: Core) -> None:
    assert_error(await login(client, password="wrong-password"), 401, "unauthorized")
    assert_error(await login(client, "nobody@example.com"), 401, "unauthorized")
    csrf = await logged_in(client)
    assert (await client.post(LOGOUT, headers={"X-CSRF-Token": csrf})).status_code == 204

    failures = await audit_rows(core, "login.failure")
    assert [(r["actor"], r["actor_user_id"]) for r in failures] == [
        ("user@example.com", 2),
        ("nobody@example.com", None),
    ]
    assert all(r["client_addr"] == CLIENT_ADDR and r["at"] is not None for r in failures)
    assert all("password" not in str(r["details"]) for r in failures)
    (success,) = await audit_rows(core, "login.success")
    assert (success["actor"], success["actor_user_id"]) == ("user@example.com", 2)
    assert success["client_addr"] == CLIENT_ADDR and success["at"] is not None
    (logout,) = await audit_rows(core, "logout")
    assert (logout["actor"], logout["actor_user_id"]) == ("user@example.com", 2)
    assert logout["client_addr"] == CLIENT_ADDR and logout["at"] is not None
