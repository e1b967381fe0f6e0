"""Secrets at rest: AES-256-GCM under CRONIUM_ENCRYPTION_KEY.

Blob layout: version byte (1) | 12-byte nonce | ciphertext+tag. The version byte leaves
room for key rotation without guessing formats later.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cronium.config import Settings, decode_encryption_key
from cronium.errors import ConfigError, CroniumError

_VERSION = 1
_NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"


class DecryptionError(CroniumError):
    code = "decryption_failed"
    status_code = 500


class Cipher:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("AES-256 needs a 32-byte key")
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([_VERSION]) + nonce + self._aead.encrypt(nonce, plaintext, context or None)

    def decrypt(self, blob: bytes, *, context: bytes = b"") -> bytes:
        if len(blob) < 1 + _NONCE_BYTES + 16 or blob[0] != _VERSION:
            raise DecryptionError("stored secret has an unknown format")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, body, context or None)
        except InvalidTag:
            raise DecryptionError(
                "stored secret cannot be decrypted: CRONIUM_ENCRYPTION_KEY differs from the key "
                "it was written with"
            ) from None

    def encrypt_str(self, value: str) -> bytes:
        return self.encrypt(value.encode())

    def decrypt_str(self, blob: bytes) -> str:
        return self.decrypt(blob).decode()

    def encrypt_json(self, value: Any) -> bytes:
        return self.encrypt(json.dumps(value, separators=(",", ":")).encode())

    def decrypt_json(self, blob: bytes) -> Any:
        return json.loads(self.decrypt(blob))


def load_or_create_key(settings: Settings) -> bytes:
    """The key from the environment, else from `<data dir>/encryption.key` (created 0600)."""
    if settings.encryption_key:
        return decode_encryption_key(settings.encryption_key)
    path = settings.data_dir / KEY_FILE_NAME
    if path.exists():
        try:
            return decode_encryption_key(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return _create_key_file(path)


def _create_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process on this data dir won the race: use its key.
        return decode_encryption_key(path.read_text())
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key
