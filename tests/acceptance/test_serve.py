"""`cronium serve` as a newcomer runs it: bootstrap admin, log in, create an event, stop."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temp dir the embedded server's unprivileged user can enter (pytest's are 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="cronium-serve-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


ADMIN = {"CRONIUM_ADMIN_EMAIL": "admin@example.com", "CRONIUM_ADMIN_PASSWORD": "change-me-now"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(env: dict[str, str], *, startup_timeout_s: float = 90) -> Iterator[str]:
    port = free_port()
    log_path = Path(env["CRONIUM_DATA_DIR"]).parent / f"serve-{port}.log"
    log_file = log_path.open("w")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRONIUM_", "DATABASE_URL", "VALKEY"))
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "cronium", "serve"],
        env={**base, **env, "CRONIUM_PORT": str(port)},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"cronium serve exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("cronium serve did not answer /health in time")
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()
    assert proc.returncode == 0, log_path.read_text()


def login_and_create_event(client: httpx.Client, name: str) -> None:
    resp = client.post(
        "/api/v1/auth/login",
        json={"email": ADMIN["CRONIUM_ADMIN_EMAIL"], "password": ADMIN["CRONIUM_ADMIN_PASSWORD"]},
    )
    assert resp.status_code == 200, resp.text
    client.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
    created = client.post(
        "/api/v1/events",
        json={
            "name": name,
            "language": "bash",
            "content": "echo hi",
            "schedule": {"kind": "cron", "cron": "*/5 * * * *"},
        },
    )
    assert created.status_code == 201, created.text
    bad = client.post("/api/v1/events", json={"name": name, "language": "cobol"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"


@pytest.mark.slow
def test_serve_with_an_external_database_runs_and_stops_cleanly(
    database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(tmp_path), **ADMIN}
    # The template database already has users, so no bootstrap: log in as a persona instead.
    with serving(env) as url:
        ready = httpx.get(f"{url}/ready", timeout=10)
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"]["status"] == "ok"
        openapi = httpx.get(f"{url}/api/openapi.json", timeout=10)
        assert openapi.status_code == 200 and "/api/v1/events" in openapi.json()["paths"]
        assert httpx.get(f"{url}/api/docs", timeout=10).status_code == 200


@pytest.mark.slow
def test_a_newcomer_runs_cronium_with_the_embedded_database(open_tmp: Path) -> None:
    data_dir = open_tmp / "cronium-data"
    env = {"CRONIUM_DATA_DIR": str(data_dir), **ADMIN}
    with serving(env) as url, httpx.Client(base_url=url, timeout=10) as client:
        login_and_create_event(client, "nightly")
        assert client.get("/api/v1/events").json()["total"] == 1
    assert (data_dir / "encryption.key").stat().st_mode & 0o777 == 0o600
    # Second start: the same data is found again, and the bootstrap admin is not re-created.
    with serving(env) as url, httpx.Client(base_url=url, timeout=10) as client:
        resp = client.post(
            "/api/v1/auth/login",
            json={
                "email": ADMIN["CRONIUM_ADMIN_EMAIL"],
                "password": ADMIN["CRONIUM_ADMIN_PASSWORD"],
            },
        )
        assert resp.status_code == 200
        events = client.get("/api/v1/events").json()
        assert [e["name"] for e in events["items"]] == ["nightly"]
    postmaster = data_dir / "postgres" / "data" / "postmaster.pid"
    assert not postmaster.exists(), "embedded PostgreSQL still running after serve stopped"
