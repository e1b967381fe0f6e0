"""Mail that Cronium itself sends (reset links, invitations, the settings test) through the
SMTP server of the instance settings, with the email tool's sending code."""

from __future__ import annotations

from cronium.domain.app_settings import SmtpSettings
from cronium.errors import Conflict
from cronium.tools.base import ActionCall
from cronium.tools.email import run as send_with_email_tool

SEND_TIMEOUT_S = 20.0


class MailNotConfigured(Conflict):
    code = "email_not_configured"


async def send_mail(smtp: SmtpSettings, to: str, subject: str, text: str, html: str) -> None:
    """Send one message; raises ToolError (with the SMTP server's answer) when it fails."""
    if not smtp.configured:
        raise MailNotConfigured(
            "email is not set up: an admin must enter the SMTP server and sender in Settings"
        )
    config = {
        "host": smtp.host,
        "port": smtp.port,
        "security": smtp.security,
        "username": smtp.username or None,
        "password": (smtp.password or None) if smtp.username else None,
        "from": smtp.from_address,
        "verify_tls": smtp.verify_tls,
    }
    params = {"to": to, "subject": subject, "text": text, "html": html}
    await send_with_email_tool(ActionCall("send", params, config, SEND_TIMEOUT_S))
