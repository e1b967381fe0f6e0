"""Password reset by email, against a real SMTP server: the link works once, expires,
ends the account's sessions, and the answer never tells whether an account exists."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cronium.core import Core
from cronium.security.tokens import hash_token
from tests.acceptance.test_users_tokens import assert_error, audit_rows, cookie_login, sql
from tests.conftest import PASSWORD, Api
from tests.support.mail import SENDER, configure_mail, link_in, token_of, wait_for_mail
from tests.support.tool_receivers import SmtpServer, smtp_server

NEW_PASSWORD = "a-brand-new-password"
RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
async def mail(api: dict[str, Api], smtp: SmtpServer) -> SmtpServer:
    await configure_mail(api["admin"], smtp)
    return smtp


async def reset_link(client: httpx.AsyncClient, mail: SmtpServer, email: str) -> str:
    before = len(mail.mailbox.messages)
    resp = await client.post(RESET, json={"email": email})
    assert resp.status_code == 202, resp.text
    messages = await wait_for_mail(mail.mailbox, before + 1)
    return link_in(messages[-1])


async def test_the_link_sets_a_new_password_once_and_ends_every_session(
    client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    await cookie_login(client, "user@example.com")
    assert (await client.get("/api/v1/auth/me")).status_code == 200

    url = await reset_link(client, mail, "User@Example.com")
    message = mail.mailbox.messages[-1]
    assert message["to"] == ["user@example.com"] and message["from"] == SENDER
    assert message["tls"] and message["user"] == "robot"
    assert message["subject"] == "Reset your Cronium password"
    assert url.startswith("http://testserver/reset-password?token=")
    assert url in (message["html"] or "").replace("&amp;", "&")

    resp = await client.post(CONFIRM, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert resp.status_code == 204, resp.text
    assert_error(await client.get("/api/v1/auth/me"), 401, "unauthorized")
    client.cookies.clear()
    bad = await client.post(
        "/api/v1/auth/login", json={"email": "user@example.com", "password": PASSWORD}
    )
    assert_error(bad, 401, "unauthorized")
    await cookie_login(client, "user@example.com", NEW_PASSWORD)

    again = await client.post(CONFIRM, json={"token": token_of(url), "password": "x" * 20})
    error = assert_error(again, 410, "link_gone")
    assert error["details"] == {"reason": "used"} and "already been used" in error["message"]
    await cookie_login(client, "user@example.com", NEW_PASSWORD)

    (requested,) = await audit_rows(core, "password_reset.request")
    (completed,) = await audit_rows(core, "password_reset.complete")
    assert requested["target_id"] == completed["target_id"] == "2"
    assert completed["client_addr"] == "127.0.0.1"
    rows = await sql(core, "SELECT * FROM account_tokens")
    assert [r["token_hash"] for r in rows] == [hash_token(token_of(url))]
    assert token_of(url) not in str(rows) + str(requested) + str(completed)


async def test_an_unknown_or_disabled_address_gets_the_same_answer_and_no_mail(
    client: httpx.AsyncClient, mail: SmtpServer, api: dict[str, Api]
) -> None:
    assert (await api["admin"].patch("/users/3", json={"is_active": False})).status_code == 200
    known = await client.post(RESET, json={"email": "user@example.com"})
    unknown = await client.post(RESET, json={"email": "nobody@example.com"})
    disabled = await client.post(RESET, json={"email": "other@example.com"})
    malformed = await client.post(RESET, json={"email": "not an address"})
    for resp in (known, unknown, disabled, malformed):
        assert resp.status_code == 202, resp.text
        assert resp.json() == known.json()
    assert "If an account with this address exists" in known.json()["message"]
    await wait_for_mail(mail.mailbox, 1)
    await asyncio.sleep(0.3)
    assert [m["to"] for m in mail.mailbox.messages] == [["user@example.com"]]


async def test_an_expired_link_is_refused(
    client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    url = await reset_link(client, mail, "user@example.com")
    await sql(core, "UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    resp = await client.post(CONFIRM, json={"token": token_of(url), "password": NEW_PASSWORD})
    error = assert_error(resp, 410, "link_gone")
    assert error["details"] == {"reason": "expired"} and "expired" in error["message"]
    await cookie_login(client, "user@example.com", PASSWORD)


async def test_the_link_lifetime_comes_from_the_settings(
    client: httpx.AsyncClient, smtp: SmtpServer, api: dict[str, Api], core: Core
) -> None:
    await configure_mail(api["admin"], smtp, reset_ttl_minutes=15)
    await reset_link(client, smtp, "user@example.com")
    (row,) = await sql(core, "SELECT expires_at - created_at AS ttl FROM account_tokens")
    assert 14 * 60 < row["ttl"].total_seconds() <= 15 * 60 + 1
    assert "15 minutes" in smtp.mailbox.messages[-1]["text"]


async def test_a_new_request_withdraws_the_older_link(
    client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    first = await reset_link(client, mail, "user@example.com")
    second = await reset_link(client, mail, "user@example.com")
    resp = await client.post(CONFIRM, json={"token": token_of(first), "password": NEW_PASSWORD})
    assert assert_error(resp, 410, "link_gone")["details"] == {"reason": "revoked"}
    resp = await client.post(CONFIRM, json={"token": token_of(second), "password": NEW_PASSWORD})
    assert resp.status_code == 204, resp.text


async def test_bad_tokens_and_passwords_answer_4xx(
    client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    for token in ("nonsense", "x" * 200):
        resp = await client.post(CONFIRM, json={"token": token, "password": NEW_PASSWORD})
        assert "not valid" in assert_error(resp, 400, "invalid_link")["message"]
    resp = await client.post(CONFIRM, json={"token": "x" * 201, "password": NEW_PASSWORD})
    assert_error(resp, 422, "validation_error")
    url = await reset_link(client, mail, "user@example.com")
    short = await client.post(CONFIRM, json={"token": token_of(url), "password": "short"})
    assert assert_error(short, 422, "validation_error")["details"][0]["field"] == "password"
    # A refused password does not use the link up.
    resp = await client.post(CONFIRM, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert resp.status_code == 204, resp.text


async def test_racing_clicks_use_the_link_exactly_once(
    client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    token = token_of(await reset_link(client, mail, "user@example.com"))
    results = await asyncio.gather(
        *(
            client.post(CONFIRM, json={"token": token, "password": f"{NEW_PASSWORD}-{n}"})
            for n in range(4)
        )
    )
    assert sorted(r.status_code for r in results) == [204, 410, 410, 410]


async def test_requests_are_rate_limited_per_address_and_per_client(
    client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    for _ in range(5):
        assert (await client.post(RESET, json={"email": "user@example.com"})).status_code == 202
    limited = await client.post(RESET, json={"email": "USER@example.com"})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    for n in range(15):  # a refused request does not count: 20 per client in all
        resp = await client.post(RESET, json={"email": f"n{n}@example.com"})
        assert resp.status_code == 202, resp.text
    assert_error(await client.post(RESET, json={"email": "fresh@example.com"}), 429, "rate_limited")
    await wait_for_mail(mail.mailbox, 5)


async def test_without_email_settings_the_request_says_so(client: httpx.AsyncClient) -> None:
    resp = await client.post(RESET, json={"email": "nobody@example.com"})
    assert "ask an admin" in assert_error(resp, 409, "email_not_configured")["message"]


async def test_links_use_the_configured_public_address(
    client: httpx.AsyncClient, smtp: SmtpServer, api: dict[str, Api]
) -> None:
    await configure_mail(api["admin"], smtp, base_url="https://cron.example.com/")
    url = await reset_link(client, smtp, "user@example.com")
    assert url.startswith("https://cron.example.com/reset-password?token=")
