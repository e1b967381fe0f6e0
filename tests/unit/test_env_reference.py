"""The environment-variable reference in docs/container-migration/deployment.md lists
exactly the variables `cronium.config.Settings` reads (its validation aliases)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from cronium.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "container-migration" / "deployment.md"
SECTION = "## Environment variables"
ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|")


def settings_vars() -> dict[str, str]:
    """Variable name -> the Settings field that reads it."""
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names[alias] = field_name
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names[choice] = field_name
        else:
            names[field_name.upper()] = field_name
    return names


def documented_vars() -> list[str]:
    text = DOC.read_text()
    assert SECTION in text, f"{DOC.name} has no '{SECTION}' section"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    return [m.group(1) for line in section.splitlines() if (m := ROW.match(line.strip()))]


def test_reference_rows_are_unique() -> None:
    rows = documented_vars()
    assert rows, f"no `| `VAR` | … |` rows under '{SECTION}' in {DOC}"
    duplicates = sorted({name for name in rows if rows.count(name) > 1})
    assert not duplicates, f"{DOC.name} lists these variables more than once: {duplicates}"


def test_every_setting_is_documented() -> None:
    wanted = settings_vars()
    missing = sorted(set(wanted) - set(documented_vars()))
    assert not missing, (
        f"{DOC.name}, '{SECTION}', lacks a row for: "
        + ", ".join(f"{name} (Settings.{wanted[name]})" for name in missing)
        + " — add `| `NAME` | default | meaning |` rows"
    )


def test_nothing_documented_that_settings_do_not_read() -> None:
    unknown = sorted(set(documented_vars()) - set(settings_vars()))
    assert not unknown, (
        f"{DOC.name}, '{SECTION}', lists variables cronium.config.Settings does not read: "
        f"{', '.join(unknown)}"
    )
