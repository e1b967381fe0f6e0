"""The Python SDK on its own: pure helpers, and the client against a small fake Runtime
API on a Unix socket (retries, backoff, auth errors, keep-alive). End-to-end runs through
the engine are in tests/integration/test_sdks.py."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cronium.sdk import SDK_DIR, preload_env

SDK_PY = SDK_DIR / "python" / "cronium.py"


def load_sdk() -> ModuleType:
    """The SDK module under another name (`cronium` is the service's package here)."""
    spec = importlib.util.spec_from_file_location("cronium_sdk_under_test", SDK_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sdk: Any = load_sdk()


# -- pure helpers ----------------------------------------------------------------------------


def test_parse_runtime_url() -> None:
    unix = sdk.parse_runtime_url("unix:///var/lib/cronium/run/runtime.sock")
    assert (unix.scheme, unix.socket_path, unix.base_path) == (
        "unix",
        "/var/lib/cronium/run/runtime.sock",
        "",
    )
    http_ = sdk.parse_runtime_url("http://10.0.0.5:8080")
    assert (http_.scheme, http_.host, http_.port, http_.socket_path) == (
        "http",
        "10.0.0.5",
        8080,
        None,
    )
    behind = sdk.parse_runtime_url("https://cronium.example.com/prefix/")
    assert (behind.scheme, behind.host, behind.port, behind.base_path) == (
        "https",
        "cronium.example.com",
        None,
        "/prefix",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "CRONIUM_RUNTIME_URL is not set"),
        ("unix://relative.sock", "absolute socket path"),
        ("ftp://host", "expected unix:///path"),
        ("http://host:notaport", "invalid port"),
    ],
)
def test_a_bad_runtime_url_is_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(sdk.CroniumError, match=message):
        sdk.parse_runtime_url(url)


def test_backoff_schedule() -> None:
    assert sdk.backoff_delays() == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert sdk.MAX_ATTEMPTS == 5
    assert sdk.backoff_delays(1) == []


def test_retry_after_is_honoured_and_capped() -> None:
    assert sdk.parse_retry_after("2") == 2.0
    assert sdk.parse_retry_after(" 0.5 ") == 0.5
    assert sdk.parse_retry_after(None) is None
    assert sdk.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert sdk.parse_retry_after("-3") == 0.0
    assert sdk.retry_wait(0.1, None) == 0.1
    assert sdk.retry_wait(0.1, 2.0) == 2.0
    assert sdk.retry_wait(0.8, 0.2) == 0.8
    assert sdk.retry_wait(0.1, 3600) == sdk.MAX_RETRY_WAIT_S


@pytest.mark.parametrize(
    ("method", "status", "retry"),
    [
        ("GET", 500, True),
        ("PUT", 503, True),
        ("DELETE", 429, True),
        ("POST", 429, True),
        ("POST", 503, True),
        ("POST", 500, False),  # may have been applied: an increment must not repeat
        ("GET", 404, False),
        ("GET", 422, False),
        ("GET", 401, False),
    ],
)
def test_which_statuses_are_retried(method: str, status: int, retry: bool) -> None:
    assert sdk.is_retryable_status(method, status) is retry


def test_error_mapping() -> None:
    body: dict[str, Any] = {
        "error": {"code": "unauthorized", "message": "execution token is invalid", "details": None}
    }
    auth = sdk.error_from_response("GET", "/runtime/v1/input", 401, json.dumps(body).encode())
    assert isinstance(auth, sdk.CroniumAuthError)
    assert (auth.status, auth.code) == (401, "unauthorized")
    assert str(auth) == (
        "Cronium Runtime API GET /runtime/v1/input failed: "
        "401 unauthorized: execution token is invalid"
    )
    forbidden = sdk.error_from_response("GET", "/x", 403, b"")
    assert isinstance(forbidden, sdk.CroniumAuthError)
    assert str(forbidden).endswith("403: no message")

    details = [{"field": "value", "message": "must be a bool"}]
    body = {
        "error": {
            "code": "validation_error",
            "message": "condition must be true or false",
            "details": details,
        }
    }
    invalid = sdk.error_from_response("PUT", "/c", 422, json.dumps(body).encode())
    assert type(invalid) is sdk.CroniumError
    assert (invalid.status, invalid.code, invalid.details) == (422, "validation_error", details)
    assert "422 validation_error: condition must be true or false" in str(invalid)

    text = sdk.error_from_response("GET", "/x", 502, b"<html>Bad gateway</html>")
    assert type(text) is sdk.CroniumError and "502: <html>Bad gateway</html>" in str(text)


