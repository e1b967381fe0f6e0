"""Email over SMTP (STARTTLS or implicit TLS, optional auth), text and HTML."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import aiosmtplib

from cronium.tools.base import ActionCall, ActionResult, ToolError

kind = "email"
actions: dict[str, dict[str, Any]] = {
    "send": {
        "type": "object",
        "properties": {
            "to": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "subject": {"type": "string"},
            "text": {"type": "string"},
            "body": {"type": "string", "description": "Same as text."},
            "bcc": {"type": "array", "items": {"type": "string"}},
            "reply_to": {"type": "string"},
            "html": {"type": "string"},
            "cc": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["to", "subject"],
        "additionalProperties": False,
    }
}


def build_message(config: dict[str, Any], params: dict[str, Any]) -> EmailMessage:
    to = params.get("to")
    recipients = [to] if isinstance(to, str) else list(to or [])
    if not recipients:
        raise ToolError("email needs at least one recipient in 'to'", permanent=True)
    message = EmailMessage()
    message["From"] = str(config.get("from") or config.get("username") or "cronium@localhost")
    message["To"] = ", ".join(recipients)
    for header, key in (("Cc", "cc"), ("Bcc", "bcc")):
        if params.get(key):
            value = params[key]
            message[header] = value if isinstance(value, str) else ", ".join(value)
    if params.get("reply_to"):
        message["Reply-To"] = str(params["reply_to"])
    message["Subject"] = str(params.get("subject", ""))
    message.set_content(str(params.get("text") or params.get("body") or ""))
    if params.get("html"):
        message.add_alternative(str(params["html"]), subtype="html")
    return message


async def run(call: ActionCall) -> ActionResult:
    if call.action != "send":
        raise ToolError(f"email has no action {call.action!r}", permanent=True)
    config = call.config
    host = config.get("host")
    if not host:
        raise ToolError("email credential needs an SMTP 'host'", permanent=True)
    security = str(config.get("security", "starttls"))  # starttls | tls | none
    message = build_message(config, call.params)
    try:
        await aiosmtplib.send(
            message,
            hostname=str(host),
            port=int(config.get("port") or (465 if security == "tls" else 587)),
            username=config.get("username") or None,
            password=config.get("password") or None,
            use_tls=security == "tls",
            start_tls=security == "starttls",
            validate_certs=bool(config.get("verify_tls", True)),
            timeout=call.timeout_s,
        )
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ToolError(f"SMTP authentication failed: {exc.message}", permanent=True) from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise ToolError(f"SMTP server refused the recipients: {exc}", permanent=True) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ToolError(f"SMTP delivery failed: {exc}") from exc
    return ActionResult(True, {"recipients": message["To"]})
