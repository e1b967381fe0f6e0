"""The one way a tool action runs: tool events, conditional actions, scripts and tests.

`execute` loads and decrypts the credential (owner-checked), merges a saved template,
renders the parameters in the sandbox, validates them against the action's schema,
then calls the tool with a per-attempt timeout, retrying 429/5xx/connection failures
with backoff that honours Retry-After, within a bounded total time. It never raises
for a failed action: the `Outcome` says what happened, for the caller to record. What it
reports never shows the credential's secrets: a receiver that echoes its URL or headers
in an error has them masked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import ValidationError

from cronium.logs.capture import Masker
from cronium.security.crypto import Cipher
from cronium.tools.base import ActionCall, ActionResult, ToolError
from cronium.tools.context import standalone_context, template_context
from cronium.tools.credentials import (
    Credential,
    apply_template,
    describe_errors,
    load_credential,
    validated,
)
from cronium.tools.registry import get_tool, split_action
from cronium.tools.templates import render

log = logging.getLogger("cronium.tools")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `budget_s` bounds attempts plus waits; a longer Retry-After ends it."""

    max_attempts: int = 4
    budget_s: float = 60.0
    attempt_timeout_s: float = 30.0
    backoff_s: float = 1.0


ONE_ATTEMPT = RetryPolicy(max_attempts=1, budget_s=30.0)


@dataclass(frozen=True)
class ActionRequest:
    owner_id: int
    action: str  # `send_message` or `slack.send_message`
    params: dict[str, Any]
    credential_id: int | None = None
    tool: str | None = None  # needed without credential_id: the owner's only one of it
    execution_id: int | None = None  # templates see this execution; none: variables only
    # Sample event/execution/output/input for a template test, over the variables-only context.
    sample: dict[str, Any] | None = None


@dataclass
class Outcome:
    ok: bool
    tool: str | None
    action: str
    credential_id: int | None
    attempts: int
    duration_ms: int
    result: dict[str, Any] | None = None
    error: ToolError | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tool": self.tool,
            "action": self.action,
            "credential_id": self.credential_id,
            "attempts": self.attempts,
            "duration_ms": self.duration_ms,
            "result": self.result,
            "error": self.error.as_dict() if self.error else None,
        }


# Called after a failed attempt: (attempt, error, seconds until the next one or None).
AttemptHook = Callable[[int, ToolError, float | None], Awaitable[None]]


@dataclass(frozen=True)
class Prepared:
    credential: Credential
    action: str
    params: dict[str, Any]


async def prepare(conn: asyncpg.Connection, cipher: Cipher, request: ActionRequest) -> Prepared:
    """Credential, template, rendering and validation: everything before the first send."""
    tool_hint = request.tool
    if tool_hint is None and "." in request.action:
        tool_hint = request.action.rpartition(".")[0]
    credential = await load_credential(
        conn, cipher, request.owner_id, request.credential_id, tool_hint
    )
    tool = get_tool(credential.tool)
    action = split_action(credential.tool, request.action)
    validated(tool.config, credential.config, f"credential {credential.name!r}", "bad_config")
    params = await apply_template(conn, request.owner_id, tool.kind, action, request.params)
    if request.execution_id is not None:
        context = await template_context(conn, request.execution_id)
    else:
        context = await standalone_context(conn, request.owner_id)
    if request.sample is not None:
        context = {**context, **request.sample}
    rendered = render(params, context)
    validated(tool.actions[action], rendered, "params", "bad_params")
    return Prepared(credential, action, rendered)


async def execute(
    pool: asyncpg.Pool,
    cipher: Cipher,
    request: ActionRequest,
    policy: RetryPolicy = RetryPolicy(),
    on_attempt: AttemptHook | None = None,
) -> Outcome:
    """Run one tool action to its end (sent, or failed for good / out of budget)."""
    started = time.monotonic()
    try:
        async with pool.acquire() as conn:
            prepared = await prepare(conn, cipher, request)
    except ToolError as exc:
        return Outcome(
            False,
            request.tool,
            request.action,
            request.credential_id,
            0,
            _ms(started),
            error=exc,
        )
    return await send(prepared, policy, started, on_attempt)


async def send(
    prepared: Prepared,
    policy: RetryPolicy,
    started: float,
    on_attempt: AttemptHook | None = None,
) -> Outcome:
    credential = prepared.credential
    masker = Masker(credential.secrets())
    deadline = started + policy.budget_s
    attempt = 0
    while True:
        attempt += 1
        timeout_s = max(1.0, min(policy.attempt_timeout_s, deadline - time.monotonic()))
        call = ActionCall(prepared.action, prepared.params, credential.config, timeout_s)
        try:
            result = await _attempt(credential.tool, call)
        except ToolError as exc:
            _hide_secrets(exc, masker)
            wait_s = _next_wait(exc, attempt, policy, deadline)
            if on_attempt is not None:
                await on_attempt(attempt, exc, wait_s)
            if wait_s is None:
                return Outcome(
                    False,
                    credential.tool,
                    prepared.action,
                    credential.id,
                    attempt,
                    _ms(started),
                    error=exc,
                )
            await asyncio.sleep(wait_s)
            continue
        return Outcome(
            True,
            credential.tool,
            prepared.action,
            credential.id,
            attempt,
            _ms(started),
            result=masker.mask_value(result.detail),
        )


def _hide_secrets(exc: ToolError, masker: Masker) -> None:
    """Mask the credential's secrets in an error's message (a receiver may echo them)."""
    masked = masker.mask(exc.message)
    if masked != exc.message:
        exc.message = masked
        exc.args = (masked,)


async def _attempt(tool: str, call: ActionCall) -> ActionResult:
    try:
        # The tools bound their own I/O by call.timeout_s; this is the backstop.
        return await asyncio.wait_for(get_tool(tool).run(call), timeout=call.timeout_s + 5)
    except TimeoutError:
        raise ToolError(f"no answer within {call.timeout_s:g} s", reason="timeout") from None
    except ValidationError as exc:
        raise ToolError(
            describe_errors(exc, "params"), permanent=True, reason="bad_params"
        ) from None
    except ToolError:
        raise
    except Exception as exc:  # a bug in a tool must not take the caller down
        log.exception("tool %s failed unexpectedly", tool)
        raise ToolError(
            f"{tool} failed unexpectedly: {type(exc).__name__}",
            permanent=True,
            reason="internal_error",
        ) from exc


def _next_wait(exc: ToolError, attempt: int, policy: RetryPolicy, deadline: float) -> float | None:
    """Seconds before the next attempt, or None to stop (permanent, attempts or budget)."""
    if exc.permanent or attempt >= policy.max_attempts:
        return None
    wait_s = (
        exc.retry_after_s
        if exc.retry_after_s is not None
        else policy.backoff_s * 2 ** (attempt - 1)
    )
    if time.monotonic() + wait_s >= deadline:
        return None
    return wait_s


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
