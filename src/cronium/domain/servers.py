"""Server rules: SSH keys we accept and how credentials are stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from cronium.executors.base import ServerSpec
from cronium.security.crypto import Cipher

SUPPORTED_KEYS = (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)


def check_private_key(private_key: str, passphrase: str | None) -> None:
    """Raise ValueError unless the key is an ed25519, RSA or ECDSA key the passphrase opens."""
    data = private_key.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise ValueError(
            "private_key must be a PEM or OpenSSH private key (-----BEGIN … PRIVATE KEY-----)"
        )
    loader = (
        serialization.load_ssh_private_key
        if b"BEGIN OPENSSH PRIVATE KEY" in data
        else serialization.load_pem_private_key
    )
    try:
        key = loader(data, password=password)
    except TypeError as exc:
        if password is None:
            raise ValueError("the private key is encrypted: give its passphrase") from None
        raise ValueError("a passphrase was given but the private key is not encrypted") from exc
    except ValueError as exc:
        reason = str(exc).lower()
        # PEM says "bad decrypt"/"incorrect password"; an encrypted OpenSSH key opened with
        # the wrong passphrase fails its check bytes ("broken checksum").
        if password is not None and any(w in reason for w in ("password", "decrypt", "checksum")):
            raise ValueError("the passphrase does not decrypt the private key") from None
        raise ValueError("private_key cannot be parsed as an SSH private key") from None
    except UnsupportedAlgorithm as exc:
        if "bcrypt" in str(exc):
            # Encrypted OpenSSH-format keys (ssh-keygen's default) derive their key with
            # bcrypt_pbkdf, which cryptography only offers when `bcrypt` is installed.
            raise ValueError(
                "encrypted OpenSSH-format keys cannot be opened on this installation (the "
                "'bcrypt' package is missing); convert the key with "
                "'ssh-keygen -p -m PEM -f KEY' or install bcrypt"
            ) from None
        raise ValueError(
            "unsupported key type or key encryption: use an ed25519, RSA or ECDSA key"
        ) from None
    except Exception:  # cryptography raises other errors for odd input
        raise ValueError("private_key cannot be parsed as an SSH private key") from None
    if not isinstance(key, SUPPORTED_KEYS):
        raise ValueError("unsupported key type: use ed25519, RSA or ECDSA")


SERVER_SPEC_SQL = """
SELECT id, name, host, port, username, auth_type::text AS auth_type, secret_encrypted,
       passphrase_encrypted, host_key, host_key_fingerprint, max_concurrent_jobs
FROM servers WHERE id = $1
"""


def server_spec(cipher: Cipher, row: Mapping[str, Any]) -> ServerSpec:
    """What the ssh executor needs of a `servers` row (SERVER_SPEC_SQL), decrypted."""
    passphrase = row["passphrase_encrypted"]
    return ServerSpec(
        server_id=row["id"],
        name=row["name"],
        host=row["host"],
        port=row["port"],
        username=row["username"],
        auth_type=row["auth_type"],
        secret=cipher.decrypt_str(row["secret_encrypted"]),
        passphrase=cipher.decrypt_str(passphrase) if passphrase else None,
        host_key=row["host_key"],
        host_key_fingerprint=row["host_key_fingerprint"],
        max_concurrent_jobs=row["max_concurrent_jobs"],
    )


async def load_server_spec(
    cipher: Cipher, conn: asyncpg.Connection, server_id: int
) -> ServerSpec | None:
    row = await conn.fetchrow(SERVER_SPEC_SQL, server_id)
    return server_spec(cipher, row) if row is not None else None
