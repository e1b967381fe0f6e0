"""Sign a webhook call the way a caller does, independently of the server's code."""

from __future__ import annotations

import hashlib
import hmac
import time


def signed_headers(
    body: bytes, secret: str, *, timestamp: int | str | None = None
) -> dict[str, str]:
    """Headers for a signed call: HMAC-SHA256 of "<timestamp>.<body>" (now by default)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Cronium-Timestamp": stamp,
        "X-Cronium-Signature": f"sha256={mac}",
    }
