"""POST /api/v1/webhooks/{key}: events and workflows started from outside."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from tests.conftest import Api, wait_for_status
from tests.integration.test_workflows import create_workflow, wait_run
from tests.support.runs import create_event

SECRET = "a-webhook-secret-of-some-length"


async def hooked_event(user: Api, **webhook: object) -> tuple[int, str]:
    event_id = await create_event(
        user, name="hooked", content="echo hi", webhook={"enabled": True, **webhook}
    )
    key = (await user.get(f"/events/{event_id}")).json()["webhook"]["key"]
    assert key
    return event_id, str(key)


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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


async def test_signatures_are_checked(api: dict[str, Api], client: httpx.AsyncClient) -> None:
    _, key = await hooked_event(api["user"], secret=SECRET)
    body = json.dumps({"signed": True}).encode()
    url = f"/api/v1/webhooks/{key}"
    headers = {"Content-Type": "application/json"}
    missing = await client.post(url, content=body, headers=headers)
    assert (
        missing.status_code == 401 and "X-Cronium-Signature" in missing.json()["error"]["message"]
    )
    wrong = await client.post(
        url, content=body, headers={**headers, "X-Cronium-Signature": sign(body, "other-secret-xx")}
    )
    assert wrong.status_code == 401
    tampered = await client.post(
        url, content=body + b" ", headers={**headers, "X-Cronium-Signature": sign(body)}
    )
    assert tampered.status_code == 401
    good = await client.post(
        url, content=body, headers={**headers, "X-Cronium-Signature": sign(body)}
    )
    assert good.status_code == 202, good.text
    upper = await client.post(
        url,
        content=body,
        headers={
            **headers,
            "X-Cronium-Signature": sign(body).upper().replace("SHA256=", "sha256="),
        },
    )
    assert upper.status_code == 202


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
        headers={"X-Cronium-Signature": sign(body), "Content-Type": "application/json"},
    )
    assert resp.status_code == 202, resp.text
    assert resp.json()["kind"] == "workflow"
    run = await wait_run(user, resp.json()["run_id"])
    assert run["status"] == "succeeded" and run["trigger"] == "webhook"
    assert run["nodes"][0]["output"] == {"deploy": "v2"}
