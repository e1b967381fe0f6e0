"""The Python, Node.js and Bash SDKs end to end: real events run by the engine with the
local executor, talking to the Runtime API over its Unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cronium.engine.node import Node
from cronium.sdk import SDK_DIR, preload_env
from tests.conftest import Api, wait_for_status

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

# No credential exists in these tests: the server refuses the action with a clear 422.
TOOL_ERROR = "credential: add one, or pass credential_id"


async def create_event(api: Api, language: str, content: str, **fields: Any) -> int:
    body = {
        "name": f"sdk-{language}-{time.monotonic_ns()}",
        "language": language,
        "content": content,
    }
    resp = await api.post("/events", json={**body, **fields})
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


async def start(api: Api, event_id: int, **body: Any) -> int:
    resp = await api.post(f"/events/{event_id}/run", json=body or None)
    assert resp.status_code == 202, resp.text
    return int(resp.json()["execution_id"])


async def run_script(
    api: Api, language: str, content: str, timeout_s: float = 60, **body: Any
) -> dict[str, Any]:
    event_id = await create_event(api, language, content)
    return await wait_for_status(api, await start(api, event_id, **body), timeout_s=timeout_s)


async def log_lines(api: Api, execution_id: int, stream: str | None = None) -> list[str]:
    items = (await api.get(f"/executions/{execution_id}/logs")).json()["items"]
    return [item["line"] for item in items if stream is None or item["stream"] == stream]


async def variables(api: Api) -> dict[str, Any]:
    resp = await api.get("/variables", params={"limit": 200})
    assert resp.status_code == 200, resp.text
    return {v["key"]: v["value"] for v in resp.json()["items"]}


def tagged(lines: list[str], tag: str) -> str:
    """The rest of the first log line starting with `tag `."""
    for line in lines:
        if line.startswith(tag + " "):
            return line[len(tag) + 1 :]
    raise AssertionError(f"no log line starting with {tag!r} in {lines}")


async def assert_succeeded(api: Api, done: dict[str, Any]) -> list[str]:
    lines = await log_lines(api, done["id"])
    assert done["status"] == "succeeded", (done, lines)
    return lines


async def run_outside(
    command: list[str], env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run a process without blocking the event loop (the Runtime API serves from it)."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def sdk_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        **preload_env(str(SDK_DIR)),
        **extra,
    }


# -- Python --------------------------------------------------------------------------------

PYTHON_ALL = r"""
import json, os

inp = cronium.input()
print("input", json.dumps(inp, sort_keys=True))
print("getInput", json.dumps(cronium.getInput(), sort_keys=True))
ctx = cronium.event()
print("event.name", ctx["event"]["name"])
print("job.mode", ctx["job"]["mode"])
print("same_execution", ctx["execution"]["id"] == int(os.environ["CRONIUM_EXECUTION_ID"]))
print("info", json.dumps(cronium.info(), sort_keys=True))
print("missing", repr(cronium.get_variable("py_missing")), repr(cronium.getVariable("py_missing")))
print("missing_default", cronium.get_variable("py_missing", "dflt"))
print("exists_before", cronium.variable_exists("py_var"), cronium.variableExists("py_var"))
cronium.set_variable("py_var", {"a": 1, "s": "ü"})
print("get", json.dumps(cronium.get_variable("py_var"), sort_keys=True, ensure_ascii=False))
print("exists_after", cronium.variable_exists("py_var"))
cronium.setVariable("py_camel", "camel")
print("camel", cronium.getVariable("py_camel"))
cronium.set_variable("py_temp", 1)
print("deleted", cronium.delete_variable("py_temp"), cronium.deleteVariable("py_temp"))
cronium.set_variable("py_temp2", 2)
print("deleted_camel", cronium.deleteVariable("py_temp2"))
print("inc", cronium.increment_variable("py_count"), cronium.increment_variable("py_count", by=5),
      cronium.incrementVariable("py_count", 0.5))
print("append", cronium.append_variable("py_list", "a"),
      cronium.appendVariable("py_list", {"b": 2}))
