"""Property tests for logs/capture.py, used as the executors use it: bytes read in chunks
of any size go through one LineSplitter per stream, and every line it emits is masked
(JobLogWriter.write calls Masker.mask on each line).
"""

from __future__ import annotations

import base64
import json
from itertools import pairwise
from urllib.parse import quote, quote_plus

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cronium.logs.capture import MIN_SECRET_LENGTH, LineSplitter, Masker, secret_variants


def chop(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def split(chunks: list[bytes], max_line_bytes: int = 64 * 1024) -> list[str]:
    """How the executors read a stream (executors/local.py `_pump`)."""
    splitter = LineSplitter(max_line_bytes)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.flush()


def reference_lines(data: bytes) -> list[str]:
    """Lines of a whole stream: cut at b'\\n', one trailing '\\r' dropped, bad UTF-8 replaced."""
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()  # a final newline ends the last line, it does not start one
    return [p.removesuffix(b"\r").decode("utf-8", errors="replace") for p in parts]


# Bytes rich in what matters: newlines, carriage returns, multibyte and broken UTF-8.
stream_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"\n", b"\r", b"\r\n", "é".encode(), "€".encode(), "😀".encode()]),
        st.sampled_from([b"\xff", b"\xe2\x82", b"\x80"]),  # invalid or truncated UTF-8
        st.binary(max_size=8),
        st.text(max_size=8).map(str.encode),
    ),
    max_size=60,
).map(b"".join)
cuts = st.lists(st.integers(min_value=0), max_size=30)


@settings(max_examples=400)
@given(stream_bytes, cuts)
def test_lines_do_not_depend_on_where_the_stream_was_chopped(data: bytes, at: list[int]) -> None:
    assert split(chop(data, at)) == reference_lines(data)


@settings(max_examples=300)
@given(
    st.text(st.characters(exclude_characters="\r"), max_size=200),
    cuts,
    st.integers(4, 40),
)
def test_an_overlong_line_is_cut_into_whole_characters_within_the_limit(
    text: str, at: list[int], max_line_bytes: int
) -> None:
    data = text.encode()
    lines = split(chop(data, at), max_line_bytes)
    assert lines == split([data], max_line_bytes)
    assert all(len(line.encode()) <= max_line_bytes for line in lines)
    assert "".join(lines) == text.replace("\n", "")  # nothing lost, no character broken


# -- masking --------------------------------------------------------------------------------

# The mask is made of '*': a secret of stars would "appear" in any masked line.
secret_chars = st.characters(exclude_characters="*", exclude_categories=["Cs"])
secrets = st.one_of(
    st.text(secret_chars, min_size=MIN_SECRET_LENGTH, max_size=40),
    st.text(st.sampled_from("aZ09+/=:%&?\"\\' \t\n\r€é😀<>{}"), min_size=4, max_size=30),
    # A multi-line secret such as a PEM key: lines long enough to be masked on their own.
    st.lists(st.text("ABCDEFabcdef0123456789+/", min_size=8, max_size=20), min_size=2, max_size=4)
    .map("\n".join)
    .map(lambda body: f"-----BEGIN KEY-----\n{body}\n-----END KEY-----"),
)
filler = st.text(st.characters(exclude_characters="*", exclude_categories=["Cs"]), max_size=30)


def written_forms(secret: str) -> list[str]:
    """How a script prints a secret: as is, in JSON, in a URL, base64, in Basic auth."""
    raw = secret.encode()
    return [
        secret,
        json.dumps({"token": secret}),
        json.dumps(secret, ensure_ascii=False),
        "https://x.test/?t=" + quote(secret, safe=""),
        "q=" + quote_plus(secret),
        base64.b64encode(raw).decode(),
        "Authorization: Basic " + base64.b64encode(b"user:" + raw).decode(),
        "Authorization: Basic " + base64.b64encode(b"us:" + raw + b"!").decode(),
    ]


@st.composite
def outputs(draw: st.DrawFn) -> tuple[list[str], str]:
    """Secrets, and an output that writes them in several forms between random text."""
    chosen = draw(st.lists(secrets, min_size=1, max_size=3))
    pieces = [draw(filler)]
    for _ in range(draw(st.integers(1, 6))):
        secret = draw(st.sampled_from(chosen))
        pieces += [draw(st.sampled_from(written_forms(secret))), draw(filler)]
        pieces.append(draw(st.sampled_from(["", "\n", "\r\n", " "])))
    return chosen, "".join(pieces)


@settings(max_examples=300)
@given(outputs(), cuts)
def test_no_line_shows_a_secret_in_any_of_its_forms(
    case: tuple[list[str], str], at: list[int]
) -> None:
    chosen, text = case
    masker = Masker(chosen)
    lines = [masker.mask(line) for line in split(chop(text.encode(), at))]
    for secret in chosen:
        for variant in secret_variants(secret):
            leaked = [line for line in lines if variant in line]
            assert not leaked, f"{variant!r} of {secret!r} in {leaked!r}"


@settings(max_examples=300)
@given(st.lists(secrets, max_size=3), st.text(max_size=300), cuts)
def test_text_without_secrets_passes_unchanged(chosen: list[str], text: str, at: list[int]) -> None:
    variants = {v for s in chosen for v in secret_variants(s)}
    lines = split(chop(text.encode(), at))
    assume(not any(v in line for v in variants for line in lines))
    masker = Masker(chosen)
    assert [masker.mask(line) for line in lines] == lines
    assert [Masker().mask(line) for line in lines] == lines


@settings(max_examples=200)
@given(st.lists(secrets, min_size=2, max_size=4), st.data())
def test_secrets_added_later_mask_like_secrets_given_at_once(
    chosen: list[str], data: st.DataObject
) -> None:
    text = data.draw(outputs().map(lambda case: case[1]))
    text += "".join(data.draw(st.sampled_from(written_forms(s))) for s in chosen)
    later = Masker(chosen[:1])
    later.add(chosen[1:])
    at_once = Masker(chosen)
    for line in split([text.encode()]):
        assert later.mask(line) == at_once.mask(line)
