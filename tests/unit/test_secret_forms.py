"""The forms of a secret the masker hides beyond the plain ones test_capture covers:
escapings (double JSON, repr, Node's inspect, shell quotes), every URL encoder, URL-safe
and wrapped base64; structured secret values; JSON outputs; credential fields; and the
server's own log (webhook keys, request URLs)."""

from __future__ import annotations

import base64
import json
import logging
import shlex
from collections.abc import Callable
from urllib.parse import quote, quote_plus, urlencode

import pytest

from cronium.logs.capture import MASK, Masker, value_secrets
from cronium.logs.server_log import URL_LOGGERS, HideWebhookKeys, protect_server_log
from cronium.tools.credentials import credential_secrets

FANCY = "Pa\"ss\\wö'rd/+&=☃ q9>>>??~"
LONG = "Lg7" + "x9QmZ2vB4nR8tK1pW6yH3jD5fS0aC7eG" * 5 + "-end"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def url64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


FORMS: dict[str, Callable[[str], str]] = {
    "json twice (Python)": lambda s: json.dumps(json.dumps({"t": s})),
    "json twice (JavaScript)": lambda s: json.dumps(
        json.dumps(s, ensure_ascii=False), ensure_ascii=False
    ),
    "python repr": repr,
    "python dict print": lambda s: str({"token": s}),
    "node inspect (backslashes doubled)": lambda s: "`" + s.replace("\\", "\\\\") + "`",
    "bash set -x quoting": lambda s: "+ curl '" + s.replace("'", "'\\''") + "'",
    "shlex.quote": shlex.quote,
    "quote() keeping /": quote,
    "urlencode": lambda s: urlencode({"token": s}),
    "encodeURIComponent": lambda s: quote(s, safe="!'()*"),
    "encodeURI": lambda s: quote(s, safe=";,/?:@&=+$#!'()*"),
    "quote_plus": quote_plus,
    "urlsafe base64": lambda s: url64(s.encode()),
    "urlsafe base64 unpadded": lambda s: url64(s.encode()).rstrip("="),
    "urlsafe base64 of user:secret": lambda s: url64(b"user:" + s.encode()),
}


@pytest.mark.parametrize("form", FORMS)
def test_each_form_of_a_secret_is_masked(form: str) -> None:
    rendered = FORMS[form](FANCY)
    assert rendered != FANCY
    masked = Masker([FANCY]).mask(f"before {rendered} after")
    assert MASK in masked
    assert masked.startswith("before ") and masked.endswith(" after")
    # What is left is the text around the secret (what the form gives for an empty one),
    # and for base64 at most the group that mixes in that text: never a piece of the secret.
    left = len(masked) - len(MASK) - len("before  after")
    assert left <= len(FORMS[form]("")) + 4, masked


def test_the_fancy_secret_really_differs_in_urlsafe_base64() -> None:
    assert b64(FANCY.encode()) != url64(FANCY.encode())


@pytest.mark.parametrize("width", [76, 64])
@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_wrapped_base64_is_masked_line_by_line(width: int, newline: bytes) -> None:
    # `base64` wraps at 76 columns, PEM and `openssl base64` at 64; `echo` adds a newline.
    encoded = b64(LONG.encode() + newline)
    lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
    assert len(lines) >= 3
    masker = Masker([LONG])
    masked = [masker.mask(line) for line in lines]
    assert masked[:-1] == [MASK] * (len(lines) - 1)
    # The last line keeps at most the group that mixes in the newline (and padding).
    assert masked[-1].startswith(MASK) and len(masked[-1]) <= len(MASK) + 4


def test_a_structured_secret_masks_its_fields_and_its_compact_json() -> None:
    value = {"user": "svc-bot", "password": "Js0n-Pa55-w0rd-77", "port": 5432}
    masker = Masker(value_secrets(value))
    assert masker.mask("password=Js0n-Pa55-w0rd-77") == f"password={MASK}"
    assert masker.mask(json.dumps(value, separators=(",", ":"))) == MASK  # JSON.stringify
    assert masker.mask(json.dumps(value)) == MASK
    assert masker.mask("port 5432") == "port 5432"  # numbers inside are not secrets alone


def test_a_string_secret_is_just_itself() -> None:
    assert value_secrets("abc-secret") == ["abc-secret"]


def test_mask_value_masks_every_string_of_a_json_value() -> None:
    masker = Masker(["tok-123456"])
    value = {"a": ["x tok-123456 y", 7, None, True], "tok-123456": {"b": "tok-123456"}}
    assert masker.mask_value(value) == {
        "a": [f"x {MASK} y", 7, None, True],
        MASK: {"b": MASK},
    }
    assert Masker().mask_value(value) is value


def test_credential_secrets_follow_the_tools_declared_secret_fields() -> None:
    config = {
        "url": "http://127.0.0.1:9/hook/p4th-secret",
        "headers": {"X-Signature": "sig-value-123", "Accept": "application/json"},
        "method": "POST",
    }
    found = credential_secrets("webhook", config)
    # Every header is secret for the webhook tool, whatever its name; the method is not.
    assert set(found) == {config["url"], "sig-value-123", "application/json"}
    email = {"host": "smtp.example.com", "port": 587, "username": "robot", "password": "pw-1234"}
    assert credential_secrets("email", email) == ["pw-1234"]
    # An unknown tool still has its secret-looking fields masked.
    assert credential_secrets("gone", {"api_key": "k-123456", "host": "h"}) == ["k-123456"]


def test_access_log_lines_mask_webhook_keys() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/api/v1/webhooks/Kq3_x-Z9abcdefgh?x=1", "1.1", 202),
        None,
    )
    assert HideWebhookKeys().filter(record)
    assert record.getMessage() == (
        f'127.0.0.1:5000 - "POST /api/v1/webhooks/{MASK}?x=1 HTTP/1.1" 202'
    )


def test_http_client_request_lines_stay_out_of_the_log_unless_debugging() -> None:
    loggers = [logging.getLogger(name) for name in URL_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        protect_server_log("info")
        assert all(not logger.isEnabledFor(logging.INFO) for logger in loggers)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        access = logging.getLogger("uvicorn.access")
        for found in [f for f in access.filters if isinstance(f, HideWebhookKeys)]:
            access.removeFilter(found)
