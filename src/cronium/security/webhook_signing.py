"""Signed webhook calls: verify `X-Cronium-Timestamp` + `X-Cronium-Signature`, refuse replays.

A caller with the webhook's secret sends the Unix time in seconds and
`sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`. The server checks the
signature first (constant time), then that the timestamp is within the window either way
of its clock, and only then records the signature: a request that cannot prove it knows
the secret never writes a row. The record is keyed on (webhook key, digest) with a
primary key, so of two identical deliveries — on one node or several sharing PostgreSQL —
exactly one is accepted and the other is a 409 `replayed`.

This module is the only one that touches `webhook_signatures`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from cronium.errors import Conflict, Unauthorized

TIMESTAMP_HEADER = "X-Cronium-Timestamp"
SIGNATURE_HEADER = "X-Cronium-Signature"
SCHEME = "sha256="
# Whole Unix seconds in ASCII digits; 12 digits reach the year 33658.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# Expired rows deleted per accepted call (which adds one): the table stays near what
# arrives in two windows even when many keys stop calling at once.
PRUNE_BATCH = 500

_PRUNE = """
DELETE FROM webhook_signatures WHERE (webhook_key, digest) IN (
    SELECT webhook_key, digest FROM webhook_signatures
    WHERE expires_at < $1
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""

_REMEMBER = """
INSERT INTO webhook_signatures (webhook_key, digest, expires_at)
VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING 1
"""


class WebhookReplayed(Conflict):
    """The same signed call was already accepted while its timestamp is still fresh."""

    code = "replayed"


@dataclass(frozen=True, slots=True)
class SignedCall:
    """A call whose signature and timestamp checked out; `digest` keys the replay memory."""

    digest: str
    timestamp_s: int


def signature(secret: str, timestamp: str, raw: bytes) -> str:
    """The `X-Cronium-Signature` value for this timestamp (as sent) and raw body."""
    message = timestamp.encode("ascii") + b"." + raw
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _refuse(reason: str, message: str, **details: object) -> Unauthorized:
    return Unauthorized(message, details={"reason": reason, **details})


def verify(
    secret: str, headers: Mapping[str, str], raw: bytes, *, now_s: float, tolerance_s: int
) -> SignedCall:
    """Check a signed call; raise Unauthorized saying which check failed."""
    given = headers.get(SIGNATURE_HEADER)
    if given is None or not given.startswith(SCHEME):
        raise _refuse(
            "missing_signature",
            f"this webhook needs {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "
            f"'<timestamp>.<body>'> and {TIMESTAMP_HEADER}: <unix seconds>",
        )
    stamp = headers.get(TIMESTAMP_HEADER)
    if stamp is None:
        raise _refuse(
            "missing_timestamp",
            f"missing {TIMESTAMP_HEADER}: send the Unix time in seconds and sign "
            "'<timestamp>.<body>'",
        )
    if not _TIMESTAMP.fullmatch(stamp):
        raise _refuse("bad_timestamp", f"{TIMESTAMP_HEADER} must be whole Unix seconds")
    sent = given.removeprefix(SCHEME)
    expected = signature(secret, stamp, raw).removeprefix(SCHEME)
    # The format check reveals nothing about the secret; the comparison is constant-time.
    if not _HEX_DIGEST.fullmatch(sent) or not hmac.compare_digest(sent.lower(), expected):
        body_only = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        if _HEX_DIGEST.fullmatch(sent) and hmac.compare_digest(sent.lower(), body_only):
            raise _refuse(
                "body_only_signature",
                f"bad signature: {SIGNATURE_HEADER} signs only the body; "
                "sign '<timestamp>.<body>' instead",
            )
        raise _refuse(
            "bad_signature",
            f"bad signature: {SIGNATURE_HEADER} does not match {TIMESTAMP_HEADER} and the body",
        )
    server_time = int(now_s)
    if abs(server_time - int(stamp)) > tolerance_s:
        raise _refuse(
            "stale_timestamp",
            f"{TIMESTAMP_HEADER} is outside the {tolerance_s} s window (server time {server_time})",
            server_time=server_time,
        )
    return SignedCall(digest=expected, timestamp_s=int(stamp))


async def remember(
    conn: asyncpg.Connection, key: str, call: SignedCall, *, now_s: float, tolerance_s: int
) -> None:
    """Record an accepted call in the caller's transaction; raise WebhookReplayed if it was.

    Rows stay one window past their expiry, so nodes whose clocks differ by less than the
    window still find them. Each call prunes a batch of expired rows of any key, skipping
    rows another transaction holds, so it never waits for one.
    """
    now = datetime.fromtimestamp(now_s, UTC)
    await conn.execute(_PRUNE, now - timedelta(seconds=tolerance_s), PRUNE_BATCH)
    expires_at = datetime.fromtimestamp(call.timestamp_s + tolerance_s, UTC)
    if await conn.fetchval(_REMEMBER, key, call.digest, expires_at) is None:
        raise WebhookReplayed(
            "replayed: this signed call was already accepted; send a new "
            f"{TIMESTAMP_HEADER} and signature to run again",
            details={"reason": "replayed"},
        )
