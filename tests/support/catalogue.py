"""The test-event catalogue (examples/events/*.yaml): load it, check its `expect:` blocks,
and run one entry end to end against a running node.

The schema is documented in examples/events/README.md. In short, a file is an event in the
API's shape (what `cronium import` loads) plus two blocks the importer ignores:
`executors:` (which executors the file runs in; both by default) and `expect:` (how the
runner prepares the run, starts it and what it must observe). A file without `expect:`, or
with `expect: {run: false}`, is not run by itself: it is started by another file's actions
and checked through that file's `triggers:`.

Used by tests/integration/test_catalogue.py; kept free of fixtures so it can be read alone.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from cronium.core import Core
from cronium.db.models import ToolCredential
from cronium.domain.importer import Definition, import_events, load_definitions
from tests.conftest import TERMINAL_STATUSES, Api, wait_for_status
from tests.support.tool_receivers import HttpReceiver, free_port, http_receiver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "events"
SDK_DIR = ROOT / "src" / "cronium" / "sdk"
EXECUTORS = ("local", "container", "ssh")
SSH_TARGET = "catalogue"  # the server's name in ssh runs
OWNER_ID = 2  # the `user` persona of tests/conftest.py
OWNER_EMAIL = "user@example.com"
DEFAULT_WAIT_S = 60.0

# -- the schema ---------------------------------------------------------------------------------

SETUP_KEYS = {"variables", "secret_variables", "credentials"}
RUN_KEYS = {"input"}
# What any execution (the one started, or one started by its actions) may be checked for.
EXECUTION_KEYS = {
    "status",
    "exit_code",
    "error_contains",
    "input",
    "output",
    "output_subset",
    "condition",
    "logs_contain",
    "logs_match",
    "logs_absent",
    "stdout_contains",
    "stderr_contains",
    "stdout_lines",
    "stderr_lines",
    "min_log_lines",
    "triggers",
    "not_triggered",
}
TRIGGER_KEYS = EXECUTION_KEYS | {"event"}
# Checked once, after the run and everything it triggered have ended.
TOP_KEYS = EXECUTION_KEYS | {
    "setup",
    "run",
    "wait_seconds",
    "variables",
    "secret_variables",
    "variables_absent",
    "receiver_got",
    "smtp_got",
}
STATUSES = {"succeeded", "failed", "timed_out", "cancelled", "partial"}
_MISSING = object()
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@dataclass(frozen=True)
class Entry:
    """One catalogue file."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def expect(self) -> dict[str, Any] | None:
        value = self.data.get("expect")
        return value if isinstance(value, dict) else None

    @property
    def runnable(self) -> bool:
        return self.expect is not None and self.expect.get("run", {}) is not False

    @property
    def executors(self) -> tuple[str, ...]:
        return tuple(self.data.get("executors") or EXECUTORS)

    @property
    def label(self) -> str:
        return self.path.name


def load_catalogue(folder: Path = EXAMPLES) -> list[Entry]:
    return [Entry(d.path, d.data) for d in load_definitions([folder])]


def schema_errors(entries: list[Entry]) -> list[str]:
    """Everything wrong with the test-only blocks of the catalogue (typos must not pass)."""
    names = {e.name for e in entries}
    errors: list[str] = []
    for entry in entries:
        where = entry.label
        if entry.path.stem != entry.name:
            errors.append(f"{where}: the file should be named after the event ({entry.name}.yaml)")
        executors = entry.data.get("executors")
        if executors is not None and (
            not isinstance(executors, list) or not executors or set(executors) - set(EXECUTORS)
        ):
            errors.append(f"{where}: executors must be a non-empty list of {EXECUTORS}")
        if "expect" in entry.data and entry.expect is None:
            errors.append(f"{where}: expect must be a mapping")
        expect = entry.expect
        if expect is None:
            continue
        errors += _check_block(expect, TOP_KEYS, f"{where}: expect", names)
        setup = expect.get("setup", {})
        if not isinstance(setup, dict) or set(setup) - SETUP_KEYS:
            errors.append(f"{where}: expect.setup takes only {sorted(SETUP_KEYS)}")
        else:
            for cred in setup.get("credentials", []):
                if not isinstance(cred, dict) or set(cred) != {"name", "tool", "config"}:
                    errors.append(
                        f"{where}: expect.setup.credentials: each needs name, tool, config"
                    )
        run = expect.get("run", {})
        if run is not False and (not isinstance(run, dict) or set(run) - RUN_KEYS):
            errors.append(f"{where}: expect.run is false or a mapping with only {sorted(RUN_KEYS)}")
    return errors


