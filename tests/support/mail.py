"""Email set-up for the account tests: point Cronium's settings at a real loopback SMTP
server (STARTTLS with its self-signed certificate, AUTH) and read the links it sends."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import Api
from tests.support.tool_receivers import Mailbox, SmtpServer

SENDER = "cronium@example.com"
_LINK = re.compile(r"https?://\S+?\?token=[\w\-]+")


def smtp_settings(server: SmtpServer, **changes: Any) -> dict[str, Any]:
    smtp = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "starttls",
        "username": "robot",
        "password": "s3cret-pw",
        "from_address": SENDER,
        "verify_tls": False,
    }
    return {**smtp, **changes}


async def configure_mail(admin: Api, server: SmtpServer, **settings: Any) -> dict[str, Any]:
    body = {"smtp": smtp_settings(server), **settings}
    resp = await admin.request("PUT", "/settings", json=body)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def wait_for_mail(
    mailbox: Mailbox, count: int, timeout_s: float = 10
) -> list[dict[str, Any]]:
    """The first `count` messages, once they arrived (reset mail goes out after the answer)."""
    async with asyncio.timeout(timeout_s):
        while len(mailbox.messages) < count:
            await asyncio.sleep(0.02)
    return mailbox.messages[:count]


def link_in(message: dict[str, Any]) -> str:
    found = _LINK.search(message["text"] or "")
    assert found, f"no link in the message: {message['text']!r}"
    return found.group(0)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]
