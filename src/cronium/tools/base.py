"""What every tool shares: the action call, its result, one error type and the tool shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from cronium.errors import CroniumError


class ToolError(CroniumError):
    """A tool action failed. Permanent errors (bad config, 4xx) are not retried.

    `reason` is a stable, machine-readable code (`http_status`, `connection_failed`,
    `auth_failed`, `template_forbidden`, …) kept in the API error's details and in the
    recorded results; `status` is the receiver's HTTP status when there was one.
    """

    code = "tool_action_failed"
    status_code = 422

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after_s: float | None = None,
        reason: str = "tool_error",
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.status = status

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.reason, "message": self.message}
        if self.status is not None:
            out["status"] = self.status
        return out


class Params(BaseModel):
    """Parameters of one action (after template rendering): unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Config(BaseModel):
    """A credential's configuration. Fields marked `secret` are never shown again."""

    model_config = ConfigDict(extra="forbid")


def secret(description: str) -> dict[str, Any]:
    """`json_schema_extra` of a secret config field (write-only through the API)."""
    return {"secret": True, "writeOnly": True, "description": description}


@dataclass(frozen=True)
class ActionCall:
    action: str
    params: dict[str, Any]
    config: dict[str, Any]  # the decrypted credential, validated by the tool's Config
    timeout_s: float = 30.0


@dataclass
class ActionResult:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    """One integration: its credential config, its actions and how to run them."""

    kind: str
    title: str
    description: str
    config: type[Config]
    actions: dict[str, type[Params]]
    run: Callable[[ActionCall], Awaitable[ActionResult]]
    # The action and parameters POST /credentials/{id}/test sends.
    test_action: str
    test_params: Callable[[dict[str, Any]], dict[str, Any]]

    def secret_keys(self) -> frozenset[str]:
        return frozenset(
            name
            for name, info in self.config.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
        )