def _check_block(
    block: dict[str, Any], allowed: set[str], where: str, names: set[str]
) -> list[str]:
    errors = [f"{where}: unknown key {k!r}" for k in sorted(set(block) - allowed)]
    status = block.get("status")
    if status is not None and status not in STATUSES:
        errors.append(f"{where}.status: {status!r} is not one of {sorted(STATUSES)}")
    for key in ("logs_contain", "logs_match", "logs_absent", "stdout_contains", "stderr_contains"):
        value = block.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"{where}.{key}: must be a list of strings")
    for pattern in block.get("logs_match", []) if isinstance(block.get("logs_match"), list) else []:
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(f"{where}.logs_match: {pattern!r}: {exc}")
    for name in block.get("not_triggered", []):
        if name not in names:
            errors.append(f"{where}.not_triggered: no event named {name!r}")
    for index, trigger in enumerate(block.get("triggers", [])):
        here = f"{where}.triggers[{index}]"
        if not isinstance(trigger, dict) or trigger.get("event") not in names:
            errors.append(f"{here}: needs 'event' naming an event of the catalogue")
            continue
        errors += _check_block(trigger, TRIGGER_KEYS, here, names)
    return errors


# -- placeholders -----------------------------------------------------------------------------


def fill(value: Any, values: dict[str, Any]) -> Any:
    """Replace `{{name}}` placeholders; a string that is only a placeholder takes its raw value
    (so `"{{execution_id}}"` becomes the integer)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            return str(values[name]) if name in values else match.group(0)

        return PLACEHOLDER.sub(one, value)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


def mentions(value: Any, placeholder: str) -> bool:
    if isinstance(value, str):
        return any(m.group(1) == placeholder for m in PLACEHOLDER.finditer(value))
    if isinstance(value, dict):
        return any(mentions(v, placeholder) for v in value.values())
    if isinstance(value, list):
        return any(mentions(v, placeholder) for v in value)
    return False


def subset_mismatch(expected: Any, actual: Any, path: str = "") -> str | None:
    """Where `actual` does not contain `expected` (dicts: listed keys only, recursively)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path or '.'}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing"
            found = subset_mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if not same_json(expected, actual):
        return f"{path or '.'}: expected {expected!r}, got {actual!r}"
    return None


