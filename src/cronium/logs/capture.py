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
from urllib.parse import quote, quote_plus

MASK = "********"
DEFAULT_MAX_LINE_BYTES = 64 * 1024
MIN_SECRET_LENGTH = 4


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
                lines.append(_decode(self._buffer[: self._max]))
                del self._buffer[: self._max]
                continue
            raw = self._buffer[:newline]
            del self._buffer[: newline + 1]
            lines.append(_decode(raw.removesuffix(b"\r")))
        while len(self._buffer) > self._max:
            lines.append(_decode(self._buffer[: self._max]))
            del self._buffer[: self._max]
        return lines

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
    variants.add(quote(secret, safe=""))
    variants.add(quote_plus(secret, safe=""))
    encoded = base64.b64encode(secret.encode()).decode()
    variants.add(encoded)
    variants.add(encoded.rstrip("="))
    # A multi-line secret (a PEM key) is printed line by line: mask each of its lines too.
    for part in secret.splitlines():
        if len(part.strip()) >= 8:
            variants.add(part.strip())
    return {v for v in variants if len(v) >= MIN_SECRET_LENGTH}


class Masker:
    """Replace every known secret (and its common encodings) in a line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._variants: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                self._variants |= secret_variants(secret)
        if self._variants:
            # Longest first so a secret containing another is masked whole.
            ordered = sorted(self._variants, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def mask(self, line: str) -> str:
        if self._pattern is None:
            return line
        return self._pattern.sub(MASK, line)
