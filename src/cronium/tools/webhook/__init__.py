"""Generic HTTP webhook: method, headers, JSON or raw body."""

from __future__ import annotations

from typing import Any

import httpx

from cronium.tools.base import ActionCall, ActionResult, ToolError

kind = "webhook"
actions: dict[str, dict[str, Any]] = {
    "send": {
        "type": "object",
        "properties": {
            "method": {
                "type": "string",
                "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                "default": "POST",
            },
            "path": {"type": "string", "description": "Appended to the credential's URL."},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "json": {"description": "JSON body."},
            "body": {"type": "string", "description": "Raw body (instead of json)."},
        },
        "additionalProperties": False,
    }
}


async def run(call: ActionCall, transport: httpx.AsyncBaseTransport | None = None) -> ActionResult:
    if call.action != "send":
        raise ToolError(f"webhook has no action {call.action!r}", permanent=True)
    url = str(call.config.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise ToolError("webhook credential needs an http(s) 'url'", permanent=True)
    params = call.params
    headers = {**(call.config.get("headers") or {}), **(params.get("headers") or {})}
    method = str(params.get("method", "POST")).upper()
    target = url + str(params.get("path", ""))
    try:
        async with httpx.AsyncClient(
            transport=transport, timeout=call.timeout_s, follow_redirects=False
        ) as client:
            resp = await client.request(
                method, target, headers=headers, json=params.get("json"), content=params.get("body")
            )
    except httpx.HTTPError as exc:
        raise ToolError(f"webhook request failed: {exc or type(exc).__name__}") from exc
    return http_result(resp)


def http_result(resp: httpx.Response) -> ActionResult:
    """Map an answer: 2xx ok; 429/5xx retryable (Retry-After honoured); other 4xx permanent."""
    if 200 <= resp.status_code < 300:
        return ActionResult(True, {"status": resp.status_code})
    retry_after = resp.headers.get("retry-after")
    wait_s = (
        float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
    )
    message = f"HTTP {resp.status_code}: {resp.text[:200]}"
    if resp.status_code == 429 or resp.status_code >= 500:
        raise ToolError(message, retry_after_s=wait_s)
    raise ToolError(message, permanent=True)