def same_json(expected: Any, actual: Any) -> bool:
    """Equality that tells true from 1 (Python's == does not)."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(same_json(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(same_json(a, b) for a, b in zip(expected, actual, strict=True))
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


# -- local receivers ------------------------------------------------------------------------------


# The loopback HTTP receiver is the tool tests' one: it records every request.
Receiver = HttpReceiver
receiver = http_receiver


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's API
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = [message] if not message.is_multipart() else list(message.walk())
        texts = [str(p.get_content()) for p in parts if p.get_content_maintype() == "text"]
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": str(message.get("subject", "")),
                "body": "\n".join(texts),
            }
        )
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


# -- running one entry -----------------------------------------------------------------------------


@dataclass
class Run:
    """Everything one catalogue test needs; `check` collects the failures."""

    entry: Entry
    executor: str
    api: Api
    core: Core
    ids: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    receiver: Receiver | None = None
    inbox: Inbox | None = None

    def fail(self, where: str, message: str) -> None:
        self.failures.append(f"{self.entry.label} [{self.executor}] {where}: {message}")


async def import_catalogue(core: Core, entries: list[Entry]) -> dict[str, tuple[int, str]]:
    """`cronium import` of these files for the `user` persona; name → (event id, verb)."""
    definitions = [Definition(e.path, e.data) for e in entries]
    async with core.sessions() as db, db.begin():
        result: dict[str, tuple[int, str]] = await import_events(
            db, core.cipher, OWNER_ID, definitions
        )
    return result


async def run_on_server(core: Core, event_ids: list[int], server_id: int) -> None:
    """Move the script events among `event_ids` from the local target to the server."""
    async with core.db.acquire() as conn, conn.transaction():
        moved = await conn.fetch(
            "UPDATE events SET run_local = false WHERE id = ANY($1) AND type = 'script'"
            " RETURNING id",
            event_ids,
        )
        await conn.executemany(
            "INSERT INTO event_servers (event_id, server_id) VALUES ($1, $2)",
            [(row["id"], server_id) for row in moved],
        )


def needed_by(entry: Entry, catalogue: list[Entry]) -> list[Entry]:
    """`entry` and every event its actions can start, transitively (its actions' targets
    must exist to import it), plus those its expectations name."""
    by_name = {e.name: e for e in catalogue}
    wanted = [entry.name]
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        data = by_name[name].data
        wanted += [str(a["event"]) for a in data.get("actions") or [] if "event" in a]
        wanted += _named_in(data.get("expect") or {})
    return [e for e in catalogue if e.name in seen]


def _named_in(block: dict[str, Any]) -> list[str]:
    names = [str(n) for n in block.get("not_triggered", [])]
    for trigger in block.get("triggers", []):
        names += [str(trigger.get("event")), *_named_in(trigger)]
    return names


async def insert_credential(core: Core, name: str, tool: str, config: dict[str, Any]) -> int:
    async with core.sessions() as db, db.begin():
        row = ToolCredential(
            owner_id=OWNER_ID,
            name=name,
            tool=tool,
            config_encrypted=core.cipher.encrypt_json(config),
        )
        db.add(row)
        await db.flush()
        return int(row.id)


async def setup(run: Run) -> None:
    expect = run.entry.expect or {}
    spec = fill(expect.get("setup", {}), run.values)
    for secret, key in ((False, "variables"), (True, "secret_variables")):
        for name, value in (spec.get(key) or {}).items():
            resp = await run.api.post(
                "/variables", json={"key": name, "value": value, "secret": secret}
            )
            assert resp.status_code == 201, f"{run.entry.label}: setup.{key}.{name}: {resp.text}"
    for cred in spec.get("credentials") or []:
        await insert_credential(run.core, cred["name"], cred["tool"], cred["config"])


async def start(run: Run) -> int:
    expect = run.entry.expect or {}
    run_spec = expect.get("run") or {}
    body = {"input": fill(run_spec["input"], run.values)} if "input" in run_spec else None
    resp = await run.api.post(f"/events/{run.ids[run.entry.name]}/run", json=body)
    assert resp.status_code == 202, (
        f"{run.entry.label}: POST /events/…/run: {resp.status_code} {resp.text}"
    )
    return int(resp.json()["execution_id"])


async def log_lines(api: Api, execution_id: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    after = 0
    while True:
        resp = await api.get(
            f"/executions/{execution_id}/logs", params={"after": after, "limit": 10_000}
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        lines += body["items"]
        if not body["items"]:
            return lines
        after = body["next_after"]


def _excerpt(lines: list[dict[str, Any]], limit: int = 40) -> str:
    shown = [f"  [{item['stream']}] {item['line'][:300]}" for item in lines[-limit:]]
    more = f"  … ({len(lines) - limit} earlier lines)\n" if len(lines) > limit else ""
    return "\n" + more + "\n".join(shown)


async def check_execution(
    run: Run, execution: dict[str, Any], block: dict[str, Any], where: str, wait_s: float
) -> None:
    """Check one execution against a block of expectations, then what it triggered."""
    values = {**run.values, "execution_id": execution["id"], "event_id": execution["event_id"]}
    lines = await log_lines(run.api, execution["id"])
    check_fields(run, execution, fill(_without(block, "triggers"), values), where, _excerpt(lines))
    check_logs(run, lines, fill(_without(block, "triggers"), values), where)
    await check_triggers(run, execution, block, where, wait_s)


def _without(block: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in block.items() if k not in keys}


def check_fields(
    run: Run, execution: dict[str, Any], block: dict[str, Any], where: str, excerpt: str
) -> None:
    jobs = execution.get("jobs") or []
    errors = [e for e in [execution.get("error")] + [j.get("error") for j in jobs] if e]
    if "status" in block and execution["status"] != block["status"]:
        run.fail(
            f"{where}.status",
            f"expected {block['status']!r}, got {execution['status']!r} "
            f"(errors: {errors}); logs:{excerpt}",
        )
    if "exit_code" in block:
        codes = [j.get("exit_code") for j in jobs]
        if not codes or any(code != block["exit_code"] for code in codes):
            run.fail(f"{where}.exit_code", f"expected {block['exit_code']!r}, got {codes!r}")
    if "error_contains" in block and not any(block["error_contains"] in e for e in errors):
        run.fail(f"{where}.error_contains", f"{block['error_contains']!r} not in {errors!r}")
    for key in ("input", "output", "condition"):
        if key in block and not same_json(block[key], execution.get(key)):
            run.fail(f"{where}.{key}", f"expected {block[key]!r}, got {execution.get(key)!r}")
    if "output_subset" in block:
        problem = subset_mismatch(block["output_subset"], execution.get("output"))
        if problem:
            run.fail(f"{where}.output_subset", f"{problem} (output: {execution.get('output')!r})")


def check_logs(run: Run, lines: list[dict[str, Any]], block: dict[str, Any], where: str) -> None:
    excerpt = _excerpt(lines)
    texts = [item["line"] for item in lines]
    by_stream = {
        stream: [item["line"] for item in lines if item["stream"] == stream]
        for stream in ("stdout", "stderr")
    }
    for wanted in block.get("logs_contain", []):
        if wanted not in texts:
            run.fail(f"{where}.logs_contain", f"no log line equals {wanted!r}; logs:{excerpt}")
    for pattern in block.get("logs_match", []):
        if not any(re.search(pattern, text) for text in texts):
            run.fail(f"{where}.logs_match", f"no log line matches {pattern!r}; logs:{excerpt}")
    for unwanted in block.get("logs_absent", []):
        hits = [text for text in texts if unwanted in text]
        if hits:
            run.fail(f"{where}.logs_absent", f"{unwanted!r} appears in {hits[:3]!r}")
    for stream, on_stream in by_stream.items():
        check_stream(run, stream, on_stream, block, where, excerpt)
    if "min_log_lines" in block:
        count = len(by_stream["stdout"]) + len(by_stream["stderr"])
        if count < block["min_log_lines"]:
            message = f"expected at least {block['min_log_lines']}, got {count}"
            run.fail(f"{where}.min_log_lines", message)


def check_stream(
    run: Run, stream: str, on_stream: list[str], block: dict[str, Any], where: str, excerpt: str
) -> None:
    for wanted in block.get(f"{stream}_contains", []):
        if wanted not in on_stream:
            message = f"no {stream} line equals {wanted!r}; logs:{excerpt}"
            run.fail(f"{where}.{stream}_contains", message)
    count = block.get(f"{stream}_lines")
    if count is not None and len(on_stream) != count:
        message = f"expected {count}, got {len(on_stream)}; logs:{excerpt}"
        run.fail(f"{where}.{stream}_lines", message)


async def check_triggers(
    run: Run, execution: dict[str, Any], block: dict[str, Any], where: str, wait_s: float
) -> None:
    triggers: list[dict[str, Any]] = block.get("triggers", [])
    children = await child_executions(run, execution["id"], triggers, wait_s)
    for index, trigger in enumerate(triggers):
        here = f"{where}.triggers[{index}]({trigger['event']})"
        found = children.get(trigger["event"], [])
        if not found:
            message = f"execution {execution['id']} did not start it within {wait_s:g} s"
            run.fail(here, message)
            continue
        child = await wait_for_status(run.api, found.pop(0)["id"], timeout_s=wait_s)
        await check_execution(run, child, trigger, here, wait_s)
    for name, extra in children.items():
        if extra:
            run.fail(f"{where}.triggers", f"{name!r} started {len(extra)} more time(s) than listed")
    for name in block.get("not_triggered", []):
        started = await executions_of(run, run.ids[name], execution["id"])
        if started:
            message = f"{name!r} ran: executions {[e['id'] for e in started]}"
            run.fail(f"{where}.not_triggered", message)


async def executions_of(run: Run, event_id: int, parent_id: int) -> list[dict[str, Any]]:
    resp = await run.api.get("/executions", params={"event_id": event_id, "limit": 100})
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json()["items"] if e["parent_execution_id"] == parent_id]


async def child_executions(
    run: Run, parent_id: int, triggers: list[dict[str, Any]], wait_s: float
) -> dict[str, list[dict[str, Any]]]:
    """The executions the parent's actions started, by event name (waits for the listed ones)."""
    wanted: dict[str, int] = {}
    for trigger in triggers:
        wanted[trigger["event"]] = wanted.get(trigger["event"], 0) + 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    found: dict[str, list[dict[str, Any]]] = {}
    while True:
        for name in wanted:
            started = await executions_of(run, run.ids[name], parent_id)
            found[name] = sorted(started, key=lambda e: e["id"])
        if all(len(found[n]) >= count for n, count in wanted.items()) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.1)


