"""The warm Python: a started interpreter that forks once per Python job.

Run by the local executor as `python3 -u pyfork_server.py <fd>` with the job
environment's PYTHONPATH (the SDK's pre-load). It imports what the SDK needs, then waits
on the control socket (a SOCK_SEQPACKET descriptor: one message per request). Per
request — JSON {"id", "script", "cwd", "env"} with the job's stdin, stdout and stderr as
passed descriptors — it forks a child that starts
its own session, takes the descriptors as 0/1/2, switches to the job's directory and
environment and runs the script as `__main__`, exactly as `python3 -u script` would
after start-up. The server answers {"id", "pid"} at once and {"id", "exit"} when the
child is reaped. It exits when the control socket closes (Cronium went away).

Standard library only, and no threads: it forks.
"""

from __future__ import annotations

import sys

# Python put this file's folder first on sys.path: Cronium's executors/http.py would
# shadow the standard library's http. Jobs get their own sys.path[0] anyway.
if sys.path and sys.path[0] == __file__.rpartition("/")[0]:
    del sys.path[0]

import ctypes
import json
import os
import select
import signal
import socket
from typing import Any

# What every SDK call needs, imported once here instead of in every job.
for _module in ("http.client", "runpy", "threading", "urllib.parse", "traceback"):
    __import__(_module)
import runpy  # noqa: E402


def _preload_sdk() -> None:
    """Load the SDK module behind sitecustomize's lazy `cronium` now, once for all jobs.

    Safe to share: its client reads the run's URL and token from the environment at the
    first call, and reconnects in a process whose pid changed.
    """
    import builtins

    try:
        sdk = getattr(builtins, "cronium", None)
        if sdk is not None:
            getattr(sdk, "Client", None)
    except Exception:
        pass


PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 1024 * 1024


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def _child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the job, run it, never return."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.closerange(3, 3 + 64)
        # As a fresh interpreter has them: SIGCHLD and SIGTERM default, SIGPIPE ignored and
        # SIGINT raising KeyboardInterrupt (both as inherited from this interpreter).
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        script = request["script"]
        sys.argv = [script]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        try:
            import atexit
            import threading as _threading

            _threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads
            atexit._run_exitfuncs()  # as interpreter shutdown would
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
    finally:
        os._exit(code)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def main() -> None:
    _preload_sdk()
    control = socket.socket(fileno=int(sys.argv[1]))
    control.setblocking(True)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, Any] = {}
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = children.pop(pid, None)
            if job is not None:
                code = os.waitstatus_to_exitcode(status)
                reply = {"id": job, "exit": code if code >= 0 else 128 - code}
                control.send(json.dumps(reply).encode())
        if control.fileno() not in readable:
            continue
        message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 3)
        if not message:
            return  # Cronium closed the socket: its jobs die with us (PDEATHSIG)
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            control.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        children[pid] = request["id"]
        control.send(json.dumps({"id": request["id"], "pid": pid}).encode())


if __name__ == "__main__":
    main()
