"""Cronium Python SDK: talk to the Runtime API from a running script.

Pre-loaded: inside a Cronium run, `cronium` is a builtin name (see sitecustomize.py), so
``cronium.input()`` works without an import; ``import cronium`` works too.

Standard library only. Configuration comes from the environment Cronium sets for every
run: CRONIUM_RUNTIME_URL (``unix:///path/runtime.sock`` or ``http(s)://host:port``) and
CRONIUM_EXECUTION_TOKEN (plus CRONIUM_EXECUTION_ID, CRONIUM_JOB_ID, CRONIUM_EVENT_ID and
CRONIUM_EXECUTION_MODE, returned by `info()`).

One connection per process, kept alive and reused. Transient failures (connection
errors, 429, 5xx) are retried with exponential backoff; 401/403 raise CroniumAuthError at
once; other 4xx raise CroniumError with the server's message.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import time
from collections import namedtuple

# typing, threading, urllib.parse and http.client are imported only where needed: every
# Python start of a run pays for what is imported here (they add ~10 ms together).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import http.client
    from typing import Any

__all__ = [
    "CroniumAuthError",
    "CroniumError",
    "appendVariable",
    "append_variable",
    "deleteVariable",
    "delete_variable",
    "event",
    "executeToolAction",
    "execute_tool_action",
    "getCondition",
    "getEvent",
    "getInput",
    "getVariable",
    "get_condition",
    "get_variable",
    "incrementVariable",
    "increment_variable",
    "info",
    "input",
    "output",
    "sendDiscordMessage",
    "sendEmail",
    "sendSlackMessage",
    "send_discord_message",
    "send_email",
    "send_slack_message",
    "setCondition",
    "setOutput",
    "setVariable",
    "set_condition",
    "set_variable",
    "variableExists",
    "variable_exists",
]

__version__ = "1.0.0"

API_PREFIX = "/runtime/v1"
#: Attempts per call (the first try included) on transient failures.
MAX_ATTEMPTS = 5
#: Delay before the first retry; doubled on each further retry (0.1, 0.2, 0.4, 0.8 s).
BACKOFF_BASE_S = 0.1
#: Longest wait between two attempts, whatever Retry-After says.
MAX_RETRY_WAIT_S = 30.0
#: Socket timeout of one request (tool actions get TOOL_TIMEOUT_S: they call third parties).
TIMEOUT_S = 60.0
TOOL_TIMEOUT_S = 300.0

_RETRY_STATUSES_SAFE = frozenset({429, 500, 502, 503, 504})
# A POST that reached the server may have been applied: retry only when it surely was not.
_RETRY_STATUSES_POST = frozenset({429, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD"})
_MISSING: Any = object()


class CroniumError(Exception):
    """A Runtime API call failed. `status` is the HTTP status (None: no response)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details


class CroniumAuthError(CroniumError):
    """401/403: the execution token is missing, invalid, or its job has ended."""


# -- pure helpers (unit-tested) ------------------------------------------------------------


class Endpoint(namedtuple("Endpoint", "scheme host port socket_path base_path")):
    """Where the Runtime API answers: a Unix socket path, or an HTTP(S) host and port.

    scheme: "unix", "http" or "https"; base_path: prefix before /runtime/v1 ("" normally).
    """

    scheme: str
    host: str
    port: int | None
    socket_path: str | None
    base_path: str


def parse_runtime_url(url: str) -> Endpoint:
    """Parse CRONIUM_RUNTIME_URL: ``unix:///abs/path.sock``, ``http://h:p`` or ``https://h``."""
    url = (url or "").strip()
    if not url:
        raise CroniumError(
            "CRONIUM_RUNTIME_URL is not set: this script is not running under Cronium "
            "(the SDK only works inside a Cronium run)"
        )
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path.startswith("/"):
            raise CroniumError(
                f"CRONIUM_RUNTIME_URL {url!r}: a unix:// URL needs an absolute socket path"
            )
        return Endpoint("unix", "cronium", None, path, "")
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CroniumError(
            f"CRONIUM_RUNTIME_URL {url!r}: expected unix:///path, http://host:port or https://host"
        )
    try:
        port = parts.port
    except ValueError:
        raise CroniumError(f"CRONIUM_RUNTIME_URL {url!r}: invalid port") from None
    return Endpoint(parts.scheme, parts.hostname, port, None, parts.path.rstrip("/"))


def backoff_delays(attempts: int = MAX_ATTEMPTS, base_s: float = BACKOFF_BASE_S) -> list[float]:
    """Waits between attempts: base, 2·base, 4·base, … (attempts - 1 of them)."""
    return [base_s * (2**i) for i in range(max(0, attempts - 1))]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds only; an HTTP date is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard


