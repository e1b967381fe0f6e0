"""Old file-based helper idioms become SDK calls; anything unclear is kept and reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cronium.domain.script_migration import language_of, migrate


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("source ./cronium.sh\necho hi", "echo hi"),
        (". cronium-helper.sh\necho hi", "echo hi"),
        ("DATA=$(cat input.json)", "DATA=$(cronium_input)"),
        ("NAME=$(jq -r .name input.json)", "NAME=$(cronium_input | jq -r .name)"),
        ("echo '{\"ok\": true}' > output.json", "cronium_output '{\"ok\": true}'"),
        ("cat > output.json <<EOF", "cronium_output <<EOF"),
    ],
)
def test_bash_idioms_are_rewritten(before: str, after: str) -> None:
    assert migrate(before, "bash").rewritten == after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("data = json.load(open('input.json'))", "data = cronium.input()"),
        ('data = json.loads(open("input.json").read())', "data = cronium.input()"),
        ("json.dump(result, open('output.json', 'w'))", "cronium.output(result)"),
        (
            "with open('output.json', 'w') as f:\n    json.dump({'a': 1}, f)",
            "cronium.output({'a': 1})",
        ),
        (
            "with open('input.json') as fh:\n    payload = json.load(fh)",
            "payload = cronium.input()",
        ),
        ("import cronium_helper\nprint(1)", "print(1)"),
        ("sys.path.insert(0, '/tmp/cronium')\nprint(1)", "print(1)"),
    ],
)
def test_python_idioms_are_rewritten(before: str, after: str) -> None:
    assert migrate(before, "python").rewritten == after


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("const cronium = require('./cronium.js');", "const cronium = require('cronium');"),
        (
            "const input = JSON.parse(fs.readFileSync('input.json', 'utf8'));",
            "const input = (await cronium.input());",
        ),
        (
            "fs.writeFileSync('output.json', JSON.stringify(result));",
            "await cronium.output(result);",
        ),
    ],
)
def test_node_idioms_are_rewritten(before: str, after: str) -> None:
    assert migrate(before, "node").rewritten == after


def test_an_unknown_use_of_a_helper_file_is_kept_and_reported() -> None:
    result = migrate("cp input.json /backup/\necho done", "bash")
    assert result.rewritten == "cp input.json /backup/\necho done"
    assert result.unresolved == [(1, "cp input.json /backup/")]


def test_a_script_without_helpers_is_unchanged() -> None:
    assert not migrate("echo hello\n", "bash").changed


def test_the_language_comes_from_the_extension_or_the_shebang() -> None:
    assert language_of(Path("x.py"), "") == "python"
    assert language_of(Path("job"), "#!/usr/bin/env node\n") == "node"
    assert language_of(Path("job"), "#!/bin/bash\n") == "bash"
    assert language_of(Path("notes.txt"), "hello") is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cronium", "migrate-scripts", *args], capture_output=True, text=True
    )


def test_dry_run_prints_a_diff_and_changes_nothing(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("import json\ndata = json.load(open('input.json'))\nprint(data)\n")
    result = run_cli("--dry-run", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "-data = json.load(open('input.json'))" in result.stdout
    assert "+data = cronium.input()" in result.stdout
    assert "would change 1 of 1 file(s)" in result.stderr
    assert "input.json" in script.read_text()


def test_a_real_run_rewrites_and_keeps_a_backup(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    original = "source ./cronium.sh\nNAME=$(jq -r .name input.json)\necho $NAME\n"
    script.write_text(original)
    result = run_cli(str(script))
    assert result.returncode == 0, result.stderr
    assert script.read_text() == "NAME=$(cronium_input | jq -r .name)\necho $NAME\n"
    assert (tmp_path / "job.sh.orig").read_text() == original


def test_a_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(str(tmp_path / "nope.sh"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"cronium: {tmp_path / 'nope.sh'}: no such file or directory"
