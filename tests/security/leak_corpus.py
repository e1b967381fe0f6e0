"""The secret-leak corpus: the secrets, the forms the masker claims to hide, and how a
case (one way a script prints a secret) is written and judged.

Every case runs between two marker lines, written to stdout and stderr alike, so the
lines of a case are found on its stream whatever the interleaving of the two pipes. A
case's check gets those lines (as stored) and says what is wrong, or None.
"""

from __future__ import annotations

import base64
import json
import random
import shlex
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from markupsafe import escape

from cronium.logs.capture import MASK

M = MASK


def _random(seed: int, size: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(size))


def _pem(seed: int) -> str:
    body = base64.b64encode(random.Random(seed).randbytes(300)).decode()  # 400 characters
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PRIVATE KEY-----", *lines, "-----END PRIVATE KEY-----"])


@dataclass(frozen=True)
class Secrets:
    """What the owner keeps secret. Lengths matter to some expectations (noted)."""

    simple: str = "hunter2-Zq8vX4rTm9"  # env SIMPLE; 18 bytes: its base64 ends on a group
    fancy: str = "Pa\"ss\\wö'rd/+&=☃ q9>>>??~"  # variable "fancy": quotes, \\, UTF-8, +/ in base64
    long: str = field(default_factory=lambda: "Lg" + _random(1, 118))  # env LONG; 120 bytes
    pem: str = field(default_factory=lambda: _pem(2))  # variable "pem": a multi-line secret
    svc: dict[str, str] = field(
        default_factory=lambda: {"user": "svc-bot", "password": "Js0n-Pa55-w0rd-77"}
    )  # variable "svc": a secret holding JSON
    rotated_old: str = "rotated-old-value-1"  # variable "rotated", replaced by the bash run
    header: str = "hdr-S3cret-9f8e7d6c5b"  # the webhook credential's X-Signature header
    hook_path: str = "p4th-S3cret-0a1b2c3d"  # the webhook credential's URL path
    server_password: str = "srv-Pa55word-1234abcd"
    webhook_secret: str = "whsec-0123456789abcdef-ZZ"
    pin: str = "731"  # variable "pin": shorter than 4 characters, never masked (documented)

    @property
    def env(self) -> dict[str, str]:
        return {"SIMPLE": self.simple, "LONG": self.long}

    @property
    def variables(self) -> dict[str, Any]:
        return {
            "fancy": self.fancy,
            "pem": self.pem,
            "svc": self.svc,
            "rotated": self.rotated_old,
            "pin": self.pin,
        }

    @property
    def pem_lines(self) -> int:
        return len(self.pem.splitlines())

    def strings(self) -> list[str]:
        """Every secret string the system must never show (the pin is too short: a limit)."""
        found = [self.simple, self.fancy, self.long, self.pem, self.rotated_old]
        found += [self.header, self.hook_path, self.server_password, self.webhook_secret]
        found += secret_strings(self.svc)
        return found


def secret_strings(value: Any) -> list[str]:
    """A structured secret is shown whole (Python's and JavaScript's JSON) or by field."""
    if isinstance(value, str):
        return [value]
    found = [
        json.dumps(value),
        json.dumps(value, separators=(",", ":")),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False),
    ]
    if isinstance(value, dict):
        found += [s for v in value.values() for s in secret_strings(v)]
    return found