def test_variable_names_are_path_encoded() -> None:
    assert sdk.encode_key("my.var-1") == "my.var-1"
    assert sdk.encode_key("a/b c") == "a%2Fb%20c"
    with pytest.raises(sdk.CroniumError):
        sdk.encode_key("")


def test_set_condition_and_increment_check_their_arguments() -> None:
    with pytest.raises(TypeError):
        sdk.set_condition("yes")
    with pytest.raises(TypeError):
        sdk.increment_variable("k", by=True)


def test_the_aliases_are_the_same_functions() -> None:
    pairs = {
        "getInput": "input",
        "getVariable": "get_variable",
        "setVariable": "set_variable",
        "deleteVariable": "delete_variable",
        "variableExists": "variable_exists",
        "incrementVariable": "increment_variable",
        "appendVariable": "append_variable",
        "setCondition": "set_condition",
        "getCondition": "get_condition",
        "executeToolAction": "execute_tool_action",
        "sendEmail": "send_email",
        "sendSlackMessage": "send_slack_message",
        "sendDiscordMessage": "send_discord_message",
    }
    for alias, name in pairs.items():
        assert getattr(sdk, alias) is getattr(sdk, name), alias


# -- the client against a fake Runtime API ---------------------------------------------------


class FakeApi:
    """Scripted answers on a Unix socket; records requests and connections."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.answers: list[tuple[int, Any, dict[str, str]]] = []
        self.requests: list[tuple[str, str, Any, str]] = []
        self.connections = 0
        self.close_after_each = False
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                api.connections += 1
                super().setup()

            def log_message(self, *args: Any) -> None:
                pass

            def address_string(self) -> str:
                return "fake"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.requests.append(
                    (self.command, self.path, body, self.headers.get("authorization", ""))
                )
                status, payload, headers = (
                    api.answers.pop(0) if api.answers else (200, {"value": None}, {})
                )
                raw = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in headers.items():
                    self.send_header(key, value)
                if api.close_after_each:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def socket_path() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="crn-sdk-")
    yield os.path.join(folder, "rt.sock")
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    os.rmdir(folder)


@pytest.fixture
def fake(socket_path: str) -> Iterator[FakeApi]:
    api = FakeApi(socket_path)
    yield api
    api.close()


@pytest.fixture
def client(socket_path: str, fake: FakeApi) -> Iterator[tuple[Any, list[float]]]:
    """The module's shared client pointed at the fake; its sleeps are recorded, not slept."""
    slept: list[float] = []
    real = sdk._client
    sdk._client = sdk.Client(url=f"unix://{socket_path}", token="cxt_test")
    sdk._client.sleep = slept.append
    yield sdk._client, slept
    sdk._client.close()
    sdk._client = real


