"""One run of the whole corpus, and everything it left where a secret could come out.

The owner gets the secrets (secret variables, event env, a webhook credential, a server
password, a webhook secret); then, all at once: the three corpus scripts, two HTTP
events and a tool event against a loopback receiver that answers with secrets, a failing
event whose failure notification fails, a workflow whose node outputs secrets, a
credential test and an unsigned webhook call. Each execution is followed live over the
WebSocket stream from its start.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Api, wait_for_status
from tests.security.leak_cases import CASES, OUTPUTS
from tests.security.leak_corpus import SCRIPTS, Secrets, forbidden
from tests.security.leak_harness import (
    RECEIVER_PREFIX,
    Env,
    all_logs,
    follow,
    stored_text,
    wait_for_line,
)
from tests.support.runs import create_event, run
from tests.support.tool_receivers import Answer

NOTIFY_FAILED = "webhook action send failed"
TERMINAL = ("succeeded", "failed", "timed_out", "cancelled", "partial")


@dataclass
class Corpus:
    secrets: Secrets
    ids: dict[str, int]  # events, credential, workflow by name
    executions: dict[str, int]
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    streams: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    workflow_run: dict[str, Any] = field(default_factory=dict)
    credential_test: dict[str, Any] = field(default_factory=dict)
    webhook_key: str = ""
    # Where a secret could come out, by kind: (what exactly, its text).
    surfaces: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # {form: the secret it shows}: every claimed form of every secret of the run.
    forbidden: dict[str, str] = field(default_factory=dict)


async def _created(api: Api, path: str, body: dict[str, Any]) -> int:
    resp = await api.post(path, json=body)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def _give_secrets(env: Env, s: Secrets) -> dict[str, int]:
    api, receiver = env.api, env.receiver
    for key, value in s.variables.items():
        await _created(api, "/variables", {"key": key, "value": value, "secret": True})
    hook = f"{RECEIVER_PREFIX}hook/{s.hook_path}"
    receiver.defaults[hook] = Answer(
        401, {"error": "bad signature", "got": s.header, "url": receiver.url + hook}
    )
    # Owner-wide secrets (variables): an event's env is masked only in that event's runs.
    session = s.svc["password"]
    receiver.defaults[f"{RECEIVER_PREFIX}token"] = Answer(
        200, {"access_token": s.fancy}, {"X-Session": session}
    )
    receiver.defaults[f"{RECEIVER_PREFIX}denied"] = Answer(
        403, {"error": "expired", "token": session}
    )
    config = {"url": receiver.url + hook, "headers": {"X-Signature": s.header}}
    credential = await _created(
        api, "/credentials", {"name": "hook", "tool": "webhook", "config": config}
    )
    auth = {"type": "password", "password": s.server_password}
    await _created(
        api,
        "/servers",
        {"name": "vault", "host": "127.0.0.1", "port": 22, "username": "ops", "auth": auth},
    )
    return {"credential": credential}


async def _events(env: Env, s: Secrets, credential: int) -> dict[str, int]:
    api, url = env.api, env.receiver.url
    ids: dict[str, int] = {}
    for language, build in SCRIPTS.items():
        cases = [case for case in CASES if case.language == language]
        content = build(cases, str(env.folder / f"{language}.token"), OUTPUTS[language][0])
        ids[f"corpus-{language}"] = await create_event(
            api, name=f"corpus-{language}", language=language, content=content, env=s.env
        )
    for name in ("http-token", "http-denied"):
        http = {"method": "GET", "url": f"{url}{RECEIVER_PREFIX}{name.removeprefix('http-')}"}
        ids[name] = await create_event(api, name=name, type="http", http=http)
    send = {"credential_id": credential, "action": "webhook.send", "params": {"json": {"x": 1}}}
    ids["tool-send"] = await create_event(api, name="tool-send", type="tool", tool=send)
    notify = {"on": "on_failure", "type": "tool", **send}
    ids["notify-on-failure"] = await create_event(
        api, name="notify-on-failure", content="exit 1", actions=[notify]
    )
    node_script = (
        "import os\nprint('node', os.environ['SIMPLE'])\n"
        "cronium.output({'token': cronium.get_variable('fancy'), 'env': os.environ['SIMPLE']})"
    )
    ids["workflow-node"] = await create_event(
        api, name="workflow-node", language="python", content=node_script, env=s.env
    )
    nodes = [{"key": "leak", "event_id": ids["workflow-node"]}]
    ids["workflow"] = await _created(api, "/workflows", {"name": "wf", "nodes": nodes, "edges": []})
    hook = {"enabled": True, "secret": s.webhook_secret}
    ids["hooked"] = await create_event(api, name="hooked", webhook=hook)
    return ids


async def _workflow_run(api: Api, workflow_id: int) -> dict[str, Any]:
    resp = await api.post(f"/workflows/{workflow_id}/run")
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["run_id"]
    async with asyncio.timeout(60):
        while True:
            body: dict[str, Any] = (await api.get(f"/workflow-runs/{run_id}")).json()
            if body["status"] in TERMINAL:
                return body
            await asyncio.sleep(0.1)


async def run_corpus(env: Env, s: Secrets) -> Corpus:
    api = env.api
    ids = await _give_secrets(env, s)
    ids |= await _events(env, s, ids["credential"])
    names = ["corpus-bash", "corpus-python", "corpus-node", "http-token", "http-denied"]
    names += ["tool-send", "notify-on-failure"]
    executions = {name: await run(api, ids[name]) for name in names}
    following = {
        name: asyncio.create_task(follow(env.server, env.token, ex))
        for name, ex in executions.items()
    }
    corpus = Corpus(s, ids, executions)
    corpus.workflow_run = await _workflow_run(api, ids["workflow"])
    executions["workflow-node"] = corpus.workflow_run["nodes"][0]["execution_id"]
    for name, ex in executions.items():
        corpus.details[name] = await wait_for_status(api, ex, timeout_s=90)
    await wait_for_line(api, executions["notify-on-failure"], NOTIFY_FAILED)
    corpus.streams = {name: await task for name, task in following.items()}
    corpus.streams["workflow-node"] = await follow(
        env.server, env.token, executions["workflow-node"]
    )
    for name, ex in executions.items():
        corpus.logs[name] = await all_logs(api, ex)
    tested = await api.post(f"/credentials/{ids['credential']}/test")
    assert tested.status_code == 200, tested.text
    corpus.credential_test = tested.json()
    corpus.webhook_key = (await api.get(f"/events/{ids['hooked']}")).json()["webhook"]["key"]
    refused = await env.web.post(f"/api/v1/webhooks/{corpus.webhook_key}", json={})
    assert refused.status_code == 401, refused.text
    await _collect(env, corpus, refused.text)
    corpus.forbidden = forbidden([*s.strings(), *await _runtime_secrets(env)])
    return corpus


async def _runtime_secrets(env: Env) -> list[str]:
    """Secrets born during the run: the scripts' execution tokens (the scripts wrote them to
    files: the local executor shares this host) and the value the bash run rotated to."""
    tokens = [(env.folder / f"{lang}.token").read_text() for lang in SCRIPTS]
    async with env.core.db.acquire() as conn:
        blob = await conn.fetchval("SELECT value_encrypted FROM variables WHERE key = 'rotated'")
    rotated = env.core.cipher.decrypt_json(blob)
    assert all(t.startswith("cxt_") for t in tokens), tokens
    assert isinstance(rotated, str) and rotated.startswith("rot-"), "the bash run did not rotate"
    return [*tokens, rotated]


def _lines(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("line", "")) for m in messages)


async def _collect(env: Env, corpus: Corpus, webhook_refusal: str) -> None:
    api, ids, ex = env.api, corpus.ids, corpus.executions
    surfaces: dict[str, list[tuple[str, str]]] = {
        "stored log": [(n, _lines(items)) for n, items in corpus.logs.items()],
        "live stream": [(n, json.dumps(m, ensure_ascii=False)) for n, m in corpus.streams.items()],
        "live stream lines": [(n, _lines(m)) for n, m in corpus.streams.items()],
        "credential test": [("POST /credentials/{id}/test", json.dumps(corpus.credential_test))],
        "webhook refusal": [("POST /webhooks/{key}", webhook_refusal)],
        "server log": [("records", "\n".join(env.records.lines))],
        "database": [
            ("log_lines, jobs, executions, deliveries", "\n".join(await stored_text(env.core)))
        ],
    }
    run_id = corpus.workflow_run["id"]
    paths = ["/events?limit=100", "/variables?limit=100", "/credentials", "/servers"]
    paths += [f"/events/{ids[n]}" for n in ids if n not in ("credential", "workflow")]
    paths += [f"/credentials/{ids['credential']}", f"/workflows/{ids['workflow']}"]
    paths += [f"/workflow-runs/{run_id}", f"/workflows/{ids['workflow']}/runs"]
    paths += ["/executions?limit=100", *(f"/executions/{i}" for i in ex.values())]
    paths += [f"/executions/{i}/logs?limit=10000" for i in ex.values()]
    surfaces["REST API"] = [(p, (await api.get(p)).text) for p in paths]
    pages = ["/executions", "/events", "/variables", "/credentials", "/servers", "/workflows"]
    pages += [f"/executions/{i}" for i in ex.values()]
    pages += [f"/executions/{i}/summary" for i in ex.values()]
    pages += [f"/events/{ids[n]}" for n in ("corpus-bash", "http-token", "tool-send", "hooked")]
    pages += [f"/events/{ids['corpus-python']}/edit", f"/credentials/{ids['credential']}"]
    pages += [f"/workflows/{ids['workflow']}", f"/workflow-runs/{run_id}"]
    found = []
    for page in pages:
        resp = await env.web.get(page)
        assert resp.status_code == 200, f"{page}: {resp.status_code}"
        found.append((page, resp.text))
    surfaces["pages"] = found
    surfaces["run details"] = [
        (n, json.dumps(d, ensure_ascii=False)) for n, d in corpus.details.items()
    ]
    corpus.surfaces = surfaces
