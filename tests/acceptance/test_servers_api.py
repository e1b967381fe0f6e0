"""Servers API: SSH credentials are validated, stored write-only and never echoed back."""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from sqlalchemy import text

from cronium.core import Core
from tests.conftest import Api

OPENSSH, PKCS8, TRADITIONAL = "openssh", "pkcs8", "traditional"
P = ser.PrivateFormat
FORMATS = {OPENSSH: P.OpenSSH, PKCS8: P.PKCS8, TRADITIONAL: P.TraditionalOpenSSL}
PASSPHRASE = "open-sesame-passphrase-1"
PASSWORD = "hunter2-server-password-xyz"
FINGERPRINT = "SHA256:" + base64.b64encode(hashlib.sha256(b"hk").digest()).decode().rstrip("=")


@functools.cache
def _key(kind: str) -> Any:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    return dsa.generate_private_key(key_size=2048)


def _pem(kind: str, fmt: str, passphrase: str | None = None) -> str:
    encryption: ser.KeySerializationEncryption = (
        ser.BestAvailableEncryption(passphrase.encode()) if passphrase else ser.NoEncryption()
    )
    return _key(kind).private_bytes(ser.Encoding.PEM, FORMATS[fmt], encryption).decode()


def _body(name: str = "web-1", **overrides: Any) -> dict[str, Any]:
    auth = {"type": "password", "password": PASSWORD}
    body = {"name": name, "host": "10.0.0.5", "port": 22, "username": "deploy", "auth": auth}
    return {**body, **overrides}


def _key_auth(private_key: str, passphrase: str | None = None) -> dict[str, Any]:
    return {"type": "key", "private_key": private_key, "passphrase": passphrase}


def _assert_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] and error["message"]
    return error


def _assert_hidden(resp: httpx.Response, *secrets: str) -> None:
    body = resp.text
    for secret in secrets:
        lines = [ln for ln in secret.strip().splitlines()[1:-1] if ln and ":" not in ln]
        for part in lines or [secret]:
            assert part not in body, f"secret material leaked into {resp.request.url}"
    for field in ("private_key", "password", "passphrase", "secret_encrypted"):
        assert f'"{field}":' not in body


async def _create(api: Api, **overrides: Any) -> dict[str, Any]:
    resp = await api.post("/servers", json=_body(**overrides))
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


# Every supported type in OpenSSH and PEM (PKCS#8 and traditional) form.
KEY_FORMATS = [(k, f) for k in ("ed25519", "rsa", "ecdsa") for f in FORMATS]
KEY_FORMATS.remove(("ed25519", TRADITIONAL))  # no traditional PEM form exists for ed25519


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["plain", "encrypted"])
@pytest.mark.parametrize(("kind", "fmt"), KEY_FORMATS, ids="-".join)
async def test_a_server_is_created_with_each_supported_key_type(
    api: dict[str, Api], kind: str, fmt: str, passphrase: str | None
) -> None:
    if passphrase and fmt == OPENSSH:  # ssh-keygen's default; decrypting needs bcrypt_pbkdf
        pytest.importorskip("bcrypt", reason="bcrypt missing: encrypted OpenSSH keys cannot load")
    key = _pem(kind, fmt, passphrase)
    resp = await api["user"].post("/servers", json=_body(auth=_key_auth(key, passphrase)))
    assert resp.status_code == 201, resp.text
    server = resp.json()
    assert (server["auth_type"], server["status"]) == ("key", "unknown")
    assert server["host_key_fingerprint"] is None
    assert (server["host"], server["port"], server["username"]) == ("10.0.0.5", 22, "deploy")
    _assert_hidden(resp, key, passphrase or PASSPHRASE)
    if passphrase:
        wrong = await api["user"].post("/servers", json=_body("w", auth=_key_auth(key, "nope")))
        assert "passphrase does not decrypt" in _assert_error(wrong, 422)["message"]


