"""Turning a byte stream into masked log lines.

Lines are cut only at newlines (never at read-buffer boundaries); a line longer than
`max_line_bytes` is cut into pieces so one runaway line cannot hold unbounded memory.
Masking runs on whole lines, so a secret written in two halves by two `write()` calls is
joined before it is masked.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "********"
DEFAULT_MAX_LINE_BYTES = 64 * 1024
MIN_SECRET_LENGTH = 4
# A shorter fragment of an embedded base64 secret would mask unrelated base64 text.
MIN_EMBEDDED_BASE64 = 8


class LineSplitter:
    """Feed bytes, get complete decoded lines (without their newline)."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_line_bytes

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer.extend(chunk)
        lines: list[str] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                break
            if newline > self._max:
                lines.append(self._cut())
                continue
            raw = self._buffer[:newline]
            del self._buffer[: newline + 1]
            lines.append(_decode(raw.removesuffix(b"\r")))
        while len(self._buffer) > self._max:
            lines.append(self._cut())
        return lines

    def _cut(self) -> str:
        """Emit the first `max_line_bytes` of an overlong line, never inside a UTF-8 character."""
        cut = self._max
        # Back off over continuation bytes (10xxxxxx) so a multibyte character stays whole.
        while cut > self._max - 3 and cut > 0 and self._buffer[cut] & 0xC0 == 0x80:
            cut -= 1
        if cut <= 0 or self._buffer[cut] & 0xC0 == 0x80:
            cut = self._max  # not UTF-8 anyway: cut where the limit says
        piece = _decode(self._buffer[:cut])
        del self._buffer[:cut]
        return piece

    def flush(self) -> list[str]:
        """The unterminated last line, if any (call once at end of stream)."""
        if not self._buffer:
            return []
        rest = _decode(bytes(self._buffer).removesuffix(b"\r"))
        self._buffer.clear()
        return [rest]


def _decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace")


def secret_variants(secret: str) -> set[str]:
    """The forms a secret takes in output: as is, escaped, URL-encoded, base64.

    Escaped: JSON (ASCII or not, once or twice: a JSON string inside JSON), Python's
    repr, backslashes doubled (Node's inspect), shell single quotes (`set -x` traces,
    shlex.quote). URL-encoded: Python's quote and quote_plus, JavaScript's
    encodeURIComponent and encodeURI. Base64: standard and URL-safe, padded or not, inside
    a longer encoded value, and wrapped at 76 or 64 columns (`base64`, PEM).
    """
    variants = {secret}
    variants |= _escaped(secret)
    variants |= _url_encoded(secret)
    variants |= _base64_forms(secret.encode())
    # A multi-line secret (a PEM key) is printed line by line: mask each of its lines too.
    for part in secret.splitlines():
        if len(part.strip()) >= 8:
            variants.add(part.strip())
    return {v for v in variants if len(v) >= MIN_SECRET_LENGTH}


def _escaped(secret: str) -> set[str]:
    ascii_json = json.dumps(secret)[1:-1]
    utf8_json = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms = {
        ascii_json,
        utf8_json,
        json.dumps(ascii_json)[1:-1],  # Python: json.dumps of a JSON text
        json.dumps(utf8_json, ensure_ascii=False)[1:-1],  # JavaScript: JSON.stringify twice
        repr(secret)[1:-1],
        secret.replace("\\", "\\\\"),
    }
    if "'" in secret:
        forms.add(secret.replace("'", "'\\''"))  # bash: `set -x` traces
        forms.add(secret.replace("'", "'\"'\"'"))  # Python: shlex.quote
    return forms


# Characters each encoder leaves as they are, besides letters, digits and "_.-~".
_URL_SAFE_SETS = ("", "/", "!'()*", ";,/?:@&=+$#!'()*")  # quote(), JS encodeURIComponent/URI


def _url_encoded(secret: str) -> set[str]:
    forms = {quote(secret, safe=safe) for safe in _URL_SAFE_SETS}
    forms.add(quote_plus(secret, safe=""))
    return forms