def claimed_forms(secret: str) -> set[str]:
    """The forms docs/security.md says are masked, written out independently of src/."""
    raw = secret.encode()
    j_ascii, j_utf8 = json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    forms = {
        secret,
        j_ascii,
        j_utf8,
        json.dumps(j_ascii)[1:-1],
        json.dumps(j_utf8, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\"),
        quote(secret, safe=""),
        quote(secret),
        quote(secret, safe="!'()*"),
        quote(secret, safe=";,/?:@&=+$#!'()*"),
        quote_plus(secret),
        std,
        std.rstrip("="),
        url,
        url.rstrip("="),
        str(escape(secret)),  # as a page would show it
    }
    if "'" in secret:
        forms |= {secret.replace("'", "'\\''"), shlex.quote(secret)[1:-1]}
    for width in (76, 64):
        forms |= {std[i : i + width] for i in range(0, len(std), width)}
    forms |= {part.strip() for part in secret.splitlines()}
    return {form for form in forms if len(form) >= 8 or (form == secret and len(form) >= 4)}


def forbidden(secrets: Iterable[str]) -> dict[str, str]:
    """{form: which secret it shows} for every claimed form of every secret."""
    found: dict[str, str] = {}
    for secret in secrets:
        for form in claimed_forms(secret):
            found.setdefault(form, secret)
    return found


# -- cases ----------------------------------------------------------------------------------

Check = Callable[[list[str], Secrets], str | None]


@dataclass(frozen=True)
class Case:
    id: str
    language: str  # bash | python | node
    code: str
    check: Check
    stream: str = "stdout"
    limit: bool = False  # "not masked, by design": the check shows the documented behaviour
    why: str = ""


def lines(*expected: str) -> Check:
    """Exactly these lines."""

    def check(got: list[str], secrets: Secrets) -> str | None:
        return None if got == list(expected) else f"expected {list(expected)!r}"

    return check


def lines_of(expected: Callable[[Secrets], list[str]]) -> Check:
    """Exactly the lines `expected` computes from the secrets (for the limits)."""

    def check(got: list[str], secrets: Secrets) -> str | None:
        want = expected(secrets)
        return None if got == want else f"expected {want!r}"

    return check


def all_masked(count: Callable[[Secrets], int] | int | None = None, tail: int = 0) -> Check:
    """Every line is the mask; the last may keep `tail` characters that also encode other
    bytes (the newline `echo` adds, base64 padding)."""

    def check(got: list[str], secrets: Secrets) -> str | None:
        want = count(secrets) if callable(count) else count
        if not got or (want is not None and len(got) != want):
            return f"expected {want} masked lines"
        *first, last = got
        if any(line != M for line in first):
            return "a line is not just the mask"
        if not last.startswith(M) or len(last) > len(M) + tail:
            return f"last line should be the mask and at most {tail} more characters"
        return None

    return check


def last_line(expected: str) -> Check:
    def check(got: list[str], secrets: Secrets) -> str | None:
        return None if got and got[-1] == expected else f"expected last line {expected!r}"

    return check


def masked_within(prefix: str, most: int, hidden: Callable[[Secrets], str]) -> Check:
    """One line: `prefix`, then text with the mask where `hidden` (the secret's part of an
    encoded value) was, and at most `most` characters that also encode surrounding bytes."""

    def check(got: list[str], secrets: Secrets) -> str | None:
        if len(got) != 1 or not got[0].startswith(prefix) or M not in got[0]:
            return f"expected one line starting {prefix!r} with the mask"
        if hidden(secrets) in got[0]:
            return "the encoded secret is visible"
        rest = got[0].removeprefix(prefix).replace(M, "")
        return None if len(rest) <= most else f"{len(rest)} characters left beside the mask"

    return check


# -- scripts --------------------------------------------------------------------------------


def begin(case: Case) -> str:
    return f"<<<{case.id}"


def end(case: Case) -> str:
    return f">>>{case.id}"


def bash_script(cases: list[Case], token_file: str, tail: str = "") -> str:
    parts = [
        'FANCY="$(cronium_get_variable fancy)"',
        'PEM="$(cronium_get_variable pem)"',
        'SVC="$(cronium_get_variable svc)"',
        f"printf '%s' \"$CRONIUM_EXECUTION_TOKEN\" > {token_file}",
        'mark() { echo "$1"; echo "$1" >&2; }',
    ]
    for case in cases:
        parts += [f"mark '{begin(case)}'", case.code, f"mark '{end(case)}'"]
    return "\n".join([*parts, tail]) + "\n"


def python_script(cases: list[Case], token_file: str, tail: str = "") -> str:
    parts = [
        "import base64, json, logging, os, sys, time, traceback",
        "from urllib.parse import quote, quote_plus, urlencode",
        "SIMPLE, LONG = os.environ['SIMPLE'], os.environ['LONG']",
        "FANCY, PEM, SVC = (cronium.get_variable(k) for k in ('fancy', 'pem', 'svc'))",
        "PIN = cronium.get_variable('pin')",
        f"open({token_file!r}, 'w').write(os.environ['CRONIUM_EXECUTION_TOKEN'])",
        "def mark(label):",
        "    print(label, flush=True)",
        "    print(label, file=sys.stderr, flush=True)",
    ]
    for case in cases:
        parts += [f"mark({begin(case)!r})", case.code, "sys.stdout.flush()", f"mark({end(case)!r})"]
    return "\n".join([*parts, tail]) + "\n"


def node_script(cases: list[Case], token_file: str, tail: str = "") -> str:
    parts = [
        "const fs = require('fs');",
        "const util = require('util');",
        "const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));",
        "const mark = (label) => { console.log(label); console.error(label); };",
        "const b64 = (text) => Buffer.from(text).toString('base64');",
        "(async () => {",
        "const SIMPLE = process.env.SIMPLE;",
        "const FANCY = await cronium.getVariable('fancy');",
        "const PEM = await cronium.getVariable('pem');",
        "const SVC = await cronium.getVariable('svc');",
        f"fs.writeFileSync({json.dumps(token_file)}, process.env.CRONIUM_EXECUTION_TOKEN);",
    ]
    for case in cases:
        parts += [f"mark({json.dumps(begin(case))});", case.code, f"mark({json.dumps(end(case))});"]
    parts.append(tail)
    parts.append("})().catch((err) => { console.error('corpus failed:', err); process.exit(3); });")
    return "\n".join(parts) + "\n"


SCRIPTS = {"bash": bash_script, "python": python_script, "node": node_script}


def case_lines(items: list[dict[str, Any]], case: Case) -> list[str] | None:
    """The lines of `case` on its stream, between its markers; None if a marker is missing."""
    stream = [item["line"] for item in items if item["stream"] == case.stream]
    try:
        start = stream.index(begin(case))
        stop = stream.index(end(case), start)
    except ValueError:
        return None
    return stream[start + 1 : stop]
