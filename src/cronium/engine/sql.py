"""Load the named queries of queries.sql once."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_QUERIES_FILE = Path(__file__).with_name("queries.sql")
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    text = _QUERIES_FILE.read_text()
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


def q(name: str) -> str:
    return queries()[name]