print("cond_before", cronium.get_condition())
cronium.set_condition(True)
print("cond_after", cronium.getCondition())
cronium.setCondition(True)
for name, call in [
    ("execute_tool_action",
     lambda: cronium.execute_tool_action("slack", "send_message", {"text": "x"})),
    ("executeToolAction",
     lambda: cronium.executeToolAction("slack", "send_message", {"text": "x"})),
    ("send_email", lambda: cronium.send_email("a@example.com", "subject", "body", html="<b>b</b>")),
    ("sendEmail", lambda: cronium.sendEmail("a@example.com", "subject", "body")),
    ("send_slack_message", lambda: cronium.send_slack_message("hi", channel="#general")),
    ("sendSlackMessage", lambda: cronium.sendSlackMessage("hi")),
    ("send_discord_message", lambda: cronium.send_discord_message("hi")),
    ("sendDiscordMessage", lambda: cronium.sendDiscordMessage("hi")),
]:
    try:
        call()
        print("tool_ok", name)
    except cronium.CroniumError as exc:
        print("tool_error", name, type(exc).__name__, exc.status, exc)
cronium.output({"ok": True, "n": inp["n"], "text": inp["text"]})
"""


async def test_python_preloaded_uses_every_function(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "python", PYTHON_ALL, input={"n": 7, "text": "héllo"})
    lines = await assert_succeeded(user, done)
    assert json.loads(tagged(lines, "input")) == {"n": 7, "text": "héllo"}
    assert json.loads(tagged(lines, "getInput")) == {"n": 7, "text": "héllo"}
    assert tagged(lines, "event.name").startswith("sdk-python-")
    assert tagged(lines, "job.mode") == "local"
    assert tagged(lines, "same_execution") == "True"
    info = json.loads(tagged(lines, "info"))
    assert info["execution_id"] == str(done["id"]) and info["mode"] == "local"
    assert tagged(lines, "missing") == "None None"
    assert tagged(lines, "missing_default") == "dflt"
    assert tagged(lines, "exists_before") == "False False"
    assert json.loads(tagged(lines, "get")) == {"a": 1, "s": "ü"}
    assert tagged(lines, "exists_after") == "True"
    assert tagged(lines, "camel") == "camel"
    assert tagged(lines, "deleted") == "True False"
    assert tagged(lines, "deleted_camel") == "True"
    assert tagged(lines, "inc") == "1 6 6.5"
    assert tagged(lines, "append") == "1 2"
    assert tagged(lines, "cond_before") == "None"
    assert tagged(lines, "cond_after") == "True"
    tool_lines = [line for line in lines if line.startswith("tool_")]
    assert len(tool_lines) == 8, tool_lines
    for line in tool_lines:
        assert line.startswith("tool_error "), line
        assert "CroniumError 422" in line and TOOL_ERROR in line, line
        assert "POST /runtime/v1/tool-actions" in line, line

    assert done["output"] == {"ok": True, "n": 7, "text": "héllo"}
    assert done["condition"] is True
    stored = await variables(user)
    assert stored["py_var"] == {"a": 1, "s": "ü"}
    assert stored["py_camel"] == "camel"
    assert "py_temp" not in stored and "py_temp2" not in stored
    assert stored["py_count"] == 6.5
    assert stored["py_list"] == ["a", {"b": 2}]


PYTHON_IMPORT = r"""
import cronium
from cronium import CroniumError, get_variable

inp = cronium.input()
print("input", inp)
print("missing", get_variable("nope"))
cronium.set_variable("py_import", [1, 2, 3])
print("get", cronium.get_variable("py_import"))
cronium.set_condition(False)
try:
    cronium.execute_tool_action("email", "send", {"to": "a@example.com"})
except CroniumError as exc:
    print("tool_error", exc)
