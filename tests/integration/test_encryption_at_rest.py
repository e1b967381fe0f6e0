"""Secrets at rest: no plaintext anywhere in the database, and the key file's rules."""

from __future__ import annotations

import base64
import secrets
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import text

from cronium.config import Settings, load_settings
from cronium.core import Core
from cronium.errors import ConfigError
from cronium.security.crypto import KEY_FILE_NAME, Cipher, DecryptionError, load_or_create_key
from tests.conftest import Api

VARIABLE_SECRET = "variable-plaintext-7f3a9c"
PASSPHRASE = "passphrase-plaintext-51be0d"
SERVER_PASSWORD = "password-plaintext-c04e6b"
ENV_SECRET = "env-plaintext-99d1e2"
WEBHOOK_SECRET = "webhook-plaintext-a8e4f7b2"


def _encrypted_key() -> tuple[str, str]:
    """An RSA key in encrypted PEM form and its unencrypted body (the real secret)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = key.private_bytes(
        ser.Encoding.PEM,
        ser.PrivateFormat.TraditionalOpenSSL,
        ser.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()
    plain = key.private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
    ).decode()
    return encrypted, plain


async def _post(api: Api, path: str, body: dict[str, Any]) -> int:
    resp = await api.post(path, json=body)
    assert resp.status_code == 201, resp.text
    created: int = resp.json()["id"]
    return created


def _needles(private_key: str) -> list[str]:
    """Every plaintext, plus each base64 line of the stored PEM key."""
    key_lines = [ln for ln in private_key.splitlines()[1:-1] if ln and ":" not in ln]
    return [VARIABLE_SECRET, PASSPHRASE, SERVER_PASSWORD, ENV_SECRET, WEBHOOK_SECRET, *key_lines]


async def test_no_secret_is_stored_in_plaintext(api: dict[str, Api], core: Core) -> None:
    user = api["user"]
    private_key, unencrypted_key = _encrypted_key()
    var_id = await _post(
        user, "/variables", {"key": "TOKEN", "value": {"t": VARIABLE_SECRET}, "secret": True}
    )
    auth = {"type": "key", "private_key": private_key, "passphrase": PASSPHRASE}
    key_server = await _post(
        user, "/servers", {"name": "k", "host": "10.0.0.5", "username": "u", "auth": auth}
    )
    auth = {"type": "password", "password": SERVER_PASSWORD}
    pw_server = await _post(
        user, "/servers", {"name": "p", "host": "10.0.0.6", "username": "u", "auth": auth}
    )
    script = {"name": "env", "language": "bash", "content": "echo $DB_PASSWORD"}
    env_event = await _post(user, "/events", {**script, "env": {"DB_PASSWORD": ENV_SECRET}})
    hook = {"enabled": True, "secret": WEBHOOK_SECRET}
    hook_event = await _post(user, "/events", {**script, "name": "hook", "webhook": hook})

    needles = _needles(private_key) + _needles(unencrypted_key)[5:]
    async with core.engine.connect() as conn:
        tables = (
            await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        ).scalars()
        for table in tables:
            # Every column as text (bytea shows as hex, so look for the hex form too).
            rows = (await conn.execute(text(f'SELECT t::text FROM "{table}" t'))).scalars()
            dump = "\n".join(rows)
            for needle in needles:
                assert needle not in dump, f"{needle[:12]}… stored in plaintext in {table}"
                assert needle.encode().hex() not in dump, f"{needle[:12]}… as bytea in {table}"
        columns = await conn.execute(
            text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND data_type = 'bytea'"
            )
        )
        for table, column in columns.all():
            blobs = await conn.execute(text(f'SELECT "{column}" FROM "{table}"'))
            for blob in blobs.scalars():
                for needle in needles:
                    assert blob is None or needle.encode() not in blob, f"{table}.{column}"

        async def row(sql: str, id_: int) -> Any:
            return (await conn.execute(text(sql), {"id": id_})).one()

        var = await row("SELECT value, value_encrypted FROM variables WHERE id = :id", var_id)
        assert var.value is None
        assert core.cipher.decrypt_json(var.value_encrypted) == {"t": VARIABLE_SECRET}

        sql = "SELECT auth_type, secret_encrypted, passphrase_encrypted FROM servers WHERE id = :id"
        server = await row(sql, key_server)
        assert server.auth_type == "key"
        assert core.cipher.decrypt_str(server.secret_encrypted).strip() == private_key.strip()
        assert core.cipher.decrypt_str(server.passphrase_encrypted) == PASSPHRASE
        server = await row(sql, pw_server)
        assert server.auth_type == "password"
        assert core.cipher.decrypt_str(server.secret_encrypted) == SERVER_PASSWORD
        assert server.passphrase_encrypted is None

        event = await row("SELECT env_encrypted, env_keys FROM events WHERE id = :id", env_event)
        assert core.cipher.decrypt_json(event.env_encrypted) == {"DB_PASSWORD": ENV_SECRET}
        assert event.env_keys == ["DB_PASSWORD"]
        sql = "SELECT webhook_secret_encrypted FROM events WHERE id = :id"
        event = await row(sql, hook_event)
        assert core.cipher.decrypt_str(event.webhook_secret_encrypted) == WEBHOOK_SECRET


async def test_every_blob_is_unreadable_under_another_key(api: dict[str, Api], core: Core) -> None:
    await _post(api["user"], "/variables", {"key": "S", "value": "x", "secret": True})
    async with core.engine.connect() as conn:
        blob = await conn.scalar(text("SELECT value_encrypted FROM variables"))
    with pytest.raises(DecryptionError, match="CRONIUM_ENCRYPTION_KEY"):
        Cipher(secrets.token_bytes(32)).decrypt(blob)


def _settings(data_dir: Path, database_url: str, key: str | None = None) -> Settings:
    return load_settings(
        CRONIUM_DATA_DIR=str(data_dir), DATABASE_URL=database_url, CRONIUM_ENCRYPTION_KEY=key
    )


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONIUM_ENCRYPTION_KEY", raising=False)
    monkeypatch.delenv("CRONIUM_ENCRYPTION_KEY_FILE", raising=False)


@pytest.mark.usefixtures("no_key_env")
def test_a_key_file_is_generated_in_the_data_dir_with_mode_0600(
    tmp_path: Path, database_url: str
) -> None:
    settings = _settings(tmp_path / "fresh" / "data", database_url)
    key = load_or_create_key(settings)
    path = settings.data_dir / KEY_FILE_NAME
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text().strip()) == key  # same form as the env variable
    assert load_or_create_key(_settings(settings.data_dir, database_url)) == key
    assert [p.name for p in settings.data_dir.iterdir()] == [KEY_FILE_NAME]

    blob = Cipher(key).encrypt_json({"a": 1})
    assert Cipher(load_or_create_key(settings)).decrypt_json(blob) == {"a": 1}
    other = _settings(tmp_path / "other", database_url)
    with pytest.raises(DecryptionError, match="CRONIUM_ENCRYPTION_KEY") as caught:
        Cipher(load_or_create_key(other)).decrypt_json(blob)
    assert VARIABLE_SECRET not in str(caught.value)


@pytest.mark.usefixtures("no_key_env")
def test_the_environment_key_wins_and_no_file_is_written(tmp_path: Path, database_url: str) -> None:
    raw = secrets.token_bytes(32)
    settings = _settings(tmp_path, database_url, base64.b64encode(raw).decode())
    assert load_or_create_key(settings) == raw
    assert not (tmp_path / KEY_FILE_NAME).exists()


@pytest.mark.usefixtures("no_key_env")
@pytest.mark.parametrize("content", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_a_damaged_key_file_is_a_config_error_naming_it(
    tmp_path: Path, database_url: str, content: str
) -> None:
    (tmp_path / KEY_FILE_NAME).write_text(content)
    with pytest.raises(ConfigError, match=KEY_FILE_NAME):
        load_or_create_key(_settings(tmp_path, database_url))


@pytest.mark.usefixtures("no_key_env")
def test_processes_starting_together_agree_on_one_key(tmp_path: Path, database_url: str) -> None:
    for attempt in range(20):
        settings = _settings(tmp_path / str(attempt), database_url)
        barrier = threading.Barrier(8)
        keys: list[bytes | BaseException] = []

        def load(
            settings: Settings = settings,
            barrier: threading.Barrier = barrier,
            keys: list[bytes | BaseException] = keys,
        ) -> None:
            barrier.wait()
            try:
                keys.append(load_or_create_key(settings))
            except BaseException as exc:  # collected and asserted below
                keys.append(exc)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(keys)) == 1, keys


@pytest.mark.usefixtures("no_key_env")
def test_an_unwritable_data_dir_is_a_config_error(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError, match="CRONIUM_ENCRYPTION_KEY"):
        load_or_create_key(_settings(tmp_path / "file" / "data", database_url))