async def variables(api: Api) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        resp = await api.get("/variables", params={"limit": 200, "offset": offset})
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        found.update({v["key"]: v for v in items})
        if len(items) < 200:
            return found
        offset += 200


async def secret_value(core: Core, key: str) -> Any:
    async with core.db.acquire() as conn:
        blob = await conn.fetchval(
            "SELECT value_encrypted FROM variables WHERE owner_id = $1 AND key = $2", OWNER_ID, key
        )
    return core.cipher.decrypt_json(blob) if blob is not None else _MISSING


async def check_variables(run: Run, expect: dict[str, Any]) -> None:
    stored = await variables(run.api)
    for key, value in fill(expect.get("variables", {}), run.values).items():
        if key not in stored:
            run.fail(f"expect.variables.{key}", f"missing (variables: {sorted(stored)})")
        elif stored[key]["secret"]:
            run.fail(f"expect.variables.{key}", "is secret; list it under secret_variables")
        elif not same_json(value, stored[key]["value"]):
            run.fail(f"expect.variables.{key}", f"expected {value!r}, got {stored[key]['value']!r}")
    for key, value in fill(expect.get("secret_variables", {}), run.values).items():
        if key not in stored:
            run.fail(f"expect.secret_variables.{key}", "missing")
            continue
        if not stored[key]["secret"] or stored[key]["value"] is not None:
            run.fail(f"expect.secret_variables.{key}", f"is not secret any more: {stored[key]!r}")
        actual = await secret_value(run.core, key)
        if not same_json(value, actual):
            run.fail(f"expect.secret_variables.{key}", f"expected {value!r}, decrypted {actual!r}")
    for key in expect.get("variables_absent", []):
        if key in stored:
            run.fail(f"expect.variables_absent.{key}", f"exists with {stored[key]['value']!r}")


