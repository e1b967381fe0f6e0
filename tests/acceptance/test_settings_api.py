"""Instance settings (admins only): SMTP with its password encrypted at rest and never
returned, the public address of emailed links, link lifetimes, and the test email."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cronium.core import Core
from tests.acceptance.test_users_tokens import assert_error, audit_rows, sql
from tests.conftest import Api
from tests.support.mail import configure_mail, smtp_settings, wait_for_mail
from tests.support.tool_receivers import SmtpServer, smtp_server

PASSWORD_TEXT = "s3cret-pw"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


async def put(admin: Api, body: dict[str, Any]) -> Any:
    return await admin.request("PUT", "/settings", json=body)


async def test_defaults_before_anything_is_saved(api: dict[str, Api]) -> None:
    body = (await api["admin"].get("/settings")).json()
    assert body["smtp"] == {
        "host": None,
        "port": None,
        "security": "starttls",
        "username": None,
        "password_set": False,
        "from_address": None,
        "verify_tls": True,
    }
    assert body["base_url"] is None and body["base_url_default"] == "http://testserver"
    assert (body["invitation_ttl_hours"], body["reset_ttl_minutes"]) == (168, 60)
    assert body["email_configured"] is False


async def test_the_password_is_stored_encrypted_and_never_returned(
    api: dict[str, Api], smtp: SmtpServer, core: Core
) -> None:
    saved = await configure_mail(
        api["admin"], smtp, base_url="https://cron.example.com", invitation_ttl_hours=48
    )
    assert saved["smtp"]["password_set"] is True and saved["email_configured"] is True
    assert saved["base_url"] == "https://cron.example.com"
    assert saved["invitation_ttl_hours"] == 48
    read = await api["admin"].get("/settings")
    assert read.json()["smtp"]["password_set"] is True
    for text in (str(saved), read.text):
        assert PASSWORD_TEXT not in text and 'password":' not in text

    rows = await sql(core, "SELECT key, value, secret_encrypted FROM settings ORDER BY key")
    assert PASSWORD_TEXT not in str([r["value"] for r in rows])
    (blob,) = [bytes(r["secret_encrypted"]) for r in rows if r["key"] == "smtp"]
    assert PASSWORD_TEXT.encode() not in blob
    assert core.cipher.decrypt(blob, context=b"setting:smtp") == PASSWORD_TEXT.encode()
    (audit,) = await audit_rows(core, "settings.change")
    assert audit["details"]["password"] == "set" and PASSWORD_TEXT not in str(audit)

    # Saving without a password keeps it; clear_password removes it.
    kept = await put(api["admin"], {"smtp": smtp_settings(smtp, password=None)})
    assert kept.json()["smtp"]["password_set"] is True
    assert kept.json()["base_url"] is None  # PUT replaces: unset fields go back to defaults
    body = {"smtp": smtp_settings(smtp, password=None, username=None, clear_password=True)}
    cleared = await put(api["admin"], body)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["smtp"]["password_set"] is False
    (row,) = await sql(core, "SELECT secret_encrypted FROM settings WHERE key = 'smtp'")
    assert row["secret_encrypted"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"smtp": {"host": "mail", "port": 70000, "from_address": "a@b.example"}}, "smtp.port"),
        ({"smtp": {"port": 0}}, "smtp.port"),
        ({"smtp": {"security": "ssl"}}, "smtp.security"),
        ({"smtp": {"from_address": "not-an-address"}}, "smtp.from_address"),
        ({"smtp": {"host": "mail.example.com"}}, "smtp.from_address"),
        ({"smtp": {"password": "pw"}}, "smtp.username"),
        ({"smtp": {"colour": "red"}}, "smtp.colour"),
        ({"base_url": "ftp://cron.example.com"}, "base_url"),
        ({"base_url": "https://cron.example.com/?x=1"}, "base_url"),
        ({"invitation_ttl_hours": 0}, "invitation_ttl_hours"),
        ({"reset_ttl_minutes": 100000}, "reset_ttl_minutes"),
    ],
)
async def test_bad_settings_answer_422_naming_the_field(
    api: dict[str, Api], body: dict[str, Any], field: str
) -> None:
    error = assert_error(await put(api["admin"], body), 422, "validation_error")
    details = error["details"] if isinstance(error["details"], list) else [error["details"]]
    assert field in [d["field"] for d in details], error


async def test_only_admins_read_or_change_settings(api: dict[str, Api]) -> None:
    for persona in ("user", "viewer"):
        assert_error(await api[persona].get("/settings"), 403, "forbidden")
        assert_error(await put(api[persona], {}), 403, "forbidden")
        assert_error(await api[persona].post("/settings/test-email"), 403, "forbidden")


async def test_the_test_email_goes_to_the_admin_or_says_why_not(
    api: dict[str, Api], smtp: SmtpServer
) -> None:
    admin = api["admin"]
    unset = (await admin.post("/settings/test-email")).json()
    assert unset["ok"] is False and "not set up" in unset["error"]

    await configure_mail(admin, smtp)
    sent = (await admin.post("/settings/test-email")).json()
    assert sent == {"ok": True, "to": "admin@example.com", "error": None}
    (message,) = await wait_for_mail(smtp.mailbox, 1)
    assert message["to"] == ["admin@example.com"] and message["tls"]

    await put(admin, {"smtp": smtp_settings(smtp, password="wrong")})
    failed = (await admin.post("/settings/test-email")).json()
    assert failed["ok"] is False and "authentication failed" in failed["error"]

    await put(admin, {"smtp": smtp_settings(smtp, port=1)})
    refused = (await admin.post("/settings/test-email")).json()
    assert refused["ok"] is False and "SMTP" in refused["error"]


async def test_nulls_blanks_and_overlong_values(api: dict[str, Api]) -> None:
    body = {"smtp": {"host": " ", "username": None, "password": None}, "base_url": None}
    resp = await put(api["admin"], body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["smtp"]["host"] is None and resp.json()["base_url"] is None
    for smtp in ({"host": "h" * 256}, {"username": "u" * 321}, {"password": "p" * 1001}):
        error = assert_error(await put(api["admin"], {"smtp": smtp}), 422, "validation_error")
        assert error["details"][0]["field"] == "smtp." + next(iter(smtp))
