"""Invitations by email, against a real SMTP server: an admin invites an address with a
role; the link creates the account once and signs it in; admins list and revoke them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cronium.core import Core
from cronium.engine.node import Node
from cronium.security.tokens import hash_token
from tests.acceptance.test_users_tokens import assert_error, audit_rows, cookie_login, sql
from tests.conftest import Api
from tests.support.mail import configure_mail, link_in, smtp_settings, token_of, wait_for_mail
from tests.support.tool_receivers import SmtpServer, smtp_server

NEW_PASSWORD = "invited-persons-password"
ACCEPT = "/api/v1/auth/invitations/accept"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
async def mail(api: dict[str, Api], smtp: SmtpServer) -> SmtpServer:
    await configure_mail(api["admin"], smtp)
    return smtp


async def invite(admin: Api, email: str, role: str = "user") -> dict[str, object]:
    resp = await admin.post("/users/invitations", json={"email": email, "role": role})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_an_invitation_creates_the_account_once_and_signs_it_in(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    created = await invite(api["admin"], "New.Person@Example.com", "viewer")
    assert created["email"] == "new.person@example.com" and created["role"] == "viewer"
    assert created["email_sent"] is True and created["url"] is None
    (message,) = await wait_for_mail(mail.mailbox, 1)
    assert message["to"] == ["new.person@example.com"]
    assert message["subject"] == "You are invited to Cronium"
    assert "admin@example.com invited you to Cronium as viewer" in message["text"]
    assert "7 day(s)" in message["text"]
    url = link_in(message)
    assert url.startswith("http://testserver/accept-invite?token=")

    listed = (await api["admin"].get("/users/invitations")).json()
    assert [i["email"] for i in listed["items"]] == ["new.person@example.com"]
    assert listed["items"][0]["expired"] is False and "token" not in str(listed)

    resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert resp.status_code == 201, resp.text
    assert resp.json()["user"]["role"] == "viewer"
    me = await client.get("/api/v1/auth/me")
    assert me.json()["email"] == "new.person@example.com"
    client.cookies.clear()
    await cookie_login(client, "new.person@example.com", NEW_PASSWORD)

    again = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert assert_error(again, 410, "link_gone")["details"] == {"reason": "used"}
    assert (await api["admin"].get("/users/invitations")).json()["total"] == 0
    (row,) = await sql(core, "SELECT * FROM account_tokens")
    assert row["token_hash"] == hash_token(token_of(url)) and row["used_at"] is not None
    assert row["user_id"] == me.json()["id"]
    assert len(await audit_rows(core, "invitation.create")) == 1
    (accepted,) = await audit_rows(core, "invitation.accept")
    assert accepted["actor"] == "new.person@example.com"


async def test_a_revoked_invitation_link_stops_working(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    created = await invite(api["admin"], "gone@example.com")
    url = link_in((await wait_for_mail(mail.mailbox, 1))[0])
    assert (await api["admin"].delete(f"/users/invitations/{created['id']}")).status_code == 204
    resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert assert_error(resp, 410, "link_gone")["details"] == {"reason": "revoked"}
    assert_error(await api["admin"].delete(f"/users/invitations/{created['id']}"), 404, "not_found")
    assert (await api["admin"].get("/users/invitations")).json()["items"] == []
    assert len(await audit_rows(core, "invitation.revoke")) == 1


async def test_an_expired_invitation_is_refused_and_listed_as_expired(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    await invite(api["admin"], "late@example.com")
    url = link_in((await wait_for_mail(mail.mailbox, 1))[0])
    await sql(core, "UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert assert_error(resp, 410, "link_gone")["details"] == {"reason": "expired"}
    (item,) = (await api["admin"].get("/users/invitations")).json()["items"]
    assert item["expired"] is True


async def test_inviting_again_replaces_the_pending_link(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    await invite(api["admin"], "twice@example.com")
    await invite(api["admin"], "twice@example.com", "admin")
    first, second = (link_in(m) for m in await wait_for_mail(mail.mailbox, 2))
    resp = await client.post(ACCEPT, json={"token": token_of(first), "password": NEW_PASSWORD})
    assert_error(resp, 410, "link_gone")
    resp = await client.post(ACCEPT, json={"token": token_of(second), "password": NEW_PASSWORD})
    assert resp.json()["user"]["role"] == "admin"


async def test_an_existing_users_address_cannot_be_invited(api: dict[str, Api]) -> None:
    resp = await api["admin"].post("/users/invitations", json={"email": "USER@example.com"})
    assert assert_error(resp, 409, "conflict")["details"] == {"field": "email"}
    resp = await api["admin"].post("/users/invitations", json={"email": "nope", "role": "boss"})
    fields = {d["field"] for d in assert_error(resp, 422, "validation_error")["details"]}
    assert fields == {"email", "role"}


async def test_an_account_made_meanwhile_makes_the_link_refuse_without_using_it(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer
) -> None:
    await invite(api["admin"], "clash@example.com")
    url = link_in((await wait_for_mail(mail.mailbox, 1))[0])
    body = {"email": "clash@example.com", "password": NEW_PASSWORD}
    assert (await api["admin"].post("/users", json=body)).status_code == 201
    resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert_error(resp, 409, "conflict")
    short = await client.post(ACCEPT, json={"token": token_of(url), "password": "short"})
    assert assert_error(short, 422, "validation_error")["details"][0]["field"] == "password"


async def test_racing_accepts_create_one_account(
    api: dict[str, Api], client: httpx.AsyncClient, mail: SmtpServer, core: Core
) -> None:
    await invite(api["admin"], "race@example.com")
    token = token_of(link_in((await wait_for_mail(mail.mailbox, 1))[0]))
    results = await asyncio.gather(
        *(client.post(ACCEPT, json={"token": token, "password": NEW_PASSWORD}) for _ in range(4))
    )
    assert sorted(r.status_code for r in results) == [201, 410, 410, 410]
    assert len(await sql(core, "SELECT id FROM users WHERE email = 'race@example.com'")) == 1


async def test_without_email_the_admin_gets_the_link_to_pass_on(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    created = await invite(api["admin"], "offline@example.com")
    assert created["email_sent"] is False
    assert "not set up" in str(created["email_error"])
    url = str(created["url"])
    resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
    assert resp.status_code == 201, resp.text


async def test_an_smtp_failure_is_reported_with_the_link(
    api: dict[str, Api], smtp: SmtpServer
) -> None:
    body = {"smtp": smtp_settings(smtp, password="wrong")}
    assert (await api["admin"].request("PUT", "/settings", json=body)).status_code == 200
    created = await invite(api["admin"], "unlucky@example.com")
    assert created["email_sent"] is False and created["url"]
    assert "authentication failed" in str(created["email_error"])


async def test_only_admins_manage_invitations(api: dict[str, Api]) -> None:
    for persona in ("user", "viewer"):
        assert_error(await api[persona].get("/users/invitations"), 403, "forbidden")
        resp = await api[persona].post("/users/invitations", json={"email": "x@example.com"})
        assert_error(resp, 403, "forbidden")


async def test_user_changes_do_not_wait_for_the_scheduler_leader(
    api: dict[str, Api], client: httpx.AsyncClient, node: Node
) -> None:
    """The scheduler leader holds a session advisory lock for its whole life: user changes
    take another key, or every one of them would wait for the leader to die."""
    created = await invite(api["admin"], "leader@example.com")
    async with asyncio.timeout(10):
        url = str(created["url"])
        resp = await client.post(ACCEPT, json={"token": token_of(url), "password": NEW_PASSWORD})
        assert resp.status_code == 201, resp.text
        changed = await api["admin"].patch(
            f"/users/{resp.json()['user']['id']}", json={"role": "admin"}
        )
        assert changed.status_code == 200, changed.text
