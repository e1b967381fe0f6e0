"""The Runtime API as a script sees it: token auth bound to the running job, scoping,
limits and JSON errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from cronium.core import Core
from cronium.engine.node import Node
from tests.conftest import Api, wait_for_status


async def run_script(api: Api, content: str, language: str = "bash", **body: Any) -> dict[str, Any]:
    resp = await api.post(
        "/events",
        json={"name": f"rt-{abs(hash(content))}", "language": language, "content": content},
    )
    assert resp.status_code == 201, resp.text
    run = await api.post(f"/events/{resp.json()['id']}/run", json=body or None)
    return await wait_for_status(api, run.json()["execution_id"])


CURL = 'curl -s --unix-socket "${CRONIUM_RUNTIME_URL#unix://}" -H "Authorization: Bearer $CRONIUM_EXECUTION_TOKEN"'


async def test_a_script_reads_input_and_sets_output_and_condition(
    api: dict[str, Api], node: Node
) -> None:
    script = f"""
{CURL} http://cronium/runtime/v1/input
echo
{CURL} -X PUT -H 'content-type: application/json' -d '{{"value": {{"n": 42}}}}' http://cronium/runtime/v1/output
{CURL} -X PUT -H 'content-type: application/json' -d '{{"value": true}}' http://cronium/runtime/v1/condition
"""
    done = await run_script(api["user"], script, input={"hello": "world"})
    assert done["status"] == "succeeded", done
    assert done["output"] == {"n": 42}
    assert done["condition"] is True
    assert done["jobs"][0]["output"] == {"n": 42}
    logs = (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    assert '{"value":{"hello":"world"}}' in [line["line"] for line in logs]


async def test_the_context_matches_the_job(api: dict[str, Api], node: Node) -> None:
    script = f"{CURL} http://cronium/runtime/v1/context > /dev/null; {CURL} http://cronium/runtime/v1/context | tr -d '\\n'; echo"
    done = await run_script(api["user"], script)
    logs = (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    import json

    context = json.loads(next(line["line"] for line in logs if line["stream"] == "stdout"))
    assert context["execution"]["id"] == done["id"]
    assert context["job"]["id"] == done["jobs"][0]["id"]
    assert context["job"]["mode"] == "local"
    assert context["user"]["email"] == "user@example.com"
    assert context["event"]["language"] == "bash"


async def test_a_missing_variable_is_404_and_put_creates_it(
    api: dict[str, Api], node: Node
) -> None:
    script = f"""
{CURL} -o /dev/null -w '%{{http_code}}\\n' http://cronium/runtime/v1/variables/nope
{CURL} -X PUT -d '{{"value": "v1"}}' http://cronium/runtime/v1/variables/made
{CURL} -X POST -d '{{"by": 5}}' http://cronium/runtime/v1/variables/count/increment
"""
    done = await run_script(api["user"], script)
    logs = [
        line["line"]
        for line in (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    ]
    assert "404" in logs
    variables = {
        v["key"]: v["value"] for v in (await api["user"].get("/variables")).json()["items"]
    }
    assert variables["made"] == "v1"
    assert variables["count"] == 5


async def test_an_oversized_output_is_refused_with_413(api: dict[str, Api], node: Node) -> None:
    script = f"""
python3 -c 'import json; print(json.dumps({{"value": "x" * 2000000}}))' > big.json
{CURL} -o /dev/null -w '%{{http_code}}\\n' -X PUT --data-binary @big.json http://cronium/runtime/v1/output
"""
    done = await run_script(api["user"], script)
    logs = [
        line["line"]
        for line in (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    ]
    assert "413" in logs


async def test_a_token_is_useless_after_its_job_ended(
    api: dict[str, Api], node: Node, runtime_socket: Path
) -> None:
    saved = runtime_socket.parent / "token"
    done = await run_script(
        api["user"],
        f'echo "token=$CRONIUM_EXECUTION_TOKEN"; printf %s "$CRONIUM_EXECUTION_TOKEN" > {saved}',
    )
    logs = [
        line["line"]
        for line in (await api["user"].get(f"/executions/{done['id']}/logs")).json()["items"]
    ]
    # The token is masked in the stored log: the script cannot leak it through output.
    assert "token=********" in logs
    token = saved.read_text()
    assert token.startswith("cxt_")
    async with httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(runtime_socket)), base_url="http://x"
    ) as c:
        for bad in (token, "cxt_not-a-real-token"):
            resp = await c.get("/runtime/v1/input", headers={"Authorization": f"Bearer {bad}"})
            assert resp.status_code == 401
            assert resp.json()["error"]["code"] == "unauthorized"
        other = await c.get("/api/v1/events")
        assert other.status_code == 404  # only /runtime/ answers on the socket


async def test_a_script_writing_a_secret_variable_keeps_it_secret(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    made = await api["user"].post(
        "/variables", json={"key": "vault", "value": "old-secret", "secret": True}
    )
    assert made.status_code == 201, made.text
    script = f"""
{CURL} -X PUT -d '{{"value": "new-secret-4e1d"}}' http://cronium/runtime/v1/variables/vault; echo
{CURL} -X PUT -d '{{"value": "in-clear"}}' http://cronium/runtime/v1/variables/plain; echo
{CURL} -X PUT -d '{{"value": "changed"}}' http://cronium/runtime/v1/variables/plain; echo
{CURL} http://cronium/runtime/v1/variables/vault; echo
"""
    done = await run_script(api["user"], script)
    assert done["status"] == "succeeded", done
    async with core.db.acquire() as conn:
        rows = {
            r["key"]: r
            for r in await conn.fetch(
                "SELECT key, value, value_encrypted, secret FROM variables WHERE key = ANY($1)",
                ["vault", "plain"],
            )
        }
    assert rows["vault"]["secret"] is True
    assert rows["vault"]["value"] is None
    assert core.cipher.decrypt_json(rows["vault"]["value_encrypted"]) == "new-secret-4e1d"
    assert rows["plain"]["secret"] is False
    assert rows["plain"]["value"] == "changed"
    assert rows["plain"]["value_encrypted"] is None
    logs = await log_lines(api["user"], done["id"])
    assert logs[:3] == ['{"ok":true}'] * 3
    # The script may read its owner's secret back, but its log never shows the new value:
    # a secret written through the Runtime API joins the job's masker at once.
    assert logs[3] == '{"key":"vault","value":"********"}'


async def test_the_socket_answers_what_it_does_not_serve_directly_like_the_routes(
    api: dict[str, Api], node: Node
) -> None:
    code = "-o /dev/null -w '%{http_code}\\n'"
    script = f"""
{CURL} -X PATCH http://cronium/runtime/v1/output; echo
{CURL} http://cronium/runtime/v1/nothing-here; echo
{CURL} {code} -X HEAD http://cronium/runtime/v1/context
{CURL} {code} -X DELETE http://cronium/runtime/v1/variables/never-made
"""
    done = await run_script(api["user"], script)
    assert done["status"] == "succeeded", done
    logs = await log_lines(api["user"], done["id"])
    errors = [json.loads(line)["error"] for line in logs if line.startswith("{")]
    assert [e["code"] for e in errors] == ["method_not_allowed", "not_found"]
    assert logs[-2:] == ["405", "404"]  # the routes serve no HEAD


async def test_the_rate_limit_answers_429_with_retry_after_over_the_socket(
    api: dict[str, Api], node: Node, core: Core
) -> None:
    core.settings.runtime_rate_limit_per_s = 2
    script = f"""
