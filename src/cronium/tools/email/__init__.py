"""Email over SMTP (STARTTLS or implicit TLS, optional auth), text and HTML."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Literal

import aiosmtplib
from pydantic import Field, field_validator, model_validator

from cronium.tools.base import ActionCall, ActionResult, Config, Params, Tool, ToolError, secret

Addresses = str | list[str]


class EmailConfig(Config):
    host: str = Field(min_length=1, max_length=255, description="SMTP server.")
    port: int | None = Field(
        None, ge=1, le=65535, description="Default 587 (starttls), 465 (tls) or 25 (none)."
    )
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="STARTTLS upgrade, implicit TLS, or plain (loopback relays)."
    )
    username: str | None = Field(None, max_length=320, description="Login (AUTH), if needed.")
    password: str | None = Field(None, max_length=1000, json_schema_extra=secret("Password."))
    sender: str | None = Field(
        None, alias="from", max_length=320, description="From address (default: username)."
    )
    verify_tls: bool = Field(True, description="Check the server's certificate.")
    ca_cert: str | None = Field(
        None, max_length=65_536, description="PEM certificate(s) to trust (private CAs)."
    )

    @model_validator(mode="after")
    def _auth_pair(self) -> EmailConfig:
        if self.password and not self.username:
            raise ValueError("a 'password' needs a 'username'")
        return self

    @field_validator("ca_cert")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ssl.create_default_context(cadata=value)
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"not a PEM certificate: {exc}") from None
        return value


class SendParams(Params):
    to: Addresses = Field(description="Recipient(s).")
    subject: str = Field(max_length=998)
    text: str | None = Field(None, description="Plain-text body.")
    body: str | None = Field(None, description="Same as text.")
    html: str | None = Field(None, description="HTML body (sent as an alternative part).")
    cc: Addresses | None = None
    bcc: Addresses | None = None
    reply_to: str | None = None


def _list(value: Addresses | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def build_message(config: EmailConfig, params: SendParams) -> EmailMessage:
    recipients = _list(params.to)
    if not recipients:
        raise ToolError("email needs at least one recipient in 'to'", permanent=True)
    sender = config.sender or config.username or "cronium@localhost"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    for header, value in (("Cc", params.cc), ("Bcc", params.bcc)):
        if value:
            message[header] = ", ".join(_list(value))
    if params.reply_to:
        message["Reply-To"] = params.reply_to
    message["Subject"] = params.subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(params.text or params.body or "")
    if params.html:
        message.add_alternative(params.html, subtype="html")
    return message


def tls_context(config: EmailConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=config.ca_cert)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send":
        raise ToolError(f"email has no action {call.action!r}", permanent=True)
    config = EmailConfig.model_validate(call.config)
    params = SendParams.model_validate(call.params)
    message = build_message(config, params)
    default_port = {"tls": 465, "starttls": 587, "none": 25}[config.security]
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port or default_port,
            username=config.username or None,
            password=config.password or None,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            tls_context=None if config.security == "none" else tls_context(config),
            timeout=call.timeout_s,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ToolError(
            f"SMTP authentication failed: {exc.code} {exc.message}",
            permanent=True,
            reason="auth_failed",
        ) from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(r.recipient for r in exc.recipients)
        raise ToolError(
            f"SMTP server refused the recipients: {refused}",
            permanent=True,
            reason="recipients_refused",
        ) from exc
    except aiosmtplib.SMTPResponseException as exc:
        # 5xx replies are final (bad sender, too big); 4xx ones ask to try again later.
        raise ToolError(
            f"SMTP server answered {exc.code} {exc.message}",
            permanent=exc.code >= 500,
            reason="smtp_error",
        ) from exc
    except aiosmtplib.SMTPTimeoutError as exc:
        raise ToolError(f"SMTP server timed out: {exc}", reason="timeout") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ToolError(f"SMTP delivery failed: {detail}", reason="connection_failed") from exc
    return ActionResult(True, {"recipients": message["To"], "message_id": message["Message-ID"]})


def _test_params(config: dict[str, Any]) -> dict[str, Any]:
    to = config.get("from") or config.get("username") or ""
    return {
        "to": to,
        "subject": "Cronium test message",
        "text": "This credential works.",
        "html": "<p>This credential works.</p>",
    }


TOOL = Tool(
    kind="email",
    title="Email (SMTP)",
    description="Text and HTML e-mail through an SMTP server (STARTTLS or TLS, with AUTH).",
    config=EmailConfig,
    actions={"send": SendParams},
    run=run,
    test_action="send",
    test_params=_test_params,
)
