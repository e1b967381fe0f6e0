"""LineSplitter and Masker: lines cut only at newlines, secrets masked in every form."""

from __future__ import annotations

import base64
import itertools
import json
import random
from urllib.parse import quote, quote_plus

import pytest

from cronium.logs.capture import MASK, LineSplitter, Masker, secret_variants

SAMPLE = (
    "first line\n"
    "second: ünïcödé €uro 😀 emoji\r\n"
    "\n"
    "tab\tseparated\twords\n"
    "a line with a trailing cr only at the end\r\n"
    "last, unterminated"
).encode()
EXPECTED = [
    "first line",
    "second: ünïcödé €uro 😀 emoji",
    "",
    "tab\tseparated\twords",
    "a line with a trailing cr only at the end",
    "last, unterminated",
]


def split(chunks: list[bytes], max_line_bytes: int = 64 * 1024) -> list[str]:
    splitter = LineSplitter(max_line_bytes)
    lines: list[str] = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines + splitter.flush()


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- LineSplitter ---------------------------------------------------------------------------


def test_one_chunk() -> None:
    assert split([SAMPLE]) == EXPECTED


def test_every_single_split_point_gives_the_same_lines() -> None:
    # Includes cuts inside "\r\n" and inside every multibyte UTF-8 character.
    for cut in range(len(SAMPLE) + 1):
        assert split(chunked(SAMPLE, [cut])) == EXPECTED, f"cut at byte {cut}"


def test_every_pair_of_split_points_gives_the_same_lines() -> None:
    for a in range(len(SAMPLE) + 1):
        for b in range(a, len(SAMPLE) + 1):
            assert split(chunked(SAMPLE, [a, b])) == EXPECTED, f"cuts at {a}, {b}"


def test_random_chunkings_give_the_same_lines() -> None:
    rng = random.Random(20240611)
    data = SAMPLE * 20
    expected = split([data])
    assert len(expected) == 20 * 6 - 19  # the unterminated last line joins the next copy's first
    for _ in range(500):
        cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randrange(1, 40))]
        assert split(chunked(data, cuts)) == expected


def test_byte_by_byte() -> None:
    assert split([bytes([b]) for b in SAMPLE]) == EXPECTED


def test_crlf_and_a_lone_cr_inside_a_line() -> None:
    assert split([b"a\r\nb\rc\r\n"]) == ["a", "b\rc"]
    assert split([b"a\r", b"\nb"]) == ["a", "b"]


def test_final_unterminated_line_comes_out_only_on_flush() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"done\npartial") == ["done"]
    assert splitter.flush() == ["partial"]
    assert splitter.flush() == []


def test_empty_stream_and_trailing_newline_give_no_extra_line() -> None:
    assert split([]) == []
    assert split([b""]) == []
    assert split([b"x\n"]) == ["x"]
    assert split([b"\n\n"]) == ["", ""]


def test_a_line_longer_than_the_limit_is_cut_into_pieces() -> None:
    data = b"x" * 2500 + b"\nshort\n"
    assert split([data], max_line_bytes=1000) == ["x" * 1000, "x" * 1000, "x" * 500, "short"]
    # The same, fed byte by byte: memory stays bounded while no newline comes.
    splitter = LineSplitter(1000)
    pieces: list[str] = []
    for byte in data:
        pieces += splitter.feed(bytes([byte]))
        assert len(splitter._buffer) <= 1000
    assert pieces + splitter.flush() == ["x" * 1000, "x" * 1000, "x" * 500, "short"]


def test_a_runaway_line_without_newline_never_buffers_more_than_the_limit() -> None:
    splitter = LineSplitter(4096)
    out: list[str] = []
    for _ in range(1000):
        out += splitter.feed(b"y" * 1000)
        assert len(splitter._buffer) <= 4096
    total = sum(len(p) for p in out) + sum(len(p) for p in splitter.flush())
    assert total == 1_000_000


def test_a_cut_never_splits_a_multibyte_character() -> None:
    # 3-byte characters against a 1000-byte limit: 1000 is not a multiple of 3.
    line = "€" * 1000
    pieces = split([(line + "\n").encode()], max_line_bytes=1000)
    assert "".join(pieces) == line
    assert all("\ufffd" not in p for p in pieces)
    assert all(len(p.encode()) <= 1000 for p in pieces)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert split([b"ok \xff\xfe bytes\n", b"\xc3\x28\n"]) == ["ok \ufffd\ufffd bytes", "\ufffd("]


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_a_multibyte_character_split_across_chunks(char: str) -> None:
    data = f"<{char}>\n".encode()
    for cut in range(1, len(data)):
        assert split([data[:cut], data[cut:]]) == [f"<{char}>"]


# -- Masker ---------------------------------------------------------------------------------

SECRET = "s3cr3t-value-123"


def test_plain_secret_is_masked_everywhere_in_the_line() -> None:
    masker = Masker([SECRET])
    assert masker.mask(f"token={SECRET} again {SECRET}!") == f"token={MASK} again {MASK}!"
    assert masker.mask("nothing secret here") == "nothing secret here"


def test_no_secrets_leaves_lines_alone() -> None:
    assert Masker().mask("anything s3cr3t") == "anything s3cr3t"
    assert Masker([""]).mask("x") == "x"


@pytest.mark.parametrize(
    "secret",
    ['pa"ss\\word/with"quotes', 'ünï"cödé-pässwörd', "tab\there-and-newline\nthere"],
)
def test_json_escaped_form_is_masked(secret: str) -> None:
    masker = Masker([secret])
    for rendered in (
        json.dumps({"password": secret}),
        json.dumps({"p": secret}, ensure_ascii=False),
    ):
        masked = masker.mask(rendered)
        assert MASK in masked
        assert json.dumps(secret)[1:-1] not in masked
        assert json.dumps(secret, ensure_ascii=False)[1:-1] not in masked


