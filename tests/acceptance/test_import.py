"""`cronium import` loads YAML event definitions idempotently, resolving actions by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Api

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "events"


def run_import(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": database_url, "CRONIUM_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "cronium", "import", *args], env=env, capture_output=True, text=True
    )


async def test_importing_twice_creates_then_updates(
    database_url: str, tmp_path: Path, api: dict[str, Api]
) -> None:
    (tmp_path / "a.yaml").write_text(
        "name: first\nlanguage: bash\ncontent: echo 1\nactions:\n  - {on: on_success, type: run_event, event: second}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "name: second\nlanguage: python\ncontent: print(2)\nexpect: {status: succeeded}\n"
    )
    first = run_import(
        database_url, tmp_path / "data", "--email", "user@example.com", str(tmp_path)
    )
    assert first.returncode == 0, first.stderr
    assert "created first" in first.stdout and "created second" in first.stdout
    again = run_import(
        database_url, tmp_path / "data", "--email", "user@example.com", str(tmp_path)
    )
    assert again.returncode == 0, again.stderr
    assert "updated first" in again.stdout
    events = {e["name"]: e for e in (await api["user"].get("/events")).json()["items"]}
    assert set(events) == {"first", "second"}
    assert events["first"]["actions"][0]["event_id"] == events["second"]["id"]


def test_a_bad_definition_is_one_clear_line(database_url: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nlanguage: cobol\n")
    result = run_import(
        database_url, tmp_path / "data", "--email", "user@example.com", str(tmp_path / "bad.yaml")
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and "language" in lines[0]


def test_the_shipped_examples_import(database_url: str, tmp_path: Path) -> None:
    result = run_import(
        database_url, tmp_path / "data", "--email", "user@example.com", str(EXAMPLES)
    )
    assert result.returncode == 0, result.stderr
