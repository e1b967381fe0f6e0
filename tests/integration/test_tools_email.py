"""Email over a real SMTP server on loopback: STARTTLS or implicit TLS with a self-signed
certificate, AUTH, and the message as it arrives (subject, text and HTML parts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronium.core import Core
from cronium.tools.execute import ActionRequest, RetryPolicy, execute
from tests.conftest import Api
from tests.support.tool_receivers import SmtpServer, smtp_server


@pytest.fixture
def starttls(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
def implicit_tls(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path, implicit_tls=True) as server:
        yield server


def mail_config(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "username": "robot",
        "password": "s3cret-pw",
        "from": "cronium@example.com",
        "ca_cert": server.cert_pem,
        **overrides,
    }


async def create(api: Api, config: dict[str, Any], name: str = "mail") -> int:
    resp = await api.post("/credentials", json={"name": name, "tool": "email", "config": config})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def test_a_templated_email_arrives_over_starttls_with_auth(
    api: dict[str, Api], core: Core, starttls: SmtpServer
) -> None:
    cred = await create(api["user"], mail_config(starttls))
    await api["user"].post("/variables", json={"key": "team", "value": "ops"})
    request = ActionRequest(
        owner_id=2,
        action="email.send",
        credential_id=cred,
        params={
            "to": ["a@example.com", "b@example.com"],
            "subject": "Report for {{ variables.team }}",
            "text": "plain {{ variables.team | upper }}",
            "html": "<h1>{{ variables.team }}</h1>",
        },
    )
    outcome = await execute(core.db, core.cipher, request, RetryPolicy(max_attempts=1))
    assert outcome.ok, outcome.as_dict()
    assert starttls.mailbox.logins == ["robot"]
    [message] = starttls.mailbox.messages
    assert message["tls"] is True
    assert message["user"] == "robot"
    assert message["from"] == "cronium@example.com"
    assert message["to"] == ["a@example.com", "b@example.com"]
    assert message["subject"] == "Report for ops"
    assert message["text"].strip() == "plain OPS"
    assert message["html"].strip() == "<h1>ops</h1>"


async def test_implicit_tls_delivers_too(
    api: dict[str, Api], core: Core, implicit_tls: SmtpServer
) -> None:
    cred = await create(api["user"], mail_config(implicit_tls, security="tls"))
    resp = await api["user"].post(
        f"/credentials/{cred}/test", json={"params": {"to": "me@example.com"}}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True, resp.text
    assert implicit_tls.mailbox.logins == ["robot"]
    [message] = implicit_tls.mailbox.messages  # the server speaks nothing but TLS
    assert message["user"] == "robot"
    assert message["to"] == ["me@example.com"]
    assert message["subject"] == "Cronium test message"
    assert "This credential works." in message["text"]
    assert "<p>This credential works.</p>" in message["html"]


async def test_a_wrong_password_is_a_permanent_auth_failure(
    api: dict[str, Api], starttls: SmtpServer
) -> None:
    cred = await create(api["user"], mail_config(starttls, password="wrong"))
    resp = await api["user"].post(f"/credentials/{cred}/test", json={})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is False
    assert body["attempts"] == 1
    assert body["error"]["code"] == "auth_failed"
    assert "SMTP authentication failed: 535" in body["error"]["message"]
    assert starttls.mailbox.messages == []


async def test_an_untrusted_certificate_is_refused(
    api: dict[str, Api], starttls: SmtpServer
) -> None:
    config = mail_config(starttls)
    del config["ca_cert"]  # the system's CAs do not know our self-signed certificate
    cred = await create(api["user"], config)
    body = (await api["user"].post(f"/credentials/{cred}/test", json={})).json()
    assert body["ok"] is False
    assert body["error"]["code"] == "connection_failed"
    assert "CERTIFICATE_VERIFY_FAILED" in body["error"]["message"]
    assert starttls.mailbox.messages == []


async def test_a_plain_connection_to_a_starttls_only_server_is_refused(
    api: dict[str, Api], starttls: SmtpServer
) -> None:
    config = mail_config(starttls, security="none")
    del config["password"], config["username"]
    cred = await create(api["user"], config)
    body = (await api["user"].post(f"/credentials/{cred}/test", json={})).json()
    assert body["ok"] is False
    assert body["error"]["code"] == "smtp_error"
    assert "530" in body["error"]["message"]


async def test_a_bad_email_config_is_a_422_naming_the_field(api: dict[str, Api]) -> None:
    resp = await api["user"].post(
        "/credentials",
        json={"name": "m", "tool": "email", "config": {"host": "x", "port": 70000}},
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["message"].startswith("config.port:")
    resp = await api["user"].post(
        "/credentials",
        json={"name": "m", "tool": "email", "config": {"host": "x", "ca_cert": "nope"}},
    )
    assert resp.status_code == 422
    assert "not a PEM certificate" in resp.json()["error"]["message"]