def test_url_encoded_forms_are_masked() -> None:
    secret = "p@ss word/&=?+é"
    masker = Masker([secret])
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe="")):
        assert masker.mask(f"https://x.example/?token={encoded}&a=1") == (
            f"https://x.example/?token={MASK}&a=1"
        )


def test_base64_forms_are_masked() -> None:
    masker = Masker([SECRET])
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert masker.mask(f"auth {encoded}") == f"auth {MASK}"
    assert masker.mask(f"auth {encoded.rstrip('=')}") == f"auth {MASK}"


@pytest.mark.parametrize("prefix", [b"", b"u:", b"user:", b"a"])
@pytest.mark.parametrize("suffix", [b"", b"\n", b"@host", b"xy"])
def test_base64_of_a_value_that_contains_the_secret_hides_it(prefix: bytes, suffix: bytes) -> None:
    # `echo "user:$TOKEN" | base64` (a Basic auth header): the characters that encode
    # only the secret are masked whatever its alignment in the encoded value.
    secret = "Zq8-very-long-api-secret-42"
    masker = Masker([secret])
    encoded = base64.b64encode(prefix + secret.encode() + suffix).decode()
    masked = masker.mask(f"Authorization: Basic {encoded}")
    assert MASK in masked
    leftover = masked.removeprefix("Authorization: Basic ").split(MASK)
    # What is left around the mask is at most the groups mixed with prefix/suffix bytes.
    assert sum(len(part) for part in leftover) <= 8 + 4 * ((len(prefix) + len(suffix)) // 3 + 2)


def test_regex_metacharacters_are_literal() -> None:
    secret = r"a.b*c+d?(e)[f]{2}|g^$\h"
    masker = Masker([secret])
    assert masker.mask(f"x {secret} y") == f"x {MASK} y"
    assert masker.mask("x aXb*c+d?(e)[f]{2}|g^$\\h y") == "x aXb*c+d?(e)[f]{2}|g^$\\h y"
    assert masker.mask("g") == "g"  # the "|" in the secret is not an alternation


def test_a_secret_containing_another_is_masked_whole() -> None:
    masker = Masker(["abcd", "xxabcdyy"])
    assert masker.mask("[xxabcdyy] [abcd]") == f"[{MASK}] [{MASK}]"


def test_overlapping_secrets_leave_no_part_of_either_visible() -> None:
    masker = Masker(["abcdef", "defghi"])
    assert masker.mask("<abcdefghi>") == f"<{MASK}>"
    assert masker.mask("<defghi abcdef>") == f"<{MASK} {MASK}>"
    # Adjacent occurrences merge into one mask.
    assert masker.mask("abcdefdefghi") == MASK


def test_multi_line_secret_is_masked_line_by_line() -> None:
    body = [
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
        "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
        "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo",
    ]
    pem = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"])
    masker = Masker([pem])
    printed = pem.splitlines()  # `cat key.pem` prints it one line at a time
    masked = [masker.mask(line) for line in printed]
    assert all(line == MASK for line in masked)
    assert masker.mask(json.dumps(pem)) == f'"{MASK}"'  # as one JSON string, it goes whole


def test_short_secrets_are_ignored() -> None:
    masker = Masker(["a", "ab", "abc", "", "true"])
    assert masker.mask("a ab abc the cab") == "a ab abc the cab"
    assert masker.mask("it is true") == f"it is {MASK}"  # four characters: masked


def test_variants_never_include_short_forms() -> None:
    for secret in ("abcd", "abcde", "p@ss", "ü√ü√"):
        assert all(len(v) >= 4 for v in secret_variants(secret))


def test_add_extends_a_masker() -> None:
    masker = Masker(["first-secret"])
    masker.add(["second-secret"])
    assert masker.mask("first-secret second-secret") == f"{MASK} {MASK}"


def test_masking_a_secret_split_across_two_writes_after_line_splitting() -> None:
    """The pipeline order: bytes → whole lines → mask; two writes of one secret are joined."""
    masker = Masker([SECRET])
    for cut in range(1, len(SECRET)):
        chunks = [SECRET[:cut].encode(), SECRET[cut:].encode() + b"\n"]
        assert [masker.mask(line) for line in split(chunks)] == [MASK]


def _reference_mask(line: str, variants: set[str]) -> str:
    """Mask every character covered by any occurrence of any variant (slow and obvious)."""
    covered = [False] * len(line)
    for variant in variants:
        start = line.find(variant)
        while start >= 0:
            for i in range(start, start + len(variant)):
                covered[i] = True
            start = line.find(variant, start + 1)
    out: list[str] = []
    for i, char in enumerate(line):
        if not covered[i]:
            out.append(char)
        elif i == 0 or not covered[i - 1]:
            out.append(MASK)
    return "".join(out)


def test_masking_matches_a_naive_reference_on_random_overlapping_input() -> None:
    rng = random.Random(7)
    for _ in range(300):
        # A tiny alphabet makes secrets overlap, nest and repeat all the time.
        secrets = ["".join(rng.choice("abc") for _ in range(rng.randint(4, 7))) for _ in range(3)]
        masker = Masker(secrets)
        variants = set().union(*(secret_variants(s) for s in secrets))
        line = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 60)))
        assert masker.mask(line) == _reference_mask(line, variants), (secrets, line)
