"""The Runtime API (/runtime/v1): how a running script talks to Cronium.

Authenticated by the job's execution token only; every call is scoped to that job's
execution and owner. Served on the main port and on the Unix socket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from cronium.api.deps import CoreDep
from cronium.api.errors import error_body
from cronium.core import Core
from cronium.engine.runner import execution_masker
from cronium.errors import (
    CroniumError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from cronium.logs.capture import value_secrets
from cronium.runtime import store
from cronium.runtime.socket import over_unix_socket
from cronium.runtime.tokens import ENDED, RuntimeCaller, resolve
from cronium.tools.execute import ActionRequest, RetryPolicy
from cronium.tools.execute import execute as execute_tool

router = APIRouter(prefix="/runtime/v1", tags=["runtime"])
log = logging.getLogger("cronium.api")

MAX_SMALL_BODY_BYTES = 64 * 1024
# Scripts wait for their tool actions: retries fit well inside the SDKs' 300 s timeout.
SCRIPT_TOOL_POLICY = RetryPolicy(max_attempts=4, budget_s=90.0, attempt_timeout_s=30.0)


async def authenticate(request: Request, core: Core) -> RuntimeCaller:
    """The running job of the bearer token; counts the call against the job's rate limit."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send the execution token: Authorization: Bearer $CRONIUM_EXECUTION_TOKEN"
        )
    token = token.strip()
    local = over_unix_socket(request.scope)
    cached = core.runtime_callers.get(token) if local else None
    if cached is not None:
        caller: RuntimeCaller | None = cached
    else:
        async with core.db.acquire() as conn:
            caller = await resolve(conn, token)
        if caller is not None and local:
            core.runtime_callers.put(token, caller)
    if caller is None:
        raise Unauthorized(ENDED)
    limit = core.settings.runtime_rate_limit_per_s
    key = f"runtime:{caller.execution_id}"
    wait = await core.limiter.retry_after_s(key, limit=limit, window_s=1.0)
    if wait is not None:
        raise RateLimited(f"more than {limit} Runtime API calls per second", retry_after_s=wait)
    await core.limiter.hit(key, window_s=1.0)
    return caller


async def runtime_caller(request: Request, core: CoreDep) -> RuntimeCaller:
    return await authenticate(request, core)


Caller = Annotated[RuntimeCaller, Depends(runtime_caller)]


async def json_body(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    raw = b""
    try:
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_bytes:
                raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    except ClientDisconnect:
        # The script went away mid-request (killed, timed out): nothing to answer.
        raise ValidationFailed("client disconnected before sending the whole body") from None
    if not raw:
        raise ValidationFailed("request body must be JSON", details={"field": "body"})
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "request body is not valid JSON", details={"field": "body"}
        ) from None


def _value_of(body: Any) -> Any:
    """Bodies are {"value": …}; a bare JSON value is accepted too."""
    if isinstance(body, dict) and set(body) == {"value"}:
        return body["value"]
    return body


