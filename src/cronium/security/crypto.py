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
        return _read_key_file(path)
    try:
        return _create_key_file(path)
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot create the encryption key file ({exc.strerror}); make the data "
            "dir writable or set CRONIUM_ENCRYPTION_KEY"
        ) from None


def _read_key_file(path: Path) -> bytes:
    try:
        return decode_encryption_key(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the encryption key: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(
            f"{path}: {exc} (restore the original key file or set CRONIUM_ENCRYPTION_KEY)"
        ) from None


def _create_key_file(path: Path) -> bytes:
    """Write a new key so that the file appears whole or not at all.

    Nodes sharing a data dir may start together: the key goes to a private temporary
    file first and is hard-linked into place, which fails if another process got there
    first; then everyone reads the winner's key. Nobody can see a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(key).decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key_file(path)
        except OSError:  # a filesystem without hard links: exclusive create, then write
            return _create_key_file_in_place(path, key)
    finally:
        tmp.unlink(missing_ok=True)
    return key


def _create_key_file_in_place(path: Path, key: bytes) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return key
