"""Real receivers on loopback for the tool tests: an HTTP endpoint that records requests
and can be told to answer with errors first, and an SMTP server with STARTTLS or implicit
TLS (a self-signed certificate made here) and AUTH."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cronium.core import Core
from cronium.db.models import ToolCredential


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpReceiver:
    """Records every request; answers queued `Answer`s first, then `default` (per path)."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    queued: list[Answer] = field(default_factory=list)
    defaults: dict[str, Answer] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [c["path"] for c in self.calls]

    async def record(self, request: Request) -> Response:
        raw = await request.body()
        try:
            parsed: Any = await request.json() if raw else None
        except ValueError:
            parsed = None
        self.calls.append(
            {
                "at": time.monotonic(),
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "json": parsed,
                "body": raw.decode(errors="replace"),
            }
        )
        answer = (
            self.queued.pop(0)
            if self.queued
            else self.defaults.get(request.url.path, Answer(200, {"ok": True}))
        )
        if answer.body is None:
            return Response(status_code=answer.status, headers=answer.headers)
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)


@contextlib.asynccontextmanager
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    state = HttpReceiver()
    port = free_port()
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", state.record, methods=methods)])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.should_exit = True
        await task


# -- SMTP ------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path, str]:
    """A certificate for 127.0.0.1 (IP SAN) and its key; returns (cert, key, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cronium test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_text(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem


@dataclass
class Mailbox:
    """What the SMTP server received, parsed; and who logged in."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd API
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {
            part.get_content_type(): str(part.get_content())
            for part in message.walk()
            if part.get_content_maintype() == "text"
        }
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("subject", "")),
                "text": parts.get("text/plain"),
                "html": parts.get("text/html"),
                "tls": session.ssl is not None,
                "user": session.auth_data,
            }
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                self.logins.append(user)
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    cert_pem: str


@contextlib.contextmanager
def smtp_server(folder: Path, *, implicit_tls: bool = False) -> Iterator[SmtpServer]:
    """STARTTLS and AUTH required (or implicit TLS, AUTH offered); `robot` / `s3cret-pw`."""
    cert, key, pem = self_signed(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox(users={"robot": "s3cret-pw"})
    port = free_port()
    options: dict[str, Any] = {
        "authenticator": mailbox.authenticate,
        "auth_required": True,
        "auth_require_tls": True,
    }
    if implicit_tls:
        # aiosmtpd offers AUTH under TLS only after STARTTLS; on an implicitly encrypted
        # connection it must be told TLS is not needed for it (it is there from the start).
        options.update(ssl_context=context, auth_required=False, auth_require_tls=False)
    else:
        options.update(tls_context=context, require_starttls=True)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield SmtpServer(port, mailbox, pem)
    finally:
        controller.stop()


async def insert_credential(
    core: Core, owner_id: int, name: str, tool: str, config: dict[str, Any]
) -> int:
    """A credential written as the API writes it (config encrypted)."""
    async with core.sessions() as db, db.begin():
        row = ToolCredential(
            owner_id=owner_id,
            name=name,
            tool=tool,
            config_encrypted=core.cipher.encrypt_json(config),
        )
        db.add(row)
        await db.flush()
        return int(row.id)