async def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _call_matches(expected: dict[str, Any], call: dict[str, Any]) -> bool:
    for key, value in expected.items():
        if key == "headers":
            headers = call["headers"]
            if any(headers.get(h.lower()) != v for h, v in value.items()):
                return False
        elif key == "body_contains":
            if value not in call["body"]:
                return False
        elif not same_json(value, call.get(key)):
            return False
    return True


async def check_deliveries(run: Run, expect: dict[str, Any]) -> None:
    received = {
        "receiver_got": run.receiver.calls if run.receiver else [],
        "smtp_got": run.inbox.messages if run.inbox else [],
    }
    for key, calls in received.items():
        if key not in expect:
            continue
        wanted = fill(expect[key], run.values)

        def arrived(calls: list[dict[str, Any]] = calls, n: int = len(wanted)) -> bool:
            return len(calls) >= n

        await wait_until(arrived, 15)
        await asyncio.sleep(0.2)  # a duplicate would arrive now
        remaining = list(calls)
        for item in wanted:
            match = next((c for c in remaining if _call_matches(item, c)), None)
            if match is None:
                message = f"nothing received matches {item!r}; received {remaining!r}"
                run.fail(f"expect.{key}", message)
            else:
                remaining.remove(match)
        if remaining:
            run.fail(f"expect.{key}", f"{len(remaining)} unexpected delivery(ies): {remaining!r}")