def retry_wait(backoff_s: float, retry_after_s: float | None) -> float:
    """How long to wait before the next attempt: the backoff, or longer if the server asks."""
    wait = backoff_s if retry_after_s is None else max(backoff_s, retry_after_s)
    return min(wait, MAX_RETRY_WAIT_S)


def is_retryable_status(method: str, status: int) -> bool:
    """Whether an HTTP answer is transient (429, 5xx); a POST is not retried on a bare 500."""
    allowed = _RETRY_STATUSES_SAFE if method.upper() in _IDEMPOTENT else _RETRY_STATUSES_POST
    return status in allowed


def error_from_response(method: str, path: str, status: int, raw: bytes) -> CroniumError:
    """The exception for a non-2xx answer, carrying the server's code and message."""
    code: str | None = None
    details: Any = None
    message = ""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        message = str(err.get("message") or "")
        details = err.get("details")
    elif isinstance(body, dict) and "detail" in body:
        message = str(body["detail"])
    elif raw:
        message = raw.decode("utf-8", "replace").strip()[:500]
    label = f"{status} {code}" if code else str(status)
    text = f"Cronium Runtime API {method} {path} failed: {label}: {message or 'no message'}"
    cls = CroniumAuthError if status in (401, 403) else CroniumError
    return cls(text, status=status, code=code, details=details)


def encode_key(key: str) -> str:
    """A variable name as a URL path segment."""
    if not isinstance(key, str) or not key:
        raise CroniumError(f"variable name must be a non-empty string, not {key!r}")
    if key.isascii() and all(c.isalnum() or c in "-._~" for c in key):
        return key  # nothing to escape: spares importing urllib.parse
    from urllib.parse import quote

    return quote(key, safe="")


# -- the connection ------------------------------------------------------------------------


def _connection_class(endpoint: Endpoint) -> Any:
    if not _CONNECTION_CLASSES:
        _CONNECTION_CLASSES.update(_define_connection_classes())
    return _CONNECTION_CLASSES[endpoint.scheme]


def _define_connection_classes() -> dict[str, Any]:
    import http.client  # imported on first call: keeps `import cronium` cheap

    class OneWrite:
        """Send a request's head and body in one write: http.client writes them apart,
        which costs the server an extra wake-up per PUT/POST."""

        _buffer: list[bytes]

        def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
            buffer = getattr(self, "_buffer", None)
            if isinstance(message_body, bytes) and not encode_chunked and buffer is not None:
                buffer.extend((b"", message_body))  # joined: head, CRLF CRLF, body
                message = b"\r\n".join(buffer)
                del buffer[:]
                self.send(message)  # type: ignore[attr-defined]
                return
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]

    class HTTPConnection(OneWrite, http.client.HTTPConnection):
        pass

    class HTTPSConnection(OneWrite, http.client.HTTPSConnection):
        pass

    class UnixHTTPConnection(OneWrite, http.client.HTTPConnection):
        """HTTP/1.1 over a Unix socket."""

        def __init__(self, socket_path: str, timeout: float) -> None:
            super().__init__("cronium", timeout=timeout)
            self.socket_path = socket_path

        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
            except BaseException:
                sock.close()
                raise
            self.sock = sock

    return {"http": HTTPConnection, "https": HTTPSConnection, "unix": UnixHTTPConnection}


_CONNECTION_CLASSES: dict[str, Any] = {}


