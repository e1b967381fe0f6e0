"""The limits of masking as cases: "not masked, by design" (docs/security.md, Secret
masking). Each check shows what does come out, so a change of behaviour fails the corpus
and the documentation gets updated with it.
"""

from __future__ import annotations

from tests.security.leak_corpus import Case, M, lines_of

LIMITS = [
    Case(
        "limit-reversed",
        "python",
        "print(SIMPLE[::-1])",
        lines_of(lambda s: [s.simple[::-1]]),
        limit=True,
        why="a transformed secret is a different string",
    ),
    Case(
        "limit-single-characters",
        "python",
        "print(' '.join(SIMPLE))",
        lines_of(lambda s: [" ".join(s.simple)]),
        limit=True,
        why="no piece is the secret or long enough to be told from ordinary text",
    ),
    Case(
        "limit-split-over-two-lines",
        "python",
        "print(SIMPLE[:9])\nprint(SIMPLE[9:])",
        lines_of(lambda s: [s.simple[:9], s.simple[9:]]),
        limit=True,
        why="masking works on whole lines",
    ),
    Case(
        "limit-hex",
        "python",
        "print(SIMPLE.encode().hex())",
        lines_of(lambda s: [s.simple.encode().hex()]),
        limit=True,
        why="hex is not one of the masked encodings",
    ),
    Case(
        "limit-case-changed",
        "python",
        "print(SIMPLE.upper())",
        lines_of(lambda s: [s.simple.upper()]),
        limit=True,
        why="matching is exact",
    ),
    Case(
        "limit-part-of-a-secret",
        "python",
        "print(SIMPLE[2:12])",
        lines_of(lambda s: [s.simple[2:12]]),
        limit=True,
        why="a part of a secret is not masked: store the part as its own secret",
    ),
    Case(
        "limit-short-secret",
        "python",
        "print('pin', PIN)",
        lines_of(lambda s: [f"pin {s.pin}"]),
        limit=True,
        why="secrets under 4 characters would mask ordinary text",
    ),
    Case(
        "limit-line-over-64-kib",
        "python",
        "sys.stdout.write('x' * (65536 - 9) + SIMPLE + '\\n')",
        lines_of(lambda s: ["x" * (65536 - 9) + s.simple[:9], s.simple[9:]]),
        limit=True,
        why="a line over 64 KiB is cut into pieces, and a secret across the cut is split",
    ),
    Case(
        "limit-wrapped-base64-after-other-bytes",
        "bash",
        "printf 'prefix:%s' \"$LONG\" | base64",
        lambda got, s: (
            None
            if len(got) == 3 and not any(M in line for line in got)
            else "expected three unmasked lines"
        ),
        limit=True,
        why="base64 wrapped over lines is masked only when the secret starts the encoded data",
    ),
]