def needs(entry: Entry, placeholder: str, key: str) -> bool:
    expect = entry.expect or {}
    return key in expect or mentions(expect.get("setup", {}), placeholder)


async def run_entry(
    entry: Entry,
    executor: str,
    api: Api,
    core: Core,
    catalogue: list[Entry],
    server_id: int | None = None,
) -> None:
    """Import the catalogue, prepare, run `entry` and check every expectation.

    With `server_id`, every imported script event runs on that SSH server instead.
    """
    expect = entry.expect or {}
    wait_s = float(expect.get("wait_seconds", DEFAULT_WAIT_S))
    async with contextlib.AsyncExitStack() as stack:
        run = Run(entry=entry, executor=executor, api=api, core=core)
        run.values = {
            "executor": executor,
            "user_email": OWNER_EMAIL,
            "target": "local" if server_id is None else SSH_TARGET,
        }
        if needs(entry, "receiver", "receiver_got"):
            run.receiver = await stack.enter_async_context(receiver())
            run.values["receiver"] = run.receiver.url
        if needs(entry, "smtp_port", "smtp_got"):
            port, run.inbox = stack.enter_context(smtp_server())
            run.values["smtp_port"] = port
        # Only what this run needs: importing all 66 files costs ~0.6 s per test, and the
        # whole folder is imported (twice) by test_the_whole_catalogue_imports_idempotently.
        imported = await import_catalogue(core, needed_by(entry, catalogue))
        run.ids = {name: event_id for name, (event_id, _) in imported.items()}
        if server_id is not None:
            await run_on_server(core, list(run.ids.values()), server_id)
        await setup(run)
        execution_id = await start(run)
        try:
            execution = await wait_for_status(
                api, execution_id, TERMINAL_STATUSES, timeout_s=wait_s
            )
        except AssertionError as exc:
            lines = await log_lines(api, execution_id)
            raise AssertionError(
                f"{entry.label} [{executor}]: {exc}; logs:{_excerpt(lines)}"
            ) from None
        await check_execution(run, execution, expect, "expect", wait_s)
        await check_variables(run, expect)
        await check_deliveries(run, expect)
    assert not run.failures, f"{len(run.failures)} expectation(s) not met:\n" + "\n".join(
        run.failures
    )


# -- coverage of the SDKs --------------------------------------------------------------------------


def python_sdk_functions() -> set[str]:
    tree = ast.parse((SDK_DIR / "python" / "cronium.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "__all__" for t in node.targets
        ):
            names = {ast.literal_eval(e) for e in node.value.elts}  # type: ignore[attr-defined]
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.value, ast.Name)
        ):
            names.add(getattr(node.targets[0], "id", ""))  # aliases such as `context = event`
    return {
        n
        for n in names
        if n and not n.startswith("Cronium") and n[0].islower() and n != "__version__"
    }


def node_sdk_functions() -> set[str]:
    text = (SDK_DIR / "node" / "cronium.js").read_text()
    block = text[text.index("module.exports = {") :]
    block = block[: block.index("};")]
    names = set(re.findall(r"^\s+([A-Za-z_]+)\s*[,:]", block, re.MULTILINE))
    return {n for n in names if n[0].islower()}


def bash_sdk_functions() -> set[str]:
    text = (SDK_DIR / "bash" / "cronium.sh").read_text()
    names = set(re.findall(r"^(cronium[_.][A-Za-z_]+)\s*\(\)", text, re.MULTILINE))
    return {n for n in names if not n.startswith("cronium__")}


def used_functions(entries: list[Entry], language: str) -> set[str]:
    """SDK names called by the catalogue's scripts of one language."""
    found: set[str] = set()
    for entry in entries:
        if entry.data.get("language") != language:
            continue
        content = str(entry.data.get("content", ""))
        if language == "bash":
            found |= set(re.findall(r"\b(cronium[_.][A-Za-z_]+)\b", content))
        else:
            found |= set(re.findall(r"\bcronium\.([A-Za-z_]+)\b", content))
    return found