cronium.output("plain text")
"""


async def test_python_explicit_import(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "python", PYTHON_IMPORT, input=[1, "two"])
    lines = await assert_succeeded(user, done)
    assert tagged(lines, "input") == "[1, 'two']"
    assert tagged(lines, "missing") == "None"
    assert tagged(lines, "get") == "[1, 2, 3]"
    assert TOOL_ERROR in tagged(lines, "tool_error")
    assert done["output"] == "plain text"
    assert done["condition"] is False
    assert (await variables(user))["py_import"] == [1, 2, 3]


async def test_an_uncaught_sdk_error_fails_the_python_script(
    api: dict[str, Api], node: Node
) -> None:
    done = await run_script(api["user"], "python", 'cronium.send_email("a@b.c", "s", "b")')
    stderr = "\n".join(await log_lines(api["user"], done["id"], "stderr"))
    assert done["status"] == "failed"
    assert done["jobs"][0]["exit_code"] == 1
    assert "cronium.CroniumError" in stderr and TOOL_ERROR in stderr


async def test_python_outside_cronium_is_unaffected(tmp_path: Path) -> None:
    """The pre-load never breaks a plain python3 run; using the SDK there fails clearly."""
    env = sdk_env()
    code, out, err = await run_outside(["python3", "-c", "print('plain', 1 + 1)"], env)
    assert (code, out, err) == (0, "plain 2\n", "")
    script = (
        "try:\n    cronium.get_variable('x')\n"
        "except cronium.CroniumError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    code, out, err = await run_outside(["python3", "-c", script], env)
    assert code == 0, err
    assert "CroniumError CRONIUM_RUNTIME_URL is not set" in out


# -- Node.js ---------------------------------------------------------------------------------

NODE_ALL = r"""
(async () => {
  const inp = await cronium.input();
  console.log('input', JSON.stringify(inp));
  console.log('getInput', JSON.stringify(await cronium.getInput()));
  const ctx = await cronium.event();
  console.log('event.name', ctx.event.name);
  console.log('job.mode', ctx.job.mode);
  console.log('same_execution', ctx.execution.id === Number(process.env.CRONIUM_EXECUTION_ID));
  console.log('info', JSON.stringify(cronium.info()));
  console.log('missing', JSON.stringify(await cronium.getVariable('js_missing')));
  console.log('missing_default', await cronium.getVariable('js_missing', 'dflt'));
  console.log('exists_before', await cronium.variableExists('js_var'));
  await cronium.setVariable('js_var', { a: 1, s: 'ü' });
  console.log('get', JSON.stringify(await cronium.getVariable('js_var')));
  console.log('exists_after', await cronium.variableExists('js_var'));
  await cronium.setVariable('js_temp', 1);
  const first = await cronium.deleteVariable('js_temp');
  console.log('deleted', first, await cronium.deleteVariable('js_temp'));
  const one = await cronium.incrementVariable('js_count');
  console.log('inc', one, await cronium.incrementVariable('js_count', 5));
  const len = await cronium.appendVariable('js_list', 'a');
  console.log('append', len, await cronium.appendVariable('js_list', { b: 2 }));
  console.log('cond_before', await cronium.getCondition());
  await cronium.setCondition(true);
  console.log('cond_after', await cronium.getCondition());
  const calls = {
    executeToolAction: () => cronium.executeToolAction('slack', 'send_message', { text: 'x' }),
    sendEmail: () => cronium.sendEmail('a@example.com', 'subject', 'body', { html: '<b>b</b>' }),
    sendEmailObject: () => cronium.sendEmail({ to: 'a@example.com', subject: 's', body: 'b' }),
    sendSlackMessage: () => cronium.sendSlackMessage('hi', { channel: '#general' }),
    sendDiscordMessage: () => cronium.sendDiscordMessage('hi'),
  };
  for (const [name, call] of Object.entries(calls)) {
    try {
      await call();
      console.log('tool_ok', name);
    } catch (err) {
      const isError = err instanceof cronium.CroniumError;
      console.log('tool_error', name, isError, err.name, err.status, err.message);
    }
  }
  await cronium.output({ ok: true, n: inp.n });
  console.log('done');
})().catch((err) => { console.error(err); process.exit(1); });
"""


@needs_node
async def test_node_preloaded_uses_every_function(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "node", NODE_ALL, input={"n": 3})
    lines = await assert_succeeded(user, done)
    assert json.loads(tagged(lines, "input")) == {"n": 3}
    assert json.loads(tagged(lines, "getInput")) == {"n": 3}
    assert tagged(lines, "event.name").startswith("sdk-node-")
    assert tagged(lines, "job.mode") == "local"
    assert tagged(lines, "same_execution") == "true"
    info = json.loads(tagged(lines, "info"))
    assert info == {
        "executionId": str(done["id"]),
        "jobId": str(done["jobs"][0]["id"]),
        "eventId": str(done["event_id"]),
        "mode": "local",
    }
    assert tagged(lines, "missing") == "null"
    assert tagged(lines, "missing_default") == "dflt"
    assert tagged(lines, "exists_before") == "false"
    assert json.loads(tagged(lines, "get")) == {"a": 1, "s": "ü"}
    assert tagged(lines, "exists_after") == "true"
    assert tagged(lines, "deleted") == "true false"
    assert tagged(lines, "inc") == "1 6"
    assert tagged(lines, "append") == "1 2"
    assert tagged(lines, "cond_before") == "null"
    assert tagged(lines, "cond_after") == "true"
    tool_lines = [line for line in lines if line.startswith("tool_")]
    assert len(tool_lines) == 5, tool_lines
    for line in tool_lines:
        assert line.startswith("tool_error ") and "true CroniumError 422" in line, line
        assert TOOL_ERROR in line, line
    assert "done" in lines
    assert done["output"] == {"ok": True, "n": 3}
    assert done["condition"] is True
    stored = await variables(user)
    assert stored["js_var"] == {"a": 1, "s": "ü"}
    assert "js_temp" not in stored
    assert stored["js_count"] == 6
    assert stored["js_list"] == ["a", {"b": 2}]


NODE_REQUIRE = r"""
const sdk = require('cronium');
const { CroniumError } = require('cronium');
console.log('same_module', sdk === globalThis.cronium);
sdk.input().then(async (inp) => {
  console.log('input', JSON.stringify(inp));
  await sdk.setVariable('js_require', 'required');
  console.log('get', await sdk.getVariable('js_require'));
  await sdk.setCondition(false);
  try {
    await sdk.executeToolAction('discord', 'send_message', { content: 'x' });
  } catch (err) {
    console.log('tool_error', err instanceof CroniumError, err.message);
  }
  await sdk.output([inp, 'ok']);
});
"""


@needs_node
async def test_node_explicit_require(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "node", NODE_REQUIRE, input=["in"])
    lines = await assert_succeeded(user, done)
    assert tagged(lines, "same_module") == "true"
    assert tagged(lines, "input") == '["in"]'
    assert tagged(lines, "get") == "required"
    assert tagged(lines, "tool_error").startswith("true ")
    assert TOOL_ERROR in tagged(lines, "tool_error")
    assert done["output"] == [["in"], "ok"]
    assert done["condition"] is False


@needs_node
async def test_node_top_level_await_uses_the_global(api: dict[str, Api], node: Node) -> None:
    """Node ≥ 20.19 runs a script with top-level await as an ES module: the global works."""
    script = "const v = await cronium.input();\nawait cronium.output({ got: v });\n"
    done = await run_script(api["user"], "node", script, input=5)
    await assert_succeeded(api["user"], done)
    assert done["output"] == {"got": 5}


@needs_node
async def test_node_preload_is_silent_and_lets_the_process_exit(tmp_path: Path) -> None:
    env = sdk_env()
    began = time.monotonic()
    code, out, err = await run_outside(
        [str(NODE), "-e", "console.log(typeof cronium, typeof cronium.getVariable)"], env
    )
    assert (code, out, err) == (0, "object function\n", "")
    # A call that fails (no Runtime API here) must not leave anything keeping Node alive.
    script = "cronium.getVariable('x').catch((e) => console.log(e.name, e.message.split(':')[0]));"
    code, out, err = await run_outside([str(NODE), "-e", script], env)
    assert (code, err) == (0, "")
    assert out == "CroniumError CRONIUM_RUNTIME_URL is not set\n"
    assert time.monotonic() - began < 10


# -- Bash --------------------------------------------------------------------------------------

BASH_ALL = r"""
echo "input $(cronium_input)"
echo "dotted_input $(cronium.input)"
echo "event.name $(cronium_event_field event.name)"
echo "job.mode $(cronium_event_field job.mode)"
echo "execution.id $(cronium_event_field execution.id) $CRONIUM_EXECUTION_ID"
echo "event_json $(cronium_event | tr -d '\n')"
echo "dotted_event $(cronium.event | tr -d '\n')"
cronium_event_field event.nope; echo "field_missing_rc $?"
echo "info $(cronium_info | tr '\n' ' ')"
value=$(cronium_get_variable sh_missing); echo "missing [$value] $?"
cronium_get_variable sh_missing; echo "missing_rc $?"
cronium_variable_exists sh_var; echo "exists_before $?"
cronium_set_variable sh_var 'hello "world"'
echo "get [$(cronium_get_variable sh_var)]"
cronium_variable_exists sh_var; echo "exists_after $?"
cronium_set_variable sh_json '{"a": [1, 2]}'
echo "get_json $(cronium_get_variable sh_json)"
cronium_set_variable sh_num 42
echo "get_num $(cronium_get_variable sh_num)"
printf 'line one\nline two' | cronium_set_variable sh_stdin
cronium.setVariable sh_dotted dotted
echo "dotted_get $(cronium.getVariable sh_dotted)"
cronium_set_variable sh_temp 1
cronium_delete_variable sh_temp; echo "deleted $?"
cronium_delete_variable sh_temp; echo "deleted_again $?"
echo "inc $(cronium_increment_variable sh_count) $(cronium_increment_variable sh_count 5)"
echo "append $(cronium_append_variable sh_list a) $(cronium_append_variable sh_list '{"b": 2}')"
echo "cond_before $(cronium_get_condition)"
cronium_set_condition true
echo "cond_after $(cronium_get_condition)"
for call in "cronium_execute_tool_action slack send_message {\"text\":\"x\"}" \
            "cronium_send_email a@example.com subject body --html <b>b</b>" \
            "cronium_send_slack_message hi --channel #general" \
            "cronium_send_discord_message hi"; do
    err=$($call 2>&1 >/dev/null); rc=$?
    echo "tool_error ${call%% *} rc=$rc $err"
