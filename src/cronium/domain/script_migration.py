"""Rewrite scripts written for the old file-based runtime helpers into SDK calls.

The old system dropped `input.json`/`output.json` (and helper files such as
`cronium.sh` / `cronium.js` / `cronium.py`) next to each script. Scripts read and wrote
those files or loaded the helpers. Now the SDK is pre-loaded, so:

- lines that load a helper file (`source`/`.` a helper, `require('./cronium…')`,
  `import cronium_helper`, `sys.path` tweaks for it, `exec` of a helper) are removed or
  pointed at the SDK;
- reading input.json becomes the SDK's input call; writing output.json its output call.

Rules are line-based and conservative: a line the rules do not understand is kept and
reported, so a user reviews the diff (`--dry-run`) before writing.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

LANGUAGES = {
    ".sh": "bash",
    ".bash": "bash",
    ".py": "python",
    ".js": "node",
    ".mjs": "node",
    ".cjs": "node",
}
HELPER = (
    r"""['"]?(?:\./|\$\w+/|\$\{\w+\}/)?"""
    r"(?:cronium[-_.]?(?:helper|runtime|helpers|sdk)?|runtime[-_]helper)"
    r"""(?:\.(?:sh|js|py))?['"]?"""
)

Rule = tuple[re.Pattern[str], str]


def _rules(*pairs: tuple[str, str]) -> list[Rule]:
    return [(re.compile(p), r) for p, r in pairs]


BASH_RULES = _rules(
    (rf"^\s*(?:source|\.)\s+{HELPER}\s*$", ""),
    (rf"^\s*exec\s+{HELPER}.*$", ""),
    (
        r"""^(\s*)(\w+)=\$\(\s*cat\s+['"]?(?:\./)?input\.json['"]?\s*\)\s*$""",
        r"\1\2=$(cronium_input)",
    ),
    (r"""\$\(\s*cat\s+['"]?(?:\./)?input\.json['"]?\s*\)""", "$(cronium_input)"),
    (r"""\bjq\s+(.+?)\s+['"]?(?:\./)?input\.json['"]?""", r"cronium_input | jq \1"),
    (
        r"""^(\s*)(?:echo|printf\s+'%s\\n'|printf\s+%s)\s+(.+?)\s*>\s*['"]?(?:\./)?output\.json['"]?\s*$""",
        r"\1cronium_output \2",
    ),
    (r"""^(\s*)cat\s*>\s*['"]?(?:\./)?output\.json['"]?\s*<<""", r"\1cronium_output <<"),
)

PYTHON_RULES = _rules(
    (r"^\s*sys\.path\.(?:insert|append)\(.*cronium.*\)\s*$", ""),
    (
        r"^\s*(?:import\s+cronium_(?:helper|runtime)(?:\s+as\s+\w+)?|from\s+cronium_(?:helper|runtime)\s+import\s+.*)\s*$",
        "",
    ),
    (
        r"""json\.load\(\s*open\(\s*['"](?:\./)?input\.json['"](?:\s*,\s*['"]r['"])?\s*\)\s*\)""",
        "cronium.input()",
    ),
    (
        r"""json\.loads\(\s*open\(\s*['"](?:\./)?input\.json['"](?:\s*,\s*['"]r['"])?\s*\)\.read\(\)\s*\)""",
        "cronium.input()",
    ),
    (
        r"""json\.dump\(\s*(.+?)\s*,\s*open\(\s*['"](?:\./)?output\.json['"]\s*,\s*['"]w['"]\s*\)\s*\)""",
        r"cronium.output(\1)",
    ),
)

NODE_RULES = _rules(
    (
        rf"""^(\s*(?:const|let|var)\s+\w+\s*=\s*)require\(\s*{HELPER}\s*\)\s*;?\s*$""",
        r"\1require('cronium');",
    ),
    (
        r"""JSON\.parse\(\s*(?:fs\.)?readFileSync\(\s*['"](?:\./)?input\.json['"](?:\s*,\s*['"]utf-?8['"])?\s*\)(?:\.toString\(\))?\s*\)""",
        "(await cronium.input())",
    ),
    (r"""require\(\s*['"]\./input\.json['"]\s*\)""", "(await cronium.input())"),
    (
        r"""(?:fs\.)?writeFileSync\(\s*['"](?:\./)?output\.json['"]\s*,\s*JSON\.stringify\((.+?)\)\s*\)""",
        r"await cronium.output(\1)",
    ),
)

# `with open('output.json', 'w') as f:` followed by `json.dump(X, f)` → `cronium.output(X)`.
PY_WITH_OUTPUT = re.compile(
    r"""^(\s*)with\s+open\(\s*['"](?:\./)?output\.json['"]\s*,\s*['"]w['"]\s*\)\s+as\s+(\w+)\s*:\s*$"""
)
PY_WITH_INPUT = re.compile(
    r"""^(\s*)with\s+open\(\s*['"](?:\./)?input\.json['"](?:\s*,\s*['"]r['"])?\s*\)\s+as\s+(\w+)\s*:\s*$"""
)

RULES = {"bash": BASH_RULES, "python": PYTHON_RULES, "node": NODE_RULES}


@dataclass
class Migration:
    language: str
    original: str
    rewritten: str
    unresolved: list[tuple[int, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.original != self.rewritten

    def diff(self, name: str) -> str:
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.rewritten.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )


def language_of(path: Path, text: str) -> str | None:
    if path.suffix in LANGUAGES:
        return LANGUAGES[path.suffix]
    first = text.split("\n", 1)[0]
    if first.startswith("#!"):
        for needle, lang in (
            ("python", "python"),
            ("node", "node"),
            ("bash", "bash"),
            ("sh", "bash"),
        ):
            if needle in first:
                return lang
    return None


def migrate(text: str, language: str) -> Migration:
    lines = text.split("\n")
    out: list[str] = []
    unresolved: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if (
            language == "python"
            and i + 1 < len(lines)
            and (joined := _python_with(line, lines[i + 1]))
        ):
            out.append(joined)
            i += 2
            continue
        new = line
        for pattern, replacement in RULES[language]:
            new = pattern.sub(replacement, new)
        if new.strip() == "" and line.strip() != "":
            i += 1  # a helper-loading line: drop it
            continue
        if re.search(r"\b(?:input|output)\.json\b", new):
            unresolved.append((i + 1, line))
        out.append(new)
        i += 1
    return Migration(language, text, "\n".join(out), unresolved)


def _python_with(line: str, following: str) -> str | None:
    if match := PY_WITH_OUTPUT.match(line):
        indent, handle = match.groups()
        dump = re.match(rf"^\s*json\.dump\(\s*(.+?)\s*,\s*{handle}\s*(?:,.*)?\)\s*$", following)
        if dump:
            return f"{indent}cronium.output({dump.group(1)})"
    if match := PY_WITH_INPUT.match(line):
        indent, handle = match.groups()
        load = re.match(rf"^\s*(\w+)\s*=\s*json\.load\(\s*{handle}\s*\)\s*$", following)
        if load:
            return f"{indent}{load.group(1)} = cronium.input()"
    return None
