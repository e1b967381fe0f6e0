"""Opaque random tokens: shown once, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

API_TOKEN_PREFIX = "crn_"


def new_token(prefix: str = "", n_bytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(n_bytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    """The part of an API token shown in lists so users can tell tokens apart."""
    return token[: len(API_TOKEN_PREFIX) + 6]
