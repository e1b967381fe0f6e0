"""Cronium's own log (stderr of `cronium serve`) never shows a credential.

Two libraries would print one at the default level (info): the HTTP client names every
request's full URL, and a Slack, Discord or Teams webhook URL is the credential itself;
the access log names every request's path, and a webhook trigger's path holds the
webhook's key. The first is kept to warnings unless debugging, the second is masked.
"""

from __future__ import annotations

import logging
import re

from cronium.logs.capture import MASK

# The loggers that name full request URLs at info level.
URL_LOGGERS = ("httpx", "httpcore")
ACCESS_LOGGER = "uvicorn.access"
_WEBHOOK_PATH = re.compile(r"(/api/v1/webhooks/)[^/?#\s]+")


def hide_webhook_keys(text: str) -> str:
    return _WEBHOOK_PATH.sub(lambda m: m.group(1) + MASK, text)


class HideWebhookKeys(logging.Filter):
    """Mask the key in webhook paths of access-log records (their path is an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                hide_webhook_keys(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = hide_webhook_keys(record.msg)
        return True


def protect_server_log(level: str) -> None:
    """Apply both rules; `level` is CRONIUM_LOG_LEVEL (debug keeps the URL lines)."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, HideWebhookKeys) for f in access.filters):
        access.addFilter(HideWebhookKeys())
    if level != "debug":
        for name in URL_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
