"""HTTP for the tools that post to a URL: one request, answers mapped to results or errors."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from cronium.tools.base import ActionResult, ToolError

MAX_ERROR_TEXT = 300


async def send(
    method: str,
    url: str,
    *,
    timeout_s: float,
    headers: dict[str, str] | None = None,
    json: Any = None,
    content: str | bytes | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One request (no redirects: a credential's URL is where the message goes)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            return await client.request(
                method, url, headers=headers, json=json, content=content, params=params
            )
    except httpx.TimeoutException as exc:
        raise ToolError(
            f"no answer from {_host(url)} within {timeout_s:g} s", reason="timeout"
        ) from exc
    except httpx.HTTPError as exc:
        raise ToolError(
            f"cannot reach {_host(url)}: {exc or type(exc).__name__}", reason="connection_failed"
        ) from exc


def _host(url: str) -> str:
    # Error messages name the host only: the path of a webhook URL is its secret.
    try:
        return httpx.URL(url).host or "the receiver"
    except httpx.InvalidURL:
        return "the receiver"


def retry_after_s(resp: httpx.Response) -> float | None:
    """Seconds the receiver asks us to wait: Retry-After (seconds or a date) or a JSON hint."""
    value = resp.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - datetime.now(UTC)).total_seconds())
    try:
        body = resp.json()
    except ValueError:
        return None
    hint = body.get("retry_after") if isinstance(body, dict) else None  # Discord's body
    return float(hint) if isinstance(hint, int | float) and not isinstance(hint, bool) else None


def check(resp: httpx.Response, what: str) -> None:
    """Raise for anything but 2xx: 429/5xx retryable (Retry-After kept), other 4xx permanent."""
    code = resp.status_code
    if 200 <= code < 300:
        return
    text = " ".join(resp.text.split())[:MAX_ERROR_TEXT]
    message = f"{what} answered HTTP {code}" + (f": {text}" if text else "")
    if code == 429:
        raise ToolError(
            message, retry_after_s=retry_after_s(resp), reason="rate_limited", status=code
        )
    if code >= 500:
        raise ToolError(
            message, retry_after_s=retry_after_s(resp), reason="server_error", status=code
        )
    reason = "auth_failed" if code in (401, 403) else "rejected"
    raise ToolError(message, permanent=True, reason=reason, status=code)


def result(resp: httpx.Response, what: str, **extra: Any) -> ActionResult:
    check(resp, what)
    return ActionResult(True, {"status": resp.status_code, **extra})


def parsed(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