def test_calls_send_the_token_and_reuse_one_connection(client: Any, fake: FakeApi) -> None:
    fake.answers = [
        (200, {"value": {"a": 1}}, {}),
        (200, {"ok": True}, {}),
        (200, {"key": "k", "value": [1]}, {}),
        (404, {"error": {"code": "not_found", "message": "variable 'x' not found"}}, {}),
        (200, {"key": "n", "value": 3}, {}),
        (200, {"key": "l", "length": 2}, {}),
        (204, None, {}),
        (404, {"error": {"code": "not_found", "message": "variable 'k' not found"}}, {}),
    ]
    assert sdk.input() == {"a": 1}
    sdk.output({"b": 2})
    assert sdk.get_variable("k") == [1]
    assert sdk.get_variable("x") is None
    assert sdk.increment_variable("n", by=2) == 3
    assert sdk.append_variable("l", "v") == 2
    assert sdk.delete_variable("k") is True
    assert sdk.delete_variable("k") is False
    assert [(m, p, b) for m, p, b, _ in fake.requests] == [
        ("GET", "/runtime/v1/input", None),
        ("PUT", "/runtime/v1/output", {"value": {"b": 2}}),
        ("GET", "/runtime/v1/variables/k", None),
        ("GET", "/runtime/v1/variables/x", None),
        ("POST", "/runtime/v1/variables/n/increment", {"by": 2}),
        ("POST", "/runtime/v1/variables/l/append", {"value": "v"}),
        ("DELETE", "/runtime/v1/variables/k", None),
        ("DELETE", "/runtime/v1/variables/k", None),
    ]
    assert {auth for *_, auth in fake.requests} == {"Bearer cxt_test"}
    assert fake.connections == 1


def test_transient_answers_are_retried_with_backoff_and_retry_after(
    client: Any, fake: FakeApi
) -> None:
    _, slept = client
    fake.answers = [
        (503, {"error": {"code": "unavailable", "message": "busy"}}, {}),
        (429, {"error": {"code": "rate_limited", "message": "slow down"}}, {"Retry-After": "1"}),
        (500, {"error": {"code": "internal_error", "message": "oops"}}, {}),
        (200, {"key": "k", "value": "finally"}, {}),
    ]
    assert sdk.get_variable("k") == "finally"
    assert slept == pytest.approx([0.1, 1.0, 0.4])
    assert len(fake.requests) == 4


def test_retries_give_up_after_five_attempts_with_the_servers_message(
    client: Any, fake: FakeApi
) -> None:
    _, slept = client
    fake.answers = [(503, {"error": {"code": "unavailable", "message": "still busy"}}, {})] * 6
    with pytest.raises(sdk.CroniumError, match="503 unavailable: still busy"):
        sdk.event()
    assert len(fake.requests) == 5
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_auth_errors_fail_at_once(client: Any, fake: FakeApi) -> None:
    _, slept = client
    message = "execution token is invalid or its job has ended"
    fake.answers = [(401, {"error": {"code": "unauthorized", "message": message}}, {})]
    with pytest.raises(sdk.CroniumAuthError, match=message) as caught:
        sdk.set_variable("k", 1)
    assert caught.value.status == 401
    assert len(fake.requests) == 1 and slept == []


def test_a_post_is_not_repeated_after_a_500(client: Any, fake: FakeApi) -> None:
    fake.answers = [(500, {"error": {"code": "internal_error", "message": "boom"}}, {})]
    with pytest.raises(sdk.CroniumError, match="500 internal_error: boom"):
        sdk.increment_variable("k")
    assert len(fake.requests) == 1


def test_other_client_errors_carry_the_servers_message(client: Any, fake: FakeApi) -> None:
    fake.answers = [
        (
            422,
            {"error": {"code": "validation_error", "message": "variable 'k' is not a number"}},
            {},
        )
    ]
    with pytest.raises(
        sdk.CroniumError, match="422 validation_error: variable 'k' is not a number"
    ):
        sdk.increment_variable("k")


def test_a_missing_tool_actions_endpoint_is_explained(client: Any, fake: FakeApi) -> None:
    fake.answers = [(404, {"error": {"code": "not_found", "message": "Not Found"}}, {})]
    with pytest.raises(sdk.CroniumError, match="tool actions are not available") as caught:
        sdk.send_slack_message("hi", channel="#ops", credential_id=4)
    assert caught.value.status == 404
    assert fake.requests[0][:3] == (
        "POST",
        "/runtime/v1/tool-actions",
        {
            "tool": "slack",
            "action": "send_message",
            "params": {"text": "hi", "channel": "#ops", "credential_id": 4},
        },
    )