class Client:
    """One keep-alive connection to the Runtime API, shared by the whole process."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self._url = url
        self._token = token
        self._endpoint: Endpoint | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._pid = 0
        import threading

        self._lock = threading.Lock()
        self.sleep = time.sleep

    def _settings(self) -> tuple[Endpoint, str]:
        if self._endpoint is None:
            self._endpoint = parse_runtime_url(
                self._url if self._url is not None else os.environ.get("CRONIUM_RUNTIME_URL", "")
            )
        token = (
            self._token
            if self._token is not None
            else os.environ.get("CRONIUM_EXECUTION_TOKEN", "")
        )
        if not token:
            raise CroniumAuthError(
                "CRONIUM_EXECUTION_TOKEN is not set: this script is not running under Cronium",
                status=None,
            )
        return self._endpoint, token

    def _connection(
        self, endpoint: Endpoint, timeout: float
    ) -> tuple[http.client.HTTPConnection, bool]:
        """(connection, reused): a new one after fork(), a failure or a server-side close."""
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            conn = self._conn = None  # the parent's: leave it to the parent
        if conn is not None and not _idle_and_open(conn):
            self._drop()
            conn = None
        if conn is not None:
            if conn.timeout != timeout:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            return conn, conn.sock is not None
        cls = _connection_class(endpoint)
        if endpoint.scheme == "unix":
            conn = cls(endpoint.socket_path, timeout)
        else:
            conn = cls(endpoint.host, endpoint.port, timeout=timeout)
        self._conn, self._pid = conn, os.getpid()
        return conn, False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, bytes, float | None]:
        """One exchange: (status, body, Retry-After). No answer at all raises _Unreachable."""
        import http.client

        for fresh_try in (False, True):
            conn, reused = self._connection(endpoint, timeout)
            sent = False
            try:
                conn.request(method, path, body=payload, headers=headers)
                sent = True
                response = conn.getresponse()
                raw = response.read()
                if response.will_close:
                    self._drop()
                return response.status, raw, parse_retry_after(response.getheader("Retry-After"))
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                # A kept-alive connection the server closed while idle: reconnect once at
                # no cost (the server closed it without reading the request).
                if reused and not fresh_try and _looks_stale(exc):
                    continue
                raise _Unreachable(exc, sent) from exc
            except BaseException:
                self._drop()  # e.g. KeyboardInterrupt mid-exchange: never reuse it
                raise
        raise AssertionError("unreachable")

    def request(
        self, method: str, path: str, body: Any = _MISSING, *, timeout: float = TIMEOUT_S
    ) -> tuple[int, Any]:
        """(status, decoded JSON or None) of a 2xx or 404 answer; raises on anything else."""
        endpoint, token = self._settings()
        payload = (
            None
            if body is _MISSING
            else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        )
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"cronium-python/{__version__}",
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        full_path = endpoint.base_path + API_PREFIX + path
        delays = backoff_delays()
        for attempt in range(len(delays) + 1):
            last = attempt == len(delays)
            try:
                with self._lock:
                    status, raw, retry_after = self._send(
                        endpoint, method, full_path, payload, headers, timeout
                    )
            except _Unreachable as failed:
                # A POST that was fully sent may have been applied: never repeat it.
                if last or (failed.sent and method not in _IDEMPOTENT):
                    where = endpoint.socket_path or f"{endpoint.host}:{endpoint.port or ''}"
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise CroniumError(
                        f"Cronium Runtime API {method} {full_path}: cannot reach {where}: "
                        f"{failed.cause!r}{tries}"
                    ) from failed.cause
                self.sleep(retry_wait(delays[attempt], None))
                continue
            if 200 <= status < 300 or status == 404:
                return status, _decode(raw)
            failure = error_from_response(method, full_path, status, raw)
            retryable = not isinstance(failure, CroniumAuthError) and is_retryable_status(
                method, status
            )
            if last or not retryable:
                raise failure
            self.sleep(retry_wait(delays[attempt], retry_after))
        raise AssertionError("unreachable")

    def call(
        self, method: str, path: str, body: Any = _MISSING, *, timeout: float = TIMEOUT_S
    ) -> Any:
        """Like `request`, but a 404 raises too."""
        status, data = self.request(method, path, body, timeout=timeout)
        if status == 404:
            raise _not_found(method, path, data)
        return data


def _idle_and_open(conn: http.client.HTTPConnection) -> bool:
    """False when the server already closed this idle keep-alive connection (EOF pending)."""
    sock = conn.sock
    if sock is None:
        return True  # not connected yet: http.client connects on the next request
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class _Unreachable(Exception):
    """No HTTP answer; `sent`: the request had been fully written before the failure."""

    def __init__(self, cause: BaseException, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


def _looks_stale(exc: BaseException) -> bool:
    import http.client

    return isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def _not_found(method: str, path: str, data: Any) -> CroniumError:
    raw = json.dumps(data).encode() if data is not None else b""
    return error_from_response(method, API_PREFIX + path, 404, raw)


_client = Client()


def _is_route_missing(exc: CroniumError) -> bool:
    """A 404/405 from the router itself (no such endpoint), not from the endpoint's logic."""
    return exc.status == 405 or (exc.status == 404 and exc.message.rstrip().endswith(": Not Found"))


# -- the API -------------------------------------------------------------------------------


def input() -> Any:
    """The execution's input: the JSON the run was started with ({} when it was given none)."""
    return _client.call("GET", "/input").get("value")


def output(data: Any) -> None:
    """Set this job's output (any JSON-serialisable value)."""
    _client.call("PUT", "/output", {"value": data})


def get_variable(key: str, default: Any = None) -> Any:
    """A variable's value, or `default` (None) when it does not exist."""
    status, data = _client.request("GET", f"/variables/{encode_key(key)}")
    if status == 404:
        return default
    return data.get("value") if isinstance(data, dict) else data


def set_variable(key: str, value: Any) -> None:
    """Create or replace a variable (a secret variable stays secret)."""
    _client.call("PUT", f"/variables/{encode_key(key)}", {"value": value})


def delete_variable(key: str) -> bool:
    """Delete a variable: True if it existed, False if it did not."""
    status, _ = _client.request("DELETE", f"/variables/{encode_key(key)}")
    return status != 404