class Ok(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool = True


OK: dict[str, Any] = {"ok": True}


# -- the operations: shared by the routes below and by the socket's direct path ---------------


async def read_input(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    async with core.db.acquire() as conn:
        return {"value": await store.execution_input(conn, caller)}


async def write_output(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    value = _value_of(await json_body(request, core.settings.runtime_max_output_bytes))
    # The output is shown and passed on like the log: with the job's secrets masked.
    masker = core.job_maskers.get(caller.job_id)
    async with core.db.acquire() as conn:
        if masker is None:  # the job runs on another node: load its secrets here
            token = request.headers.get("authorization", "").partition(" ")[2].strip()
            masker = await execution_masker(core, conn, caller.execution_id, token)
        await store.set_output(conn, caller, masker.mask_value(value))
    return OK


async def read_condition(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    async with core.db.acquire() as conn:
        return {"value": await store.get_condition(conn, caller)}


async def write_condition(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    value = _value_of(await json_body(request, MAX_SMALL_BODY_BYTES))
    if not isinstance(value, bool):
        raise ValidationFailed("condition must be true or false", details={"field": "value"})
    async with core.db.acquire() as conn:
        await store.set_condition(conn, caller, value)
    return OK


async def read_context(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    return store.context(caller)


async def read_variable(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    async with core.db.acquire() as conn:
        found, value = await store.get_variable(conn, core, caller, key)
    if not found:
        raise NotFound(f"variable {key!r} not found")
    return {"key": key, "value": value}


async def write_variable(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    store.check_key(key)
    value = _value_of(await json_body(request, core.settings.runtime_max_output_bytes))
    async with core.db.acquire() as conn:
        secret = await store.put_variable(conn, core, caller, key, value)
    if secret:
        _remember_secret(core, caller, value)
    return OK


def _remember_secret(core: Core, caller: RuntimeCaller, value: Any) -> None:
    """A secret value the script just wrote is masked in its output from now on.

    Only on the node that runs the job (where scripts reach the Runtime API socket).
    """
    masker = core.job_maskers.get(caller.job_id)
    if masker is not None:
        masker.add(value_secrets(value))


async def remove_variable(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    async with core.db.acquire() as conn:
        if not await store.delete_variable(conn, caller, key):
            raise NotFound(f"variable {key!r} not found")
    return None


async def increment(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    store.check_key(key)
    body = (
        await json_body(request, MAX_SMALL_BODY_BYTES)
        if request.headers.get("content-length") not in (None, "0")
        else {}
    )
    by = body.get("by", 1) if isinstance(body, dict) else body
    if isinstance(by, bool) or not isinstance(by, int | float):
        raise ValidationFailed("'by' must be a number", details={"field": "by"})
    async with core.db.acquire() as conn:
        value, secret = await store.increment_variable(conn, core, caller, key, by)
    if secret:
        _remember_secret(core, caller, value)
    return {"key": key, "value": value}


async def append(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    store.check_key(key)
    value = _value_of(await json_body(request, core.settings.runtime_max_output_bytes))
    async with core.db.acquire() as conn:
        length, secret = await store.append_variable(conn, core, caller, key, value)
    if secret:
        _remember_secret(core, caller, value)
    return {"key": key, "length": length}


async def tool_action(request: Request, core: Core, caller: RuntimeCaller, key: str) -> Any:
    body = await json_body(request, core.settings.runtime_max_output_bytes)
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("tool"), str)
        or not isinstance(body.get("action"), str)
    ):
        raise ValidationFailed(
            'body must be {"tool": …, "action": …, "params": {…}}', details={"field": "body"}
        )
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object", details={"field": "params"})
    params = dict(params)
    credential_id = body.get("credential_id", params.pop("credential_id", None))
    if credential_id is not None and (
        isinstance(credential_id, bool) or not isinstance(credential_id, int)
    ):
        raise ValidationFailed(
            "credential_id must be an integer", details={"field": "credential_id"}
        )
    action = ActionRequest(
        owner_id=caller.owner_id,
        action=body["action"],
        params=params,
        credential_id=credential_id,
        tool=body["tool"],
        execution_id=caller.execution_id,
    )
    async with core.db.acquire() as conn:  # an action of an ended job is not started
        await store.ensure_live(conn, caller)
    outcome = await execute_tool(core.db, core.cipher, action, SCRIPT_TOOL_POLICY)
    if outcome.error is not None:
        if outcome.error.reason == "credential_not_found" and credential_id is not None:
            raise NotFound(outcome.error.message)
        # Stable details (no timing): the reason code, the HTTP status, how many attempts.
        outcome.error.details = {
            **outcome.error.as_dict(),
            "tool": outcome.tool,
            "action": outcome.action,
            "attempts": outcome.attempts,
        }
        raise outcome.error
    return {"ok": True, "result": outcome.result}


# -- the routes (main port; the socket too when the direct path does not take a request) -------


@router.get("/input")
async def get_input(request: Request, caller: Caller, core: CoreDep) -> Any:
    """The execution's input."""
    return await read_input(request, core, caller, "")


@router.put("/output")
async def put_output(request: Request, caller: Caller, core: CoreDep) -> Ok:
    """Set this job's output (JSON, at most CRONIUM_RUNTIME_MAX_OUTPUT_BYTES)."""
    await write_output(request, core, caller, "")
    return Ok()


@router.get("/condition")
async def get_condition(request: Request, caller: Caller, core: CoreDep) -> Any:
    """The condition set by this job (null until set)."""
    return await read_condition(request, core, caller, "")


@router.put("/condition")
async def put_condition(request: Request, caller: Caller, core: CoreDep) -> Ok:
    """Set the condition that drives on_condition actions (true or false)."""
    await write_condition(request, core, caller, "")
    return Ok()


@router.get("/context")
async def get_context(caller: Caller) -> dict[str, Any]:
    """The event, execution, job and user this script runs for."""
    return store.context(caller)


@router.get("/variables/{key}")
async def get_variable(key: str, request: Request, caller: Caller, core: CoreDep) -> Any:
    """A variable of the event's owner; 404 when it does not exist."""
    return await read_variable(request, core, caller, key)


@router.put("/variables/{key}")
async def put_variable(key: str, request: Request, caller: Caller, core: CoreDep) -> Ok:
    """Create or replace a variable (a secret one stays secret)."""
    await write_variable(request, core, caller, key)
    return Ok()


@router.delete("/variables/{key}", status_code=204)
async def delete_variable(key: str, request: Request, caller: Caller, core: CoreDep) -> Response:
    """Delete a variable; 404 when it does not exist."""
    await remove_variable(request, core, caller, key)
    return Response(status_code=204)


@router.post("/variables/{key}/increment")
async def increment_variable(key: str, request: Request, caller: Caller, core: CoreDep) -> Any:
    """Atomically add `by` (default 1) to a numeric variable (missing counts as 0)."""
    return await increment(request, core, caller, key)


@router.post("/variables/{key}/append")
async def append_variable(key: str, request: Request, caller: Caller, core: CoreDep) -> Any:
    """Atomically append a value to a list variable (missing starts an empty list)."""
    return await append(request, core, caller, key)


def runtime_core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


@router.post("/tool-actions")
async def post_tool_action(request: Request, caller: Caller, core: CoreDep) -> Any:
    """Run a tool action now with one of the owner's credentials; answers its result."""
    return await tool_action(request, core, caller, "")


# -- the socket's direct path -------------------------------------------------------------------
#
# Scripts call the Runtime API in loops, so over the Unix socket the operations above are
# served straight from the ASGI scope: no route table of the whole app, no dependency
# injection, no response model. Same operations, same auth and rate limit, same JSON
# errors; anything not matched exactly (another method, a malformed path) falls through to
# the routes, which answer as before.

Operation = Callable[[Request, Core, RuntimeCaller, str], Awaitable[Any]]

_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/input"): read_input,
    ("PUT", "/output"): write_output,
    ("GET", "/condition"): read_condition,
    ("PUT", "/condition"): write_condition,
    ("GET", "/context"): read_context,
    ("POST", "/tool-actions"): tool_action,
}
_VARIABLE_OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", ""): read_variable,
    ("PUT", ""): write_variable,
    ("DELETE", ""): remove_variable,
    ("POST", "/increment"): increment,
    ("POST", "/append"): append,
}
_VARIABLES = "/variables/"


def direct_operation(method: str, path: str) -> tuple[Operation, str] | None:
    """(operation, variable key) the routes would run for this request, or None."""
    if not path.startswith(router.prefix + "/"):
        return None
    rest = path[len(router.prefix) :]
    operation = _OPERATIONS.get((method, rest))
    if operation is not None:
        return operation, ""
    if rest.startswith(_VARIABLES):
        key, slash, suffix = rest[len(_VARIABLES) :].partition("/")
        operation = _VARIABLE_OPERATIONS.get((method, slash + suffix))
        if key and operation is not None:
            return operation, key
    return None


def runtime_endpoint(method: str, path: str) -> str:
    """A bounded label for metrics: the operation's name, or "other"."""
    found = direct_operation(method, path)
    return found[0].__name__ if found is not None else "other"


async def serve_directly(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer a Runtime API request without the app's router; False: not one it knows."""
    found = direct_operation(scope["method"], scope["path"])
    if found is None:
        return False
    operation, key = found
    core: Core = scope["app"].state.core
    request = Request(scope, receive)
    response: Response
    try:
        caller = await authenticate(request, core)
        result = await operation(request, core, caller, key)
    except CroniumError as exc:
        if exc.status_code >= 500:
            log.error("request failed: %s", exc.message)
        response = JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            exc.status_code,
            headers={"Retry-After": str(exc.retry_after_s)}
            if isinstance(exc, RateLimited)
            else None,
        )
    else:
        response = Response(status_code=204) if result is None else JSONResponse(result)
    await response(scope, receive, send)
    return True
