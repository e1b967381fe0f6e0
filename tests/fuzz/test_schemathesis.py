"""Fuzz the REST API against its own OpenAPI document with schemathesis.

For every operation, as the `user` and as the `viewer` persona, schemathesis generates requests
from the schema; each response must not be a 5xx, and its status, Content-Type, headers and
body must be the documented ones: errors included, since every operation documents its 4xx
body (see cronium.api.openapi). The requests go to the app in process (httpx over ASGI) on the
test's fresh database.

Hypothesis runs in a worker thread and hands each request to the test's event loop, where the
app, the database pool and the httpx client live. `CRONIUM_FUZZ_EXAMPLES` raises the number of
examples per operation for a local soak (e.g. `CRONIUM_FUZZ_EXAMPLES=500`).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from tests.conftest import Api

EXAMPLES = int(os.environ.get("CRONIUM_FUZZ_EXAMPLES", "15"))
# Not here: positive_data_acceptance (the API checks more than the schema can say: cron syntax,
# time zones, references, so schema-valid data is often a 422 by design), negative_data_rejection
# (for negative cases; this strategy generates positive ones), unsupported_method (for the
# coverage phase), use_after_free (for stateful runs) and ignored_auth (sends requests of its
# own, past the event-loop bridge below).
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
REQUEST_TIMEOUT_S = 30
# These end the persona's own session or token (the token's id is in the range fuzzed): fuzzed
# first, they would leave every later operation testing only the 401 path. They run last.
SELF_REVOKING = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/tokens/{token_id}")}


async def _send(client: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
    headers = dict(kwargs.get("headers") or {})
    cookies = kwargs.get("cookies") or {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), str | bytes):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    if kwargs.get("files"):
        body["files"] = kwargs["files"]
    return await client.request(
        kwargs["method"],
        kwargs["url"],
        headers=headers,
        params=kwargs.get("params") or None,
        **body,
    )


def _fuzz_operation(
    operation: Any, api: Api, loop: asyncio.AbstractEventLoop, examples: int
) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=api.headers)
        future = asyncio.run_coroutine_threadsafe(_send(api.client, kwargs), loop)
        response = future.result(timeout=REQUEST_TIMEOUT_S)
        case.validate_response(response, checks=CHECKS)

    check()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("persona", ["user", "viewer"])
async def test_api_conforms_to_its_openapi(
    persona: str, settings: Settings, core: Core, api: dict[str, Api]
) -> None:
    app = create_app(settings, core=core)
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    only = os.environ.get("CRONIUM_FUZZ_ONLY")  # a path substring, to focus a soak
    if only:
        operations = [op for op in operations if only in op.path]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in SELF_REVOKING)
    revoking_from = next(
        (i for i, op in enumerate(operations) if (op.method.upper(), op.path) in SELF_REVOKING),
        len(operations),
    )
    loop = asyncio.get_running_loop()
    failures: list[str] = []

    def run(batch: list[Any]) -> None:
        for operation in batch:
            try:
                _fuzz_operation(operation, api[persona], loop, EXAMPLES)
            except Exception as exc:
                failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")

    await asyncio.to_thread(run, operations[:revoking_from])
    # Still signed in: the operations above were fuzzed past authentication.
    assert (await api[persona].get("/auth/me")).status_code == 200
    await asyncio.to_thread(run, operations[revoking_from:])
    assert not failures, f"{len(failures)} operation(s) failed:\n\n" + "\n\n".join(failures)
