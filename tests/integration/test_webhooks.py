"""POST /api/v1/webhooks/{key}: events and workflows started from outside."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
import pytest

from cronium.core import Core
from tests.conftest import Api, wait_for_status
from tests.integration.test_workflows import create_workflow, wait_run
from tests.support.runs import create_event
from tests.support.webhooks import signed_headers

SECRET = "a-webhook-secret-of-some-length"


async def hooked_event(user: Api, **webhook: object) -> tuple[int, str]:
    event_id = await create_event(
        user, name="hooked", content="echo hi", webhook={"enabled": True, **webhook}
    )
    key = (await user.get(f"/events/{event_id}")).json()["webhook"]["key"]
    assert key
    return event_id, str(key)


def refusal(resp: httpx.Response) -> tuple[str, str]:
    """(reason, message) of a 401 refusal."""
    assert resp.status_code == 401, resp.text
    error = resp.json()["error"]
    assert error["code"] == "unauthorized"
    return error["details"]["reason"], error["message"]


async def signature_rows(core: Core) -> int:
    async with core.db.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM webhook_signatures"))


async def test_a_webhook_starts_the_event_with_the_body_as_input(
    api: dict[str, Api], client: httpx.AsyncClient, node: object
) -> None:
    user = api["user"]
    _, key = await hooked_event(user)
    resp = await client.post(f"/api/v1/webhooks/{key}", json={"ref": "main", "n": 3})
    assert resp.status_code == 202, resp.text
    assert resp.json()["kind"] == "event"
    execution = await wait_for_status(user, resp.json()["execution_id"])
    assert execution["status"] == "succeeded"
    assert execution["trigger"] == "webhook"
    assert execution["input"] == {"ref": "main", "n": 3}
    empty = await client.post(f"/api/v1/webhooks/{key}")
    assert empty.status_code == 202
    assert (await user.get(f"/executions/{empty.json()['execution_id']}")).json()["input"] == {}


async def test_unknown_and_disabled_keys_are_404(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    user = api["user"]
    event_id, key = await hooked_event(user)
    assert (await client.post("/api/v1/webhooks/not-a-real-key-123", json={})).status_code == 404
    resp = await user.patch(f"/events/{event_id}", json={"webhook": {"enabled": False}})
    assert resp.status_code == 200, resp.text
    gone = await client.post(f"/api/v1/webhooks/{key}", json={})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_a_signed_call_passes_and_each_refusal_says_why(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    body = json.dumps({"signed": True}).encode()
    url = f"/api/v1/webhooks/{key}"
    now = int(time.time())
    good = signed_headers(body, SECRET, timestamp=now)
    no_signature = await client.post(url, content=body, headers={"X-Cronium-Timestamp": str(now)})
    assert refusal(no_signature)[0] == "missing_signature"
    assert "X-Cronium-Signature" in refusal(no_signature)[1]
    no_timestamp = {k: v for k, v in good.items() if k != "X-Cronium-Timestamp"}
    reason, message = refusal(await client.post(url, content=body, headers=no_timestamp))
    assert reason == "missing_timestamp" and "missing X-Cronium-Timestamp" in message
    for stamp in (f"{now}.5", "now", "-1", "", "1e9", "0x10", "1234567890123"):
        # Signed correctly over the odd timestamp: only its form is wrong.
        odd = signed_headers(body, SECRET, timestamp=stamp)
        reason, message = refusal(await client.post(url, content=body, headers=odd))
        assert reason == "bad_timestamp", stamp
        assert "whole Unix seconds" in message
    # Well outside the window: `now` was truncated to whole seconds and the requests before
    # took time, so a 301 s stamp in the future can be inside it when it arrives.
    for stamp in (now - 310, now + 310, 0):
        stale = signed_headers(body, SECRET, timestamp=stamp)
        reason, message = refusal(await client.post(url, content=body, headers=stale))
        assert reason == "stale_timestamp" and "outside the 300 s window" in message
    other_secret = signed_headers(body, "some-other-secret-value", timestamp=now)
    assert refusal(await client.post(url, content=body, headers=other_secret))[0] == "bad_signature"
    old_format = {
        **good,
        "X-Cronium-Signature": "sha256="
        + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }
    reason, message = refusal(await client.post(url, content=body, headers=old_format))
    assert reason == "body_only_signature" and "signs only the body" in message
    tampered_body = await client.post(url, content=body + b" ", headers=good)
    assert refusal(tampered_body) == (
        "bad_signature",
        "bad signature: X-Cronium-Signature does not match X-Cronium-Timestamp and the body",
    )
    tampered_stamp = {**good, "X-Cronium-Timestamp": str(now + 1)}
    assert refusal(await client.post(url, content=body, headers=tampered_stamp))[0] == (
        "bad_signature"
    )
    # A stale timestamp with a wrong signature learns nothing about the window.
    stale_forged = signed_headers(body, "some-other-secret-value", timestamp=now - 1000)
    assert refusal(await client.post(url, content=body, headers=stale_forged))[0] == (
        "bad_signature"
    )
    assert await signature_rows(core) == 0, "a refused call must not be remembered"
    accepted = await client.post(url, content=body, headers=good)
    assert accepted.status_code == 202, accepted.text
    assert await signature_rows(core) == 1


@pytest.mark.parametrize(
    "value",
    [
        b"sha256=",
        b"sha256=" + b"g" * 64,
        b"sha256=" + b"\xe9" * 64,
        b"sha256=" + b"a" * 65,
        b"md5=abc",
    ],
)
async def test_a_malformed_signature_is_a_401_not_a_crash(
    api: dict[str, Api], client: httpx.AsyncClient, value: bytes
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    headers = {"X-Cronium-Timestamp": str(int(time.time())).encode(), "X-Cronium-Signature": value}
    resp = await client.post(f"/api/v1/webhooks/{key}", content=b"{}", headers=headers)
    assert refusal(resp)[0] in ("bad_signature", "missing_signature")


async def test_the_signature_is_hex_in_either_case(
    api: dict[str, Api], client: httpx.AsyncClient
) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    body = b'{"case": "upper"}'
    headers = signed_headers(body, SECRET)
    headers["X-Cronium-Signature"] = "sha256=" + headers["X-Cronium-Signature"][7:].upper()
    resp = await client.post(f"/api/v1/webhooks/{key}", content=body, headers=headers)
    assert resp.status_code == 202, resp.text


async def test_without_a_secret_no_headers_are_needed_and_nothing_is_remembered(
    api: dict[str, Api], client: httpx.AsyncClient, core: Core
) -> None:
    _, key = await hooked_event(api["user"])
    body = b'{"same": 1}'
    # Unsigned webhooks are replayable by design: the same call runs again.
    for _ in range(2):
        resp = await client.post(f"/api/v1/webhooks/{key}", content=body)
        assert resp.status_code == 202, resp.text
    assert await signature_rows(core) == 0


async def test_bad_bodies(api: dict[str, Api], client: httpx.AsyncClient) -> None:
    _, key = await hooked_event(api["user"])
    url = f"/api/v1/webhooks/{key}"
    not_json = await client.post(
        url, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and "JSON" in not_json.json()["error"]["message"]
    huge = await client.post(url, content=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
    assert huge.status_code == 413


async def test_each_key_is_rate_limited(api: dict[str, Api], client: httpx.AsyncClient) -> None:
    _, key = await hooked_event(api["user"])
    url = f"/api/v1/webhooks/{key}"
    codes = [(await client.post(url, json={})).status_code for _ in range(60)]
    assert codes == [202] * 60
    limited = await client.post(url, json={})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_a_paused_event_refuses(api: dict[str, Api], client: httpx.AsyncClient) -> None:
    user = api["user"]
    event_id, key = await hooked_event(user)
    await user.post(f"/events/{event_id}/pause")
    resp = await client.post(f"/api/v1/webhooks/{key}", json={})
    assert resp.status_code == 409 and "paused" in resp.json()["error"]["message"]


async def test_a_webhook_starts_a_workflow(
    api: dict[str, Api], client: httpx.AsyncClient, node: object
) -> None:
    user = api["user"]
    step = await create_event(
        user, name="step", language="python", content="cronium.output(cronium.input())"
    )
    workflow_id = await create_workflow(
        user, [("step", step)], [], webhook={"enabled": True, "secret": SECRET}
    )
    key = (await user.get(f"/workflows/{workflow_id}")).json()["webhook"]["key"]
    body = json.dumps({"deploy": "v2"}).encode()
    resp = await client.post(
        f"/api/v1/webhooks/{key}",
        content=body,
        headers=signed_headers(body, SECRET),
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["kind"] == "workflow"
    run = await wait_run(user, resp.json()["run_id"])
    assert run["status"] == "succeeded" and run["trigger"] == "webhook"
    assert run["nodes"][0]["output"] == {"deploy": "v2"}