for i in 1 2 3; do {CURL} -o /dev/null -w '%{{http_code}}\\n' http://cronium/runtime/v1/context; done
{CURL} -D - -o /dev/null http://cronium/runtime/v1/input | tr -d '\\r' | grep -i '^retry-after:'
"""
    done = await run_script(api["user"], script)
    logs = await log_lines(api["user"], done["id"])
    assert logs[:3] == ["200", "200", "429"], logs
    assert int(logs[3].split(":", 1)[1]) >= 1, logs


async def log_lines(api: Api, execution_id: int) -> list[str]:
    items = (await api.get(f"/executions/{execution_id}/logs")).json()["items"]
    return [item["line"] for item in items if item["stream"] == "stdout"]


async def test_the_socket_and_the_main_port_answer_alike(
    api: dict[str, Api], node: Node, client: httpx.AsyncClient, runtime_socket: Path
) -> None:
    """The socket serves calls directly, the main port through the routes: same answers."""
    folder = runtime_socket.parent
    created = await api["user"].post(
        "/events",
        json={
            "name": "rt-both-ways",
            "language": "bash",
            "content": f'printf %s "$CRONIUM_EXECUTION_TOKEN" > {folder}/token.tmp\n'
            f"mv {folder}/token.tmp {folder}/token\n"
            f"while [ ! -e {folder}/done ]; do sleep 0.05; done",
        },
    )
    run = await api["user"].post(f"/events/{created.json()['id']}/run", json={"input": {"n": 1}})
    execution_id = run.json()["execution_id"]
    for _ in range(400):
        if (folder / "token").exists():
            break
        await asyncio.sleep(0.05)
    token = (folder / "token").read_text()
    auth = {"Authorization": f"Bearer {token}"}

    async def answers(c: httpx.AsyncClient, key: str) -> list[tuple[int, str]]:
        v = f"/runtime/v1/variables/{key}"
        calls: list[tuple[str, str, Any]] = [
            ("GET", "/runtime/v1/input", None),
            ("PUT", "/runtime/v1/output", {"value": {"a": [1, "ü"]}}),
            ("PUT", "/runtime/v1/condition", {"value": "yes"}),
            ("PUT", "/runtime/v1/condition", True),
            ("GET", "/runtime/v1/condition", None),
            ("GET", "/runtime/v1/context", None),
            ("GET", v, None),
            ("PUT", v, {"value": 2}),
            ("GET", v, None),
            ("POST", v + "/increment", {"by": 3}),
            ("POST", v + "/append", {"value": 1}),
            ("DELETE", v, None),
            ("DELETE", v, None),
            ("PUT", "/runtime/v1/variables/bad key!", {"value": 1}),
            ("POST", "/runtime/v1/tool-actions", {"tool": "slack", "action": "send_message"}),
        ]
        out = []
        for method, path, body in calls:
            resp = await c.request(method, path, json=body, headers=auth)
            out.append((resp.status_code, resp.text.replace(key, "KEY")))
        resp = await c.get("/runtime/v1/input", headers={"Authorization": "Bearer cxt_nope"})
        out.append((resp.status_code, resp.text))
        return out

    try:
        transport = httpx.AsyncHTTPTransport(uds=str(runtime_socket))
        async with httpx.AsyncClient(transport=transport, base_url="http://cronium") as socket:
            over_socket = await answers(socket, "via_socket")
        over_port = await answers(client, "via_port")
    finally:
        (folder / "done").touch()
    await wait_for_status(api["user"], execution_id)
    assert over_socket == over_port
    statuses = [status for status, _ in over_socket]
    assert statuses == [
        200,
        200,
        422,
        200,
        200,
        200,
        404,
        200,
        200,
        200,
        422,
        204,
        404,
        422,
        422,
        401,
    ]
    assert json.loads(over_socket[0][1]) == {"value": {"n": 1}}
