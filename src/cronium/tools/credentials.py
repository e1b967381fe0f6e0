"""Credentials and saved action templates as the tool path reads them: owner-checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from pydantic import BaseModel, ValidationError

from cronium.security.crypto import Cipher
from cronium.tools.base import ToolError
from cronium.tools.registry import TOOLS


@dataclass(frozen=True)
class Credential:
    id: int
    name: str
    tool: str
    config: dict[str, Any] = field(repr=False)

    def secrets(self) -> list[str]:
        return credential_secrets(self.tool, self.config)


# Besides the fields a tool declares secret: a field whose name says it holds one.
_SECRET_NAME = re.compile(r"pass|secret|token|key|auth|url|webhook", re.IGNORECASE)


def credential_secrets(tool: str, config: Any) -> list[str]:
    """The strings of a credential that output must never show: every string under a field
    the tool declares secret (a webhook's headers, whatever their names) or whose name
    looks secret. A host name or a port is left alone: masking it would hide too much.
    """
    if not isinstance(config, dict):
        return []
    declared = TOOLS[tool].secret_keys() if tool in TOOLS else frozenset()
    return [
        text
        for name, value in config.items()
        for text in _strings(value, secret=name in declared or bool(_SECRET_NAME.search(name)))
    ]


def _strings(value: Any, *, secret: bool) -> list[str]:
    if isinstance(value, str):
        return [value] if secret else []
    if isinstance(value, dict):
        return [
            s
            for k, v in value.items()
            for s in _strings(v, secret=secret or bool(_SECRET_NAME.search(str(k))))
        ]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v, secret=secret)]
    return []


_COLUMNS = "id, name, tool::text AS tool, config_encrypted"


async def load_credential(
    conn: asyncpg.Connection,
    cipher: Cipher,
    owner_id: int,
    credential_id: int | None,
    tool: str | None,
) -> Credential:
    """The owner's credential by id, or else the only one of `tool`; decrypted."""
    if credential_id is not None:
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM tool_credentials WHERE id = $1 AND owner_id = $2",
            credential_id,
            owner_id,
        )
        if row is None:
            raise ToolError(
                f"credential {credential_id} not found",
                permanent=True,
                reason="credential_not_found",
            )
        if tool is not None and row["tool"] != tool:
            raise ToolError(
                f"credential {credential_id} is a {row['tool']} credential, not {tool}",
                permanent=True,
                reason="credential_mismatch",
            )
    else:
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM tool_credentials
                WHERE owner_id = $1 AND tool::text = $2 ORDER BY id""",
            owner_id,
            tool,
        )
        if not rows:
            raise ToolError(
                f"no {tool} credential: add one, or pass credential_id",
                permanent=True,
                reason="credential_not_found",
            )
        if len(rows) > 1:
            ids = ", ".join(str(r["id"]) for r in rows)
            raise ToolError(
                f"several {tool} credentials ({ids}): pass credential_id",
                permanent=True,
                reason="credential_ambiguous",
            )
        row = rows[0]
    config = cipher.decrypt_json(row["config_encrypted"])
    return Credential(
        row["id"], row["name"], row["tool"], config if isinstance(config, dict) else {}
    )


async def apply_template(
    conn: asyncpg.Connection, owner_id: int, tool: str, action: str, params: dict[str, Any]
) -> dict[str, Any]:
    """`params` with a `template_id`: the saved template's params, overridden by the others."""
    if "template_id" not in params:
        return params
    rest = {k: v for k, v in params.items() if k != "template_id"}
    template_id = params["template_id"]
    if isinstance(template_id, bool) or not isinstance(template_id, int):
        raise ToolError("template_id must be an integer", permanent=True, reason="bad_params")
    row = await conn.fetchrow(
        """SELECT tool::text AS tool, action, params FROM action_templates
           WHERE id = $1 AND owner_id = $2""",
        template_id,
        owner_id,
    )
    if row is None:
        raise ToolError(
            f"action template {template_id} not found", permanent=True, reason="template_not_found"
        )
    if (row["tool"], row["action"]) != (tool, action):
        raise ToolError(
            f"action template {template_id} is for {row['tool']}.{row['action']}, "
            f"not {tool}.{action}",
            permanent=True,
            reason="template_mismatch",
        )
    return {**(row["params"] or {}), **rest}


def describe_errors(exc: ValidationError, prefix: str) -> str:
    """pydantic's errors as one line: `params.text: Field required; …`."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        where = f"{prefix}.{loc}" if loc else prefix
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts[:5])


def validated(model: type[BaseModel], value: dict[str, Any], prefix: str, reason: str) -> None:
    try:
        model.model_validate(value)
    except ValidationError as exc:
        raise ToolError(describe_errors(exc, prefix), permanent=True, reason=reason) from None