def test_tool_helpers_map_to_tool_actions(client: Any, fake: FakeApi) -> None:
    fake.answers = [(200, {"ok": True}, {})] * 3
    sdk.send_email("a@example.com", "Hi", "Body", html="<b>Body</b>", cc=["c@example.com"])
    sdk.send_discord_message("yo", username="bot")
    sdk.execute_tool_action("custom", "do", None)
    assert [body for _, _, body, _ in fake.requests] == [
        {
            "tool": "email",
            "action": "send",
            "params": {
                "to": "a@example.com",
                "subject": "Hi",
                "body": "Body",
                "html": "<b>Body</b>",
                "cc": ["c@example.com"],
            },
        },
        {
            "tool": "discord",
            "action": "send_message",
            "params": {"content": "yo", "username": "bot"},
        },
        {"tool": "custom", "action": "do", "params": {}},
    ]


def test_an_unreachable_socket_is_retried_then_reported(socket_path: str) -> None:
    slept: list[float] = []
    missing = sdk.Client(url=f"unix://{socket_path}.missing", token="t")
    missing.sleep = slept.append
    with pytest.raises(sdk.CroniumError, match=r"cannot reach .*\.missing.*after 5 attempts"):
        missing.call("GET", "/input")
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_a_connection_closed_by_the_server_is_replaced(client: Any, fake: FakeApi) -> None:
    fake.close_after_each = True
    fake.answers = [(200, {"value": i}, {}) for i in range(3)]
    assert [sdk.input() for _ in range(3)] == [0, 1, 2]
    assert fake.connections == 3


def test_a_forked_child_opens_its_own_connection(client: Any, fake: FakeApi) -> None:
    fake.answers = [
        (200, {"value": "parent"}, {}),
        (200, {"value": "child"}, {}),
        (200, {"value": "parent2"}, {}),
    ]
    assert sdk.input() == "parent"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0 if sdk.input() == "child" else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert sdk.input() == "parent2"
    assert fake.connections == 2


def test_missing_environment_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONIUM_RUNTIME_URL", raising=False)
    monkeypatch.delenv("CRONIUM_EXECUTION_TOKEN", raising=False)
    with pytest.raises(sdk.CroniumError, match="not running under Cronium"):
        sdk.Client().call("GET", "/input")
    monkeypatch.setenv("CRONIUM_RUNTIME_URL", "unix:///nowhere.sock")
    with pytest.raises(sdk.CroniumAuthError, match="CRONIUM_EXECUTION_TOKEN is not set"):
        sdk.Client().call("GET", "/input")


# -- the pre-load (sitecustomize) --------------------------------------------------------------


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_preload_makes_a_lazy_builtin() -> None:
    env = preload_env(str(SDK_DIR))
    code = (
        "import sys, builtins\n"
        "print('loaded before use:', 'cronium' in sys.modules)\n"
        "print(repr(cronium))\n"
        "print(cronium.info()['mode'])\n"
        "import cronium as explicit\n"
        "print('same module:', explicit is builtins.cronium,"
        " explicit.__file__.endswith('cronium.py'))\n"
    )
    result = run_python(code, PYTHONPATH=env["PYTHONPATH"], CRONIUM_EXECUTION_MODE="local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "loaded before use: False",
        "<module 'cronium' (Cronium SDK, not loaded yet)>",
        "local",
        "same module: True True",
    ]
    assert result.stderr == ""


def test_the_preload_runs_the_sitecustomize_it_shadows(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.OTHER_SITE = 'ran'\n")
    env = preload_env(str(SDK_DIR))
    result = run_python(
        "print(OTHER_SITE, type(cronium).__name__)",
        PYTHONPATH=f"{env['PYTHONPATH']}{os.pathsep}{tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran _LazyCronium\n"
