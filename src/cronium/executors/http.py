"""HTTP request events: run in-process with httpx, response recorded as the run's output."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from cronium.db.models import JobStatus, LogStream
from cronium.executors.base import ExecutorError, JobResult, JobSpec, LineSink

MAX_BODY_BYTES = 1024 * 1024
MAX_REDIRECTS = 5


class HttpExecutor:
    """Not a process: `run` is the whole protocol. Timeout = the event's timeout_seconds."""

    mode = "http"

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport

    async def run(self, spec: JobSpec, sink: LineSink, cancel: asyncio.Event) -> JobResult:
        if not spec.http:
            raise ExecutorError("http event without a request", permanent=True)
        request = asyncio.create_task(self._request(spec, sink))
        cancelled = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait({request, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if request in done:
            return request.result()
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        await sink(LogStream.system, "cancel requested: request aborted")
        return JobResult(JobStatus.cancelled, error="cancelled by request")

    async def _request(self, spec: JobSpec, sink: LineSink) -> JobResult:
        http = spec.http or {}
        method = str(http.get("method", "GET")).upper()
        url = str(http["url"])
        headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}
        body = http.get("body")
        timeout_s = float(http.get("timeout_seconds") or spec.timeout_s)
        content, json_body = _body(body)
        await sink(LogStream.system, f"{method} {url}")
        started = time.monotonic()
        try:
            async with (
                httpx.AsyncClient(
                    transport=self._transport,
                    timeout=timeout_s,
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                ) as client,
                client.stream(
                    method, url, headers=headers, content=content, json=json_body
                ) as resp,
            ):
                raw, truncated = await _read_capped(resp)
        except httpx.TimeoutException:
            return JobResult(JobStatus.timed_out, error=f"no response within {timeout_s:g} s")
        except httpx.TooManyRedirects:
            return JobResult(JobStatus.failed, error=f"more than {MAX_REDIRECTS} redirects")
        except httpx.HTTPError as exc:
            return JobResult(JobStatus.failed, error=f"request failed: {exc or type(exc).__name__}")
        elapsed_ms = (time.monotonic() - started) * 1000
        text = raw.decode(resp.encoding or "utf-8", errors="replace")
        await sink(
            LogStream.system, f"HTTP {resp.status_code} in {elapsed_ms:.0f} ms ({len(raw)} bytes)"
        )
        for line in text.splitlines()[:200]:
            await sink(LogStream.stdout, line)
        output: dict[str, Any] = {
            "status": resp.status_code,
            "headers": dict(resp.headers),
            "body": _maybe_json(text, resp.headers.get("content-type", "")),
            "truncated": truncated,
            "elapsed_ms": round(elapsed_ms, 1),
        }
        if 200 <= resp.status_code < 300:
            return JobResult(JobStatus.succeeded, output=output)
        return JobResult(JobStatus.failed, error=f"HTTP {resp.status_code}", output=output)


def _body(body: Any) -> tuple[str | bytes | None, Any]:
    if body is None:
        return None, None
    if isinstance(body, str):
        return body, None
    return None, body


async def _read_capped(resp: httpx.Response) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"".join(chunks)[:MAX_BODY_BYTES], True
    return b"".join(chunks), False


def _maybe_json(text: str, content_type: str) -> Any:
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
