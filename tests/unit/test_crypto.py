"""AES-256-GCM secrets: round trips, tamper detection, fresh nonces, key rules."""

from __future__ import annotations

import base64
import secrets

import pytest

from cronium.config import decode_encryption_key
from cronium.errors import CroniumError
from cronium.security.crypto import Cipher, DecryptionError

NONCE = 12
TAG = 16


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(secrets.token_bytes(32))


@pytest.mark.parametrize("plaintext", [b"", b"x", b"\x00\xff" * 1000, secrets.token_bytes(70_000)])
def test_bytes_round_trip(cipher: Cipher, plaintext: bytes) -> None:
    blob = cipher.encrypt(plaintext)
    assert len(blob) == 1 + NONCE + len(plaintext) + TAG
    assert blob[0] == 1  # format version
    assert len(plaintext) < 8 or plaintext not in blob  # short ones may occur by chance
    assert cipher.decrypt(blob) == plaintext


@pytest.mark.parametrize("value", ["", "pässwörd ✓", "-----BEGIN KEY-----\nabc\n", "\x00"])
def test_strings_round_trip(cipher: Cipher, value: str) -> None:
    assert cipher.decrypt_str(cipher.encrypt_str(value)) == value


@pytest.mark.parametrize(
    "value", [None, True, 0, -1.5, 10**40, "s", [], {}, {"a": [1, {"b": None}], "ü": "✓"}]
)
def test_json_values_round_trip(cipher: Cipher, value: object) -> None:
    assert cipher.decrypt_json(cipher.encrypt_json(value)) == value


def test_a_context_binds_the_blob_to_its_place(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"secret", context=b"variables:1")
    assert cipher.decrypt(blob, context=b"variables:1") == b"secret"
    for other in (b"variables:2", b""):
        with pytest.raises(DecryptionError):
            cipher.decrypt(blob, context=other)


def test_every_byte_of_the_blob_is_tamper_evident(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"attack at dawn")
    for index in range(len(blob)):
        for flip in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[index] ^= flip
            with pytest.raises(DecryptionError):
                cipher.decrypt(bytes(tampered))


@pytest.mark.parametrize("cut", [0, 1, 1 + NONCE, 1 + NONCE + TAG - 1, -1])
def test_a_truncated_or_extended_blob_is_rejected(cipher: Cipher, cut: int) -> None:
    blob = cipher.encrypt(b"payload")
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob[:cut])
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob + b"\x00")


def test_an_unknown_format_version_says_so(cipher: Cipher) -> None:
    blob = cipher.encrypt(b"payload")
    with pytest.raises(DecryptionError, match="unknown format"):
        cipher.decrypt(b"\x02" + blob[1:])


def test_a_wrong_key_names_the_setting_and_leaks_nothing(cipher: Cipher) -> None:
    blob = cipher.encrypt_str("hunter2")
    with pytest.raises(DecryptionError, match="CRONIUM_ENCRYPTION_KEY") as caught:
        Cipher(secrets.token_bytes(32)).decrypt_str(blob)
    error = caught.value
    assert isinstance(error, CroniumError)
    assert error.code == "decryption_failed"
    assert "hunter2" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_each_encryption_uses_a_fresh_nonce(cipher: Cipher) -> None:
    blobs = [cipher.encrypt(b"same plaintext") for _ in range(2000)]
    nonces = {blob[1 : 1 + NONCE] for blob in blobs}
    assert len(nonces) == len(blobs)
    assert len(set(blobs)) == len(blobs)
    assert all(cipher.decrypt(blob) == b"same plaintext" for blob in blobs)


def test_two_ciphers_with_the_same_key_interoperate() -> None:
    key = secrets.token_bytes(32)
    assert Cipher(key).decrypt_json(Cipher(key).encrypt_json({"k": 1})) == {"k": 1}


@pytest.mark.parametrize("length", [0, 1, 16, 24, 31, 33, 64])
def test_a_key_that_is_not_32_bytes_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        Cipher(secrets.token_bytes(length))


def test_the_configured_key_is_32_bytes_of_base64() -> None:
    raw = secrets.token_bytes(32)
    assert decode_encryption_key(base64.b64encode(raw).decode() + "\n") == raw
    for bad in ["", "not base64!", base64.b64encode(b"x" * 16).decode(), "QUJD" * 11 + "="]:
        with pytest.raises(ValueError, match=r"32|base64"):
            decode_encryption_key(bad)