KEY_PROBLEMS = [
    ("rsa", PKCS8, PASSPHRASE, None, "give its passphrase"),
    ("ecdsa", TRADITIONAL, PASSPHRASE, "", "give its passphrase"),
    ("ed25519", PKCS8, PASSPHRASE, "wrong-one", "does not decrypt"),
    ("ed25519", OPENSSH, None, "pointless", "not encrypted"),
    ("dsa", PKCS8, None, None, "ed25519, RSA or ECDSA"),
]


@pytest.mark.parametrize(("kind", "fmt", "encrypted_with", "given", "expected"), KEY_PROBLEMS)
async def test_a_key_that_cannot_be_opened_is_rejected_with_a_clear_message(
    api: dict[str, Api], kind: str, fmt: str, encrypted_with: str, given: str, expected: str
) -> None:
    key = _pem(kind, fmt, encrypted_with)
    resp = await api["user"].post("/servers", json=_body(auth=_key_auth(key, given)))
    error = _assert_error(resp, 422)
    assert expected in error["message"]
    assert error["details"][0]["field"].startswith("auth")
    _assert_hidden(resp, key)
    assert (await api["user"].get("/servers")).json()["total"] == 0


GARBAGE_KEYS = [
    "garbage",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64!\n-----END OPENSSH PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n"
    "AAAA\n-----END RSA PRIVATE KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB3vh7i0d3n0tAkey user@host",
    "-----BEGIN PRIVATE KEY-----\n\x00\x01\x02\n-----END PRIVATE KEY-----",
    "",
]


@pytest.mark.parametrize("private_key", GARBAGE_KEYS)
@pytest.mark.parametrize("passphrase", [None, "pw"])
async def test_a_garbage_key_is_rejected(
    api: dict[str, Api], private_key: str, passphrase: str | None
) -> None:
    resp = await api["user"].post("/servers", json=_body(auth=_key_auth(private_key, passphrase)))
    _assert_error(resp, 422)


@pytest.mark.parametrize("port", [0, 70000, -1, 65536, "ssh", None, 2**70])
async def test_a_port_outside_1_to_65535_is_rejected(api: dict[str, Api], port: object) -> None:
    _assert_error(await api["user"].post("/servers", json=_body(port=port)), 422)
    server = await _create(api["user"], name=f"p-{port}")
    _assert_error(await api["user"].patch(f"/servers/{server['id']}", json={"port": port}), 422)


HOSTS = [
    ("10.0.0.5", "10.0.0.5"),
    ("web-1.example.com", "web-1.example.com"),
    ("localhost", "localhost"),
    ("::1", "::1"),
    ("[fe80::1]", "fe80::1"),
    (" db.internal ", "db.internal"),
    *((bad, None) for bad in ["", "  ", "bad host", "-oProxyCommand=touch /tmp/x", "a;reboot"]),
    *((bad, None) for bad in ["host/path", "user@host", "a" * 256, "..", "exa_mple..com"]),
    *((bad, None) for bad in ["[::1", "1.2.3.4:22", "999.1.1.1", "host\x00name"]),
]


@pytest.mark.parametrize(("host", "stored"), HOSTS)
async def test_only_hostnames_and_ip_addresses_are_accepted_as_host(
    api: dict[str, Api], host: str, stored: str | None
) -> None:
    resp = await api["user"].post("/servers", json=_body(host=host))
    if stored is not None:
        assert (resp.status_code, resp.json()["host"]) == (201, stored), resp.text
        return
    _assert_error(resp, 422)
    server = await _create(api["user"])
    _assert_error(await api["user"].patch(f"/servers/{server['id']}", json={"host": host}), 422)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        _body(auth={"type": "kerberos"}),
        _body(auth={"type": "password"}),
        _body(auth={"type": "password", "password": ""}),
        _body(auth=None),
        _body(name=""),
        _body(name="nul\x00byte"),
        *(_body(username=bad) for bad in ["", "-root", "bad user", "a;b", "x" * 65]),
        _body(max_concurrent_jobs=0),
        {**_body(), "unknown": 1},
        [],
    ],
)
async def test_malformed_bodies_are_rejected(api: dict[str, Api], body: object) -> None:
    _assert_error(await api["user"].post("/servers", json=body), 422)


