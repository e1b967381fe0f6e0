"""The Runtime API's Unix socket: bound next to the TCP port on the same server.

Scripts reach it without any network (containers get the socket file itself mounted, never
its directory). Over the socket only /runtime/ paths answer; the rest of the app is for the
TCP port.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from cronium import metrics
from cronium.errors import ConfigError

SOCKET_PATH_MAX = 100


def bind_runtime_socket(path: Path) -> socket.socket:
    """Bind the socket (replacing a stale one) so any local user with a token may connect.

    The execution token is the access control; the file mode only has to let job users
    (e.g. uid 65534 in containers) connect.
    """
    if len(str(path)) >= SOCKET_PATH_MAX:
        raise ConfigError(
            f"CRONIUM_RUNTIME_SOCKET: path {path} is longer than {SOCKET_PATH_MAX - 1} bytes"
        )
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)  # only a directory of ours: never /tmp's or /var/run's
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(
                f"CRONIUM_RUNTIME_SOCKET: {path} exists and is not a socket; not replacing it"
            )
        path.unlink()  # a stale socket of an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o666)
    sock.setblocking(False)
    return sock


def over_unix_socket(scope: Scope) -> bool:
    """uvicorn reports a Unix-socket connection's server as (path, None)."""
    server: Any = scope.get("server")
    return server is not None and server[1] is None and str(server[0]).startswith("/")


class RuntimeOnlyOverSocket:
    """Answer 404 to anything but /runtime/ on Unix-socket connections, and serve the
    Runtime API's operations there directly (see router.serve_directly)."""

    def __init__(self, app: ASGIApp) -> None:
        from cronium.runtime.router import runtime_endpoint, serve_directly  # imports us

        self.app = app
        self.serve_directly = serve_directly
        self.runtime_endpoint = runtime_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith("/runtime/"):
            endpoint = self.runtime_endpoint(scope["method"], scope["path"])
            await metrics.observe_runtime(self._serve, endpoint, scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        over_socket = scope["type"] in ("http", "websocket") and over_unix_socket(scope)
        if not over_socket:
            await self.app(scope, receive, send)
            return
        runtime = str(scope.get("path", "")).startswith("/runtime/")
        if runtime and scope["type"] == "http" and await self.serve_directly(scope, receive, send):
            return
        if not runtime:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            body = json.dumps(
                {
                    "error": {
                        "code": "not_found",
                        "message": "only /runtime/ is served on this socket",
                        "details": None,
                    }
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