_URLSAFE = str.maketrans("+/", "-_")
WRAP_WIDTHS = (76, 64)  # `base64` and MIME; PEM and `openssl base64`


def _base64_forms(raw: bytes) -> set[str]:
    encoded = base64.b64encode(raw).decode()
    aligned = encoded[: len(raw) // 3 * 4]  # the part that stays when more bytes follow
    forms = {encoded, encoded.rstrip("=")}
    forms |= _embedded_base64(raw)
    for width in WRAP_WIDTHS:
        for text in (encoded, aligned):
            if len(text) > width:
                chunks = (text[i : i + width] for i in range(0, len(text), width))
                forms |= {c for c in chunks if len(c) >= MIN_EMBEDDED_BASE64}
    forms |= {form.translate(_URLSAFE) for form in forms}
    return forms


def value_secrets(value: Any) -> list[str]:
    """What to mask for one secret value: a string as is; a structured value (a secret
    variable holding JSON) as Python and JavaScript print it whole, and each string in it,
    since a script usually prints one field (the password), not the whole object.
    """
    if isinstance(value, str):
        return [value]
    found = [
        json.dumps(value),
        json.dumps(value, ensure_ascii=False, separators=(",", ":")),  # JSON.stringify
        json.dumps(value, separators=(",", ":")),
    ]
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _embedded_base64(raw: bytes) -> set[str]:
    """The base64 characters that depend only on the secret when it sits inside a longer
    encoded value ("user:<secret>" in a Basic auth header), for each of the three alignments.
    """
    found: set[str] = set()
    for offset in (1, 2):
        encoded = base64.b64encode(bytes(offset) + raw).decode().rstrip("=")
        # The first group mixes in what precedes the secret; after the last full group,
        # the characters mix in what follows it.
        end = (offset + len(raw)) // 3 * 4
        inner = encoded[4:end]
        if len(inner) >= MIN_EMBEDDED_BASE64:
            found.add(inner)
    encoded = base64.b64encode(raw).decode()
    whole = encoded[: len(raw) // 3 * 4]  # aligned, but followed by more bytes
    if len(whole) >= MIN_EMBEDDED_BASE64:
        found.add(whole)
    return found


class Masker:
    """Replace every known secret (and its common encodings) in a line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: set[str] = set()
        self._prefilter: re.Pattern[str] | None = None
        self._starts: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                self._variants |= secret_variants(secret)
        if self._variants:
            # Longest first so a secret containing another is masked whole.
            ordered = sorted(self._variants, key=len, reverse=True)
            alternatives = "|".join(re.escape(v) for v in ordered)
            # Every start position, not just non-overlapping matches: for two secrets that
            # overlap ("abcdef", "defghi" in "abcdefghi") a plain sub would leave "ghi".
            self._starts = re.compile(f"(?=({alternatives}))")
            # Most lines hold no secret. A flat alternation of hundreds of variants costs
            # tens of microseconds a line; a trie of their first characters rules a line
            # out several times faster.
            self._prefilter = re.compile(_trie_pattern({v[:_PREFIX] for v in ordered}))

    def mask(self, line: str) -> str:
        if self._prefilter is None or self._starts is None:
            return line
        if self._prefilter.search(line) is None:
            return line
        spans: list[list[int]] = []
        for match in self._starts.finditer(line):
            start, end = match.start(), match.start() + len(match.group(1))
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        parts: list[str] = []
        position = 0
        for start, end in spans:
            parts.append(line[position:start])
            parts.append(MASK)
            position = end
        parts.append(line[position:])
        return "".join(parts)

    def mask_value(self, value: Any) -> Any:
        """A JSON value (a run's output, a tool's answer) with every string in it masked."""
        if self._prefilter is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask(str(k)): self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask_value(v) for v in value]
        return value


_PREFIX = MIN_SECRET_LENGTH


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of `words` (short strings), factored by common prefix."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = "(?:" + "|".join(branches) + ")"
        if "" in node:
            return group + "?"
        return branches[0] if len(branches) == 1 else group

    return build(trie)
