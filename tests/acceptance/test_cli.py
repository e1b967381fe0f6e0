"""The `cronium` command as a user runs it: one-line config errors, users and tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import Api

CLI = [sys.executable, "-m", "cronium"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CRONIUM_", "DATABASE_URL", "VALKEY"))
    }
    return subprocess.run(
        [*CLI, *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cronium: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_version_prints_the_version() -> None:
    result = run_cli("version")
    assert result.returncode == 0
    assert result.stdout.strip() == __import__("cronium").__version__


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"DATABASE_URL": "not a url"}, ("DATABASE_URL", "postgresql://")),
        ({"DATABASE_URL": "mysql://root@localhost/db"}, ("DATABASE_URL", "postgresql")),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432"}, ("DATABASE_URL", "database")),
        ({"CRONIUM_PORT": "70000"}, ("CRONIUM_PORT", "65535")),
        ({"CRONIUM_PORT": "eighty"}, ("CRONIUM_PORT",)),
        ({"CRONIUM_ENCRYPTION_KEY": "short"}, ("CRONIUM_ENCRYPTION_KEY", "base64")),
        ({"CRONIUM_SECRET_KEY": "too-short"}, ("CRONIUM_SECRET_KEY", "32")),
        ({"CRONIUM_EXECUTOR": "kubernetes"}, ("CRONIUM_EXECUTOR",)),
        ({"CRONIUM_LOG_LEVEL": "loud"}, ("CRONIUM_LOG_LEVEL",)),
    ],
)
@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_bad_setting_is_one_line_and_exit_status_2(
    command: str, env: dict[str, str], fragments: tuple[str, ...], tmp_path: Path
) -> None:
    result = run_cli(command, env={"CRONIUM_DATA_DIR": str(tmp_path), **env})
    assert_one_line_error(result, *fragments)


def test_an_unreachable_database_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/cronium",
        "CRONIUM_DATA_DIR": str(tmp_path),
    }
    result = run_cli("serve", env=env)
    assert_one_line_error(result, "DATABASE_URL", "cannot connect", "127.0.0.1:1")


def test_a_secret_file_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    env = {"CRONIUM_SECRET_KEY_FILE": str(tmp_path / "missing"), "CRONIUM_DATA_DIR": str(tmp_path)}
    assert_one_line_error(run_cli("migrate", env=env), "CRONIUM_SECRET_KEY_FILE")


def test_an_unknown_role_for_serve_is_refused(tmp_path: Path) -> None:
    result = run_cli("serve", "--roles", "api,gardener", env={"CRONIUM_DATA_DIR": str(tmp_path)})
    assert_one_line_error(result, "gardener")


def test_migrate_reports_the_head_revision(database_url: str, tmp_path: Path) -> None:
    result = run_cli(
        "migrate", env={"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    from cronium.db.migrate import head_revision

    assert head_revision() in result.stdout


async def test_create_user_and_token_give_working_api_access(
    database_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    env = {"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(tmp_path)}
    created = run_cli(
        "create-user",
        "--email",
        "Ops@Example.com",
        "--password",
        "s3cret-pass",
        "--role",
        "user",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    assert "ops@example.com" in created.stdout
    again = run_cli(
        "create-user", "--email", "ops@example.com", "--password", "s3cret-pass", env=env
    )
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    token = run_cli("create-token", "--email", "ops@example.com", "--name", "ci", env=env)
    assert token.returncode == 0, token.stderr
    value = token.stdout.strip()
    assert value.startswith("crn_")
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 200
    assert me.json()["email"] == "ops@example.com"


def test_create_user_refuses_a_short_password(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(tmp_path)}
    result = run_cli("create-user", "--email", "a@example.com", "--password", "short", env=env)
    assert result.returncode == 1
    assert "at least 8" in result.stderr


def test_create_token_for_an_unknown_user_is_one_line(database_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(tmp_path)}
    result = run_cli("create-token", "--email", "nobody@example.com", "--name", "x", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == "cronium: no user with email nobody@example.com"


async def test_api_fixture_sanity(api: dict[str, Api]) -> None:
    assert (await api["admin"].get("/auth/me")).json()["role"] == "admin"
