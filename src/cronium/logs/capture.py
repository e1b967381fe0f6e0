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
    """The forms a secret takes in output: as is, JSON-escaped, URL-encoded, base64."""
    variants = {secret}
    variants.add(json.dumps(secret)[1:-1])
    variants.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    variants.add(quote(secret, safe=""))
    variants.add(quote_plus(secret, safe=""))
    raw = secret.encode()
    encoded = base64.b64encode(raw).decode()
    variants.add(encoded)
    variants.add(encoded.rstrip("="))
    variants |= _embedded_base64(raw)
    # A multi-line secret (a PEM key) is printed line by line: mask each of its lines too.
    for part in secret.splitlines():
        if len(part.strip()) >= 8:
            variants.add(part.strip())
    return {v for v in variants if len(v) >= MIN_SECRET_LENGTH}


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