def variable_exists(key: str) -> bool:
    """Whether the variable exists (even with a null value)."""
    status, _ = _client.request("GET", f"/variables/{encode_key(key)}")
    return status != 404


def increment_variable(key: str, by: int | float = 1) -> int | float:
    """Atomically add `by` to a numeric variable (missing counts as 0); the new value."""
    if isinstance(by, bool) or not isinstance(by, (int, float)):
        raise TypeError(f"increment_variable: 'by' must be a number, not {type(by).__name__}")
    data = _client.call("POST", f"/variables/{encode_key(key)}/increment", {"by": by})
    value: int | float = data["value"]
    return value


def append_variable(key: str, value: Any) -> int:
    """Atomically append `value` to a list variable (missing starts empty); the new length."""
    data = _client.call("POST", f"/variables/{encode_key(key)}/append", {"value": value})
    return int(data["length"])


def set_condition(value: bool) -> None:
    """Set the condition that drives this event's on_condition actions."""
    if not isinstance(value, bool):
        raise TypeError(f"set_condition expects True or False, not {value!r}")
    _client.call("PUT", "/condition", {"value": value})


def get_condition() -> bool | None:
    """The condition set by this job so far (None until set)."""
    value: bool | None = _client.call("GET", "/condition").get("value")
    return value


def event() -> dict[str, Any]:
    """The run's context: {"event", "execution", "job", "user"} (see docs/sdk.md)."""
    data: dict[str, Any] = _client.call("GET", "/context")
    return data


def info() -> dict[str, str | None]:
    """Ids and mode of this run, from the environment (no API call)."""
    env = os.environ
    return {
        "execution_id": env.get("CRONIUM_EXECUTION_ID"),
        "job_id": env.get("CRONIUM_JOB_ID"),
        "event_id": env.get("CRONIUM_EVENT_ID"),
        "mode": env.get("CRONIUM_EXECUTION_MODE"),
    }


def execute_tool_action(tool: str, action: str, params: dict[str, Any] | None = None) -> Any:
    """Run a tool action (e.g. tool "slack", action "send_message") with the owner's credentials.

    Returns the server's JSON answer. Not retried after the request may have reached the
    server (a message could be sent twice).
    """
    if not isinstance(tool, str) or not tool or not isinstance(action, str) or not action:
        raise CroniumError("execute_tool_action needs a tool and an action name")
    if params is not None and not isinstance(params, dict):
        raise TypeError("execute_tool_action: params must be a dict")
    body = {"tool": tool, "action": action, "params": params or {}}
    try:
        return _client.call("POST", "/tool-actions", body, timeout=TOOL_TIMEOUT_S)
    except CroniumError as exc:
        if _is_route_missing(exc) and not isinstance(exc, CroniumAuthError):
            raise CroniumError(
                f"tool actions are not available on this Cronium server ({exc.message})",
                status=exc.status,
                code=exc.code,
                details=exc.details,
            ) from exc
        raise


def _params(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def send_email(
    to: str | list[str],
    subject: str,
    body: str,
    html: str | None = None,
    credential_id: int | None = None,
    cc: str | list[str] | None = None,
    bcc: str | list[str] | None = None,
    reply_to: str | None = None,
    **extra: Any,
) -> Any:
    """Send an e-mail: tool "email", action "send"."""
    params = _params(
        to=to,
        subject=subject,
        body=body,
        html=html,
        credential_id=credential_id,
        cc=cc,
        bcc=bcc,
        reply_to=reply_to,
    )
    return execute_tool_action("email", "send", {**params, **extra})


def send_slack_message(
    text: str,
    channel: str | None = None,
    credential_id: int | None = None,
    blocks: list[dict[str, Any]] | None = None,
    username: str | None = None,
    **extra: Any,
) -> Any:
    """Post a Slack message: tool "slack", action "send_message"."""
    params = _params(
        text=text, channel=channel, credential_id=credential_id, blocks=blocks, username=username
    )
    return execute_tool_action("slack", "send_message", {**params, **extra})


def send_discord_message(
    content: str,
    credential_id: int | None = None,
    username: str | None = None,
    embeds: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Any:
    """Post a Discord message: tool "discord", action "send_message"."""
    params = _params(content=content, credential_id=credential_id, username=username, embeds=embeds)
    return execute_tool_action("discord", "send_message", {**params, **extra})


# camelCase aliases for scripts written against the older SDK.
getInput = input
setOutput = output
getVariable = get_variable
setVariable = set_variable
deleteVariable = delete_variable
variableExists = variable_exists
incrementVariable = increment_variable
appendVariable = append_variable
setCondition = set_condition
getCondition = get_condition
getEvent = event
context = event
executeToolAction = execute_tool_action
sendEmail = send_email
sendSlackMessage = send_slack_message
sendDiscordMessage = send_discord_message