done
cronium.output '{"ok": true, "from": "bash"}'
echo done
"""


@needs_curl
async def test_bash_preloaded_uses_every_function(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "bash", BASH_ALL, input={"n": 1, "s": "x"})
    lines = await assert_succeeded(user, done)
    assert json.loads(tagged(lines, "input")) == {"n": 1, "s": "x"}
    assert json.loads(tagged(lines, "dotted_input")) == {"n": 1, "s": "x"}
    assert tagged(lines, "event.name").startswith("sdk-bash-")
    assert tagged(lines, "job.mode") == "local"
    assert tagged(lines, "execution.id") == f"{done['id']} {done['id']}"
    context = json.loads(tagged(lines, "event_json"))
    assert context["execution"]["id"] == done["id"]
    assert context["job"]["mode"] == "local"
    assert json.loads(tagged(lines, "dotted_event")) == context
    assert tagged(lines, "field_missing_rc") == "1"
    assert tagged(lines, "info").split() == [
        f"execution_id={done['id']}",
        f"job_id={done['jobs'][0]['id']}",
        f"event_id={done['event_id']}",
        "mode=local",
    ]
    assert tagged(lines, "missing") == "[] 1"
    assert tagged(lines, "missing_rc") == "1"
    assert tagged(lines, "exists_before") == "1"
    assert tagged(lines, "get") == '[hello "world"]'
    assert tagged(lines, "exists_after") == "0"
    assert tagged(lines, "get_json") == '{"a":[1,2]}'
    assert tagged(lines, "get_num") == "42"
    assert tagged(lines, "dotted_get") == "dotted"
    assert tagged(lines, "deleted") == "0"
    assert tagged(lines, "deleted_again") == "1"
    assert tagged(lines, "inc") == "1 6"
    assert tagged(lines, "append") == "1 2"
    assert tagged(lines, "cond_before") == "null"
    assert tagged(lines, "cond_after") == "true"
    tool_lines = [line for line in lines if line.startswith("tool_error ")]
    assert len(tool_lines) == 4, tool_lines
    for line in tool_lines:
        assert "rc=3 cronium: " in line and TOOL_ERROR in line, line
    assert "done" in lines
    assert done["output"] == {"ok": True, "from": "bash"}
    assert done["condition"] is True
    stored = await variables(user)
    assert stored["sh_var"] == 'hello "world"'
    assert stored["sh_json"] == {"a": [1, 2]}
    assert stored["sh_num"] == 42
    assert stored["sh_stdin"] == "line one\nline two"
    assert stored["sh_dotted"] == "dotted"
    assert "sh_temp" not in stored
    assert stored["sh_count"] == 6
    assert stored["sh_list"] == ["a", {"b": 2}]


# (text, whether the pure-Bash check must take it): only valid JSON may be taken; what it
# does not take goes to jq or python3.
FLAT_JSON_CASES = [
    ('{"total": 42}', True),
    ('[1, 2, "x"]', True),
    ('"text"', True),
    ('{"a": "b\\n", "c": null}', True),
    ("{}", True),
    (" [ ] ", True),
    ("\n[1]\r\n", True),
    ('{"a":1,"b":-0.5e+3,"c":true,"d":false,"e":"\\u00e9\\"\\\\\\/"}', True),
    ('{"" : "" , "k" : [] }', False),
    ("[-0, 1e5, 1E-5]", True),
    ('{"a":[1]}', False),
    ("[[1]]", False),
    ('"é"', False),
    ("[1,]", False),
    ('{"a":1,}', False),
    ('{"a"}', False),
    ("{a:1}", False),
    ("[01]", False),
    ("[1.]", False),
    ("[.5]", False),
    ("[-]", False),
    ('["\\x"]', False),
    ('["\\u12"]', False),
    ('"\t"', False),
    ('"a\nb"', False),
    ("[NaN]", False),
    ('"x" "y"', False),
    ('{"a":1}}', False),
    ("[1] x", False),
    ('"unterminated', False),
    ("[1 2]", False),
    ("[\v1]", False),
    ('["a\\', False),
    ("[tru]", False),
    ('"', False),
    ("[" + ",".join(["1"] * 2100) + "]", False),  # over 4 KiB: left to jq
]


@needs_curl
async def test_bash_checks_flat_json_without_a_process() -> None:
    texts = [text for text, _ in FLAT_JSON_CASES]
    script = 'for v in "$@"; do cronium__is_flat_json "$v"; echo "$?"; done'
    code, out, err = await run_outside(["bash", "-c", script, "check", *texts], sdk_env())
    assert (code, err) == (0, "")
    taken = [rc == "0" for rc in out.split()]
    for (text, expected), took in zip(FLAT_JSON_CASES, taken, strict=True):
        if took:
            json.loads(text)  # never anything but valid JSON
        assert took == expected, text


BASH_SOURCE = r"""
for f in $(compgen -A function cronium); do unset -f "$f"; done
type cronium_input >/dev/null 2>&1 && echo "still defined"
source "$BASH_ENV"
echo "input $(cronium_input)"
cronium_set_variable sh_sourced "text with spaces"
echo "get $(cronium_get_variable sh_sourced)"
cronium_set_condition false
echo "plain output" | cronium_output
"""


@needs_curl
async def test_bash_explicit_source(api: dict[str, Api], node: Node) -> None:
    user = api["user"]
    done = await run_script(user, "bash", BASH_SOURCE)
    lines = await assert_succeeded(user, done)
    assert "still defined" not in lines
    assert tagged(lines, "input") == "{}"
    assert tagged(lines, "get") == "text with spaces"
    assert done["output"] == "plain output"
    assert done["condition"] is False


@needs_curl
async def test_bash_sdk_is_silent_and_defines_only_cronium_names(tmp_path: Path) -> None:
    env = sdk_env()
    probe = tmp_path / "probe.sh"
    probe.write_text(
        'compgen -A function | grep -v "^cronium"\n'
        'compgen -v | sort > "$1"\n'
        'echo "opts=$-:$SHELLOPTS"\n'
    )
    code, out, err = await run_outside(["bash", str(probe), str(tmp_path / "with")], env)
    assert (code, err) == (0, "")
    plain = {**env, "BASH_ENV": "/dev/null"}
    code2, out2, err2 = await run_outside(["bash", str(probe), str(tmp_path / "without")], plain)
    assert (code2, err2) == (0, "")
    # No function but cronium*, same shell options, no new variable.
    assert out == out2
    assert (tmp_path / "with").read_text() == (tmp_path / "without").read_text()
    # Outside Cronium a call fails clearly and does not exit the shell.
    code, out, err = await run_outside(["bash", "-c", 'cronium_get_variable x; echo "rc=$?"'], env)
    assert out == "rc=5\n"
    assert "CRONIUM_RUNTIME_URL is not set" in err


# -- shared behaviour --------------------------------------------------------------------------


@needs_curl
async def test_increment_is_atomic_under_20_concurrent_runs(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    event_id = await create_event(user, "bash", "cronium_increment_variable counter")
    executions = [await start(user, event_id) for _ in range(20)]
    results = [await wait_for_status(user, ex, timeout_s=60) for ex in executions]
    assert [r["status"] for r in results] == ["succeeded"] * 20
    assert (await variables(user))["counter"] == 20


async def test_append_keeps_every_value_under_concurrent_runs(
    api: dict[str, Api], node: Node
) -> None:
    user = api["user"]
    script = "import os\ncronium.append_variable('seen', int(os.environ['CRONIUM_EXECUTION_ID']))"
    event_id = await create_event(user, "python", script)
    executions = [await start(user, event_id) for _ in range(8)]
    results = [await wait_for_status(user, ex, timeout_s=60) for ex in executions]
    assert [r["status"] for r in results] == ["succeeded"] * 8
    assert sorted((await variables(user))["seen"]) == sorted(executions)


@needs_curl
async def test_a_token_is_refused_after_its_job_ended(
    api: dict[str, Api], node: Node, runtime_socket: Path, tmp_path: Path
) -> None:
    user = api["user"]
    # Through a file: the run's output (like its log) has the token masked.
    kept = tmp_path / "token"
    done = await run_script(user, "bash", f'printf %s "$CRONIUM_EXECUTION_TOKEN" > {kept}')
    await assert_succeeded(user, done)
    token = kept.read_text()
    assert token.startswith("cxt_")
    transport = httpx.AsyncHTTPTransport(uds=str(runtime_socket))
    async with httpx.AsyncClient(transport=transport, base_url="http://cronium") as client:
        resp = await client.get("/runtime/v1/input", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"

    # Every SDK fails loudly with the server's message, and at once (no retries).
    env = sdk_env(CRONIUM_RUNTIME_URL=f"unix://{runtime_socket}", CRONIUM_EXECUTION_TOKEN=token)
    message = "execution token is invalid or its job has ended"
    began = time.monotonic()
    code, out, err = await run_outside(["python3", "-c", "cronium.get_variable('x')"], env)
    assert code == 1 and "cronium.CroniumAuthError" in err and "401 unauthorized" in err, err
    assert message in err
    script = (
        "try:\n    cronium.set_variable('x', 1)\n"
        "except cronium.CroniumAuthError as exc:\n    print(exc.status, exc.code)\n"
    )
    code, out, err = await run_outside(["python3", "-c", script], env)
    assert (code, out) == (0, "401 unauthorized\n"), err
    code, out, err = await run_outside(
        ["bash", "-c", 'cronium_get_variable x; echo "rc=$?"; cronium_output 1; echo "rc=$?"'], env
    )
    assert out == "rc=4\nrc=4\n"
    assert (
        f"cronium: authentication failed: GET /runtime/v1/variables/x: 401 unauthorized: {message}"
        in err
    )
    if NODE is not None:
        script = (
            "cronium.getVariable('x').then(() => console.log('no error'), "
            "(e) => { console.log(e.name, e.status); console.error(e.message); "
            "process.exitCode = 3; });"
        )
        code, out, err = await run_outside([NODE, "-e", script], env)
        assert (code, out) == (3, "CroniumAuthError 401\n")
        assert message in err
    assert time.monotonic() - began < 15


async def test_python_sdk_rate_over_the_socket(api: dict[str, Api], node: Node) -> None:
    """Rough throughput of one Python script: 2,000 get_variable calls, one connection."""
    script = (
        "import time\ncronium.set_variable('bench', 1)\nstarted = time.perf_counter()\n"
        "for _ in range(2000):\n    cronium.get_variable('bench')\n"
        "elapsed = time.perf_counter() - started\n"
        "print(f'rate {2000 / elapsed:.0f}')\ncronium.output(round(2000 / elapsed))\n"
    )
    done = await run_script(api["user"], "python", script, timeout_s=120)
    lines = await assert_succeeded(api["user"], done)
    rate = float(tagged(lines, "rate"))
    print(f"Python SDK: {rate:.0f} get_variable calls/s over the Unix socket")
    assert rate > 50  # a floor against pathologies (no keep-alive, sleeps); see the report
