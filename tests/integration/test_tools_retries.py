"""Retries of the shared tool path against a real receiver: 429 with Retry-After, 5xx,
permanent 4xx, and a total time that stays bounded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from cronium.core import Core
from cronium.tools.base import ToolError
from cronium.tools.execute import ActionRequest, Outcome, RetryPolicy, execute
from tests.conftest import Api
from tests.support.tool_receivers import Answer, HttpReceiver, free_port, http_receiver


@pytest.fixture
async def hook() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as receiver:
        yield receiver


async def slack(api: Api, url: str) -> int:
    body = {"name": "s", "tool": "slack", "config": {"webhook_url": url}}
    resp = await api.post("/credentials", json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def send(
    core: Core, cred: int, policy: RetryPolicy, attempts: list[tuple[int, str, float | None]]
) -> Outcome:
    async def hook(attempt: int, error: ToolError, wait_s: float | None) -> None:
        attempts.append((attempt, error.reason, wait_s))

    request = ActionRequest(2, "send_message", {"text": "hi"}, credential_id=cred)
    return await execute(core.db, core.cipher, request, policy, hook)


async def test_a_429_waits_as_long_as_retry_after_says_then_succeeds(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(429, {"error": "slow down"}, {"Retry-After": "1"})]
    cred = await slack(api["user"], f"{hook.url}/s")
    seen: list[tuple[int, str, float | None]] = []
    outcome = await send(core, cred, RetryPolicy(backoff_s=0.01), seen)
    assert outcome.ok, outcome.as_dict()
    assert outcome.attempts == 2
    assert seen == [(1, "rate_limited", 1.0)]
    first, second = hook.calls
    assert second["at"] - first["at"] >= 0.95  # the receiver's wish, not our 10 ms backoff
    assert first["json"] == second["json"] == {"text": "hi"}


async def test_5xx_answers_are_retried_with_backoff(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(503, {"busy": True}), Answer(502, {"busy": True})]
    cred = await slack(api["user"], f"{hook.url}/s")
    seen: list[tuple[int, str, float | None]] = []
    outcome = await send(core, cred, RetryPolicy(backoff_s=0.1), seen)
    assert outcome.ok, outcome.as_dict()
    assert outcome.attempts == 3
    assert seen == [(1, "server_error", 0.1), (2, "server_error", 0.2)]
    assert len(hook.calls) == 3


async def test_a_4xx_is_permanent_and_sent_once(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(404, {"error": "no_service"})]
    cred = await slack(api["user"], f"{hook.url}/s")
    seen: list[tuple[int, str, float | None]] = []
    outcome = await send(core, cred, RetryPolicy(backoff_s=0.01), seen)
    assert not outcome.ok
    assert outcome.attempts == 1
    assert outcome.error is not None
    assert outcome.error.as_dict() == {
        "code": "rejected",
        "message": 'Slack answered HTTP 404: {"error":"no_service"}',
        "status": 404,
    }
    assert seen == [(1, "rejected", None)]
    assert len(hook.calls) == 1


async def test_attempts_stop_at_the_limit(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(500, {"e": i}) for i in range(10)]
    cred = await slack(api["user"], f"{hook.url}/s")
    seen: list[tuple[int, str, float | None]] = []
    outcome = await send(core, cred, RetryPolicy(max_attempts=3, backoff_s=0.01), seen)
    assert not outcome.ok
    assert outcome.attempts == 3
    assert outcome.error is not None and outcome.error.status == 500
    assert len(hook.calls) == 3
    assert seen[-1] == (3, "server_error", None)


async def test_a_retry_after_beyond_the_budget_ends_at_once(
    api: dict[str, Api], core: Core, hook: HttpReceiver
) -> None:
    hook.queued = [Answer(429, {"error": "later"}, {"Retry-After": "120"})]
    cred = await slack(api["user"], f"{hook.url}/s")
    seen: list[tuple[int, str, float | None]] = []
    started = time.monotonic()
    outcome = await send(core, cred, RetryPolicy(budget_s=5), seen)
    assert time.monotonic() - started < 3
    assert not outcome.ok
    assert outcome.error is not None
    assert outcome.error.retry_after_s == 120  # kept: the outbox schedules its retry with it
    assert seen == [(1, "rate_limited", None)]


async def test_an_unreachable_receiver_is_retried_within_the_budget(
    api: dict[str, Api], core: Core
) -> None:
    cred = await slack(api["user"], f"http://127.0.0.1:{free_port()}/s")
    seen: list[tuple[int, str, float | None]] = []
    started = time.monotonic()
    outcome = await send(
        core, cred, RetryPolicy(max_attempts=10, budget_s=1.5, backoff_s=0.2), seen
    )
    elapsed = time.monotonic() - started
    assert not outcome.ok
    assert outcome.error is not None and outcome.error.reason == "connection_failed"
    assert "cannot reach 127.0.0.1" in outcome.error.message
    # Waits double from 0.2 s; the retries stop before a wait would pass the 1.5 s budget
    # (after 0.2 + 0.4 + 0.8 s at the latest: 1.6 s more never fits), not after 10 attempts.
    waits = [s[2] for s in seen]
    assert waits[-1] is None
    assert waits[:-1] in ([0.2, 0.4], [0.2, 0.4, 0.8])
    assert elapsed < 1.5 + 0.5
