"""Server rules: SSH keys we accept and how credentials are stored."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

SUPPORTED_KEYS = (ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)


def check_private_key(private_key: str, passphrase: str | None) -> None:
    """Raise ValueError unless the key is an ed25519, RSA or ECDSA key the passphrase opens."""
    data = private_key.strip().encode() + b"\n"
    password = passphrase.encode() if passphrase else None
    if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
        raise ValueError("private_key must be a PEM or OpenSSH private key (-----BEGIN … PRIVATE KEY-----)")
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
        if password is not None and "password" in str(exc).lower() or "decrypt" in str(exc).lower():
            raise ValueError("the passphrase does not decrypt the private key") from None
        raise ValueError("private_key cannot be parsed as an SSH private key") from None
    except Exception:  # cryptography raises UnsupportedAlgorithm and others for odd input
        raise ValueError("private_key cannot be parsed as an SSH private key") from None
    if not isinstance(key, SUPPORTED_KEYS):
        raise ValueError("unsupported key type: use ed25519, RSA or ECDSA")