async def test_a_body_that_is_not_json_is_rejected(api: dict[str, Api]) -> None:
    resp = await api["user"].post(
        "/servers", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    _assert_error(resp, 422)


async def test_a_server_name_is_unique_per_owner(api: dict[str, Api]) -> None:
    first = await _create(api["user"], name="web-1")
    error = _assert_error(await api["user"].post("/servers", json=_body("web-1")), 409)
    assert "web-1" in error["message"]
    await _create(api["other"], name="web-1")
    second = await _create(api["user"], name="web-2")
    _assert_error(await api["user"].patch(f"/servers/{second['id']}", json={"name": "web-1"}), 409)
    same = await api["user"].patch(f"/servers/{first['id']}", json={"name": "web-1"})
    assert same.status_code == 200, same.text


async def test_a_host_key_fingerprint_must_look_like_ssh_keygen_output(api: dict[str, Api]) -> None:
    user = api["user"]
    server = await _create(user, host_key_fingerprint=FINGERPRINT)
    assert server["host_key_fingerprint"] == FINGERPRINT
    url = f"/servers/{server['id']}"
    for bad in ["MD5:aa:bb:cc", "SHA256:short", "SHA256:" + "!" * 43, FINGERPRINT + "xx", ""]:
        resp = await user.post("/servers", json=_body("fp", host_key_fingerprint=bad))
        assert _assert_error(resp, 422)["details"][0]["field"] == "host_key_fingerprint"
        _assert_error(await user.patch(url, json={"host_key_fingerprint": bad}), 422)
    cleared = await user.patch(url, json={"host_key_fingerprint": None})
    assert cleared.json()["host_key_fingerprint"] is None


async def _host_key(core: Core, server_id: int, *, pin: bool = False) -> str | None:
    """The stored host key; with pin=True, pin one first (as a successful check would)."""
    pin_sql = "UPDATE servers SET host_key = 'k', host_key_fingerprint = :fp WHERE id = :id"
    async with core.sessions() as db, db.begin():
        if pin:
            await db.execute(text(pin_sql), {"fp": FINGERPRINT, "id": server_id})
        sql = text("SELECT host_key FROM servers WHERE id = :id")
        value: str | None = await db.scalar(sql, {"id": server_id})
        return value


async def test_patching_the_host_or_port_drops_the_pinned_host_key(
    api: dict[str, Api], core: Core
) -> None:
    sid = (await _create(api["user"]))["id"]
    url = f"/servers/{sid}"
    assert await _host_key(core, sid, pin=True) == "k"
    same = await api["user"].patch(url, json={"name": "renamed", "host": "10.0.0.5", "port": 22})
    assert same.json()["host_key_fingerprint"] == FINGERPRINT
    assert await _host_key(core, sid) == "k"

    moved = await api["user"].patch(url, json={"host": "10.0.0.6"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["host"], moved.json()["host_key_fingerprint"]) == ("10.0.0.6", None)
    assert await _host_key(core, sid) is None

    assert await _host_key(core, sid, pin=True) == "k"
    moved = await api["user"].patch(url, json={"port": 2222})
    assert moved.json()["host_key_fingerprint"] is None
    assert await _host_key(core, sid) is None


async def test_credentials_never_appear_in_any_response(api: dict[str, Api]) -> None:
    key = _pem("rsa", TRADITIONAL, PASSPHRASE)
    user = api["user"]
    created = await user.post("/servers", json=_body(auth=_key_auth(key, PASSPHRASE)))
    sid = created.json()["id"]
    pw = await user.post("/servers", json=_body("pw"))
    assert pw.json()["auth_type"] == "password"
    responses = [created, pw, await user.get(f"/servers/{sid}"), await user.get("/servers")]
    responses.append(await user.patch(f"/servers/{sid}", json={"name": "renamed"}))
    new_key = _pem("ed25519", OPENSSH)
    responses.append(await user.patch(f"/servers/{sid}", json={"auth": _key_auth(new_key)}))
    responses.append(await api["admin"].get("/servers"))
    responses.append(await api["viewer"].get(f"/servers/{sid}"))
    for resp in responses:
        assert resp.status_code in (200, 201), resp.text
        _assert_hidden(resp, key, PASSPHRASE, PASSWORD, new_key)
    assert responses[-3].json()["auth_type"] == "key"
    switched = await user.patch(
        f"/servers/{sid}", json={"auth": {"type": "password", "password": PASSWORD}}
    )
    assert switched.json()["auth_type"] == "password"
    _assert_hidden(switched, PASSWORD)


async def test_patch_validates_credentials_and_rejects_nulls(api: dict[str, Api]) -> None:
    sid = (await _create(api["user"]))["id"]
    bad_key = await api["user"].patch(f"/servers/{sid}", json={"auth": _key_auth("garbage")})
    _assert_error(bad_key, 422)
    encrypted = _pem("ecdsa", PKCS8, PASSPHRASE)
    no_pass = await api["user"].patch(f"/servers/{sid}", json={"auth": _key_auth(encrypted)})
    assert "passphrase" in _assert_error(no_pass, 422)["message"]
    for field in ("name", "host", "username", "port"):
        _assert_error(await api["user"].patch(f"/servers/{sid}", json={field: None}), 422)
    _assert_error(await api["user"].patch(f"/servers/{sid}", json={"status": "online"}), 422)
    assert (await api["user"].get(f"/servers/{sid}")).json()["auth_type"] == "password"


async def _event_on(api: Api, name: str, server_id: int) -> httpx.Response:
    targets = {"local": True, "server_ids": [server_id]}
    body = {"name": name, "language": "bash", "content": "uptime", "targets": targets}
    return await api.post("/events", json=body)


async def test_a_server_used_by_events_is_only_deleted_with_force(api: dict[str, Api]) -> None:
    user = api["user"]
    sid = (await _create(user))["id"]
    first = (await _event_on(user, "uptime-a", sid)).json()
    second = (await _event_on(user, "uptime-b", sid)).json()

    refused = await user.delete(f"/servers/{sid}")
    error = _assert_error(refused, 409)
    assert "force=true" in error["message"]
    assert error["details"]["events"] == [
        {"id": first["id"], "name": "uptime-a"},
        {"id": second["id"], "name": "uptime-b"},
    ]
    assert (await user.get(f"/servers/{sid}")).status_code == 200

    forced = await user.delete(f"/servers/{sid}", params={"force": "true"})
    assert forced.status_code == 204, forced.text
    _assert_error(await user.get(f"/servers/{sid}"), 404)
    _assert_error(await user.delete(f"/servers/{sid}"), 404)
    event = (await user.get(f"/events/{first['id']}")).json()
    assert event["targets"]["server_ids"] == []
    unused = (await _create(user))["id"]
    assert (await user.delete(f"/servers/{unused}")).status_code == 204


@pytest.mark.parametrize("server_id", ["abc", "1.5", str(2**70), "-1", "0"])
async def test_a_bad_or_unknown_id_is_a_clean_4xx(api: dict[str, Api], server_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        resp = await api["user"].request(method, f"/servers/{server_id}", **kwargs)
        assert resp.status_code in (404, 422), resp.text
        assert resp.json()["error"]["message"]


async def _names(api: Api, **params: Any) -> list[str]:
    resp = await api.get("/servers", params=params)
    assert resp.status_code == 200, resp.text
    return [s["name"] for s in resp.json()["items"]]


async def test_servers_are_listed_filtered_searched_sorted_and_paged(
    api: dict[str, Api], core: Core
) -> None:
    user = api["user"]
    hosts = {"charlie": "10.0.0.3", "alpha": "b.example.com", "bravo": "a.example.com"}
    for name, host in {**hosts, "100%_sure": "10.0.0.9"}.items():
        await _create(user, name=name, host=host)
    async with core.sessions() as db, db.begin():
        await db.execute(text("UPDATE servers SET status = 'online' WHERE name = 'bravo'"))

    assert await _names(user) == ["100%_sure", "alpha", "bravo", "charlie"]
    assert await _names(user, sort="-name") == ["charlie", "bravo", "alpha", "100%_sure"]
    assert (await _names(user, sort="host"))[:2] == ["charlie", "100%_sure"]
    assert await _names(user, status="online") == ["bravo"]
    assert await _names(user, search="EXAMPLE") == ["alpha", "bravo"]
    assert await _names(user, search="%") == ["100%_sure"]
    assert await _names(user, search="_") == ["100%_sure"]
    assert await _names(user, search="nothing") == []

    page = (await user.get("/servers", params={"limit": 2, "offset": 1})).json()
    assert [s["name"] for s in page["items"]] == ["alpha", "bravo"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert (await user.get("/servers", params={"offset": 10})).json()["items"] == []

    bad = ["sort=password", "sort=secret_encrypted", "limit=0", "limit=201", "offset=-1"]
    bad += ["status=dead", f"search={'x' * 201}", "search=a%00b", "limit=x", f"offset={2**70}"]
    for query in bad:
        _assert_error(await user.get(f"/servers?{query}"), 422)


async def test_users_only_see_and_change_their_own_servers(api: dict[str, Api]) -> None:
    mine = await _create(api["user"], name="mine")
    theirs = await _create(api["other"], name="theirs")
    sid = mine["id"]
    assert mine["owner_id"] == 2

    assert await _names(api["other"]) == ["theirs"]
    _assert_error(await api["other"].get(f"/servers/{sid}"), 404)
    _assert_error(await api["other"].patch(f"/servers/{sid}", json={"name": "stolen"}), 404)
    _assert_error(await api["other"].delete(f"/servers/{sid}"), 404)
    sneaky = await _event_on(api["other"], "sneaky", sid)
    assert sneaky.status_code in (404, 422), sneaky.text

    viewer = api["viewer"]
    assert (await viewer.get(f"/servers/{sid}")).json()["name"] == "mine"
    assert await _names(viewer) == ["mine", "theirs"]
    _assert_error(await viewer.post("/servers", json=_body("viewer's")), 403)
    _assert_error(await viewer.patch(f"/servers/{sid}", json={"name": "x"}), 403)
    _assert_error(await viewer.delete(f"/servers/{sid}"), 403)

    admin = api["admin"]
    assert await _names(admin) == ["mine", "theirs"]
    patched = await admin.patch(f"/servers/{theirs['id']}", json={"port": 2200})
    assert (patched.status_code, patched.json()["owner_id"]) == (200, 3)
    assert (await api["user"].get(f"/servers/{sid}")).json()["name"] == "mine"
    _assert_error(await api["user"].client.get("/api/v1/servers"), 401)


async def test_a_pasted_key_is_stored_with_plain_line_ends(api: dict[str, Api], core: Core) -> None:
    key = _pem("ed25519", OPENSSH)
    pasted = "\r\n" + "\r\n".join(f"  {line}" for line in key.splitlines()) + "\r\n\r\n"
    sid = (await _create(api["user"], auth=_key_auth(pasted)))["id"]
    async with core.sessions() as db:
        sql = text("SELECT secret_encrypted FROM servers WHERE id = :id")
        stored = core.cipher.decrypt_str(await db.scalar(sql, {"id": sid}))
    assert stored == key
