"""What every tool shares: the action call, its result and one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cronium.errors import CroniumError


class ToolError(CroniumError):
    """A tool action failed. Permanent errors (bad config, 4xx) are not retried."""

    code = "tool_error"
    status_code = 502

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ActionCall:
    action: str
    params: dict[str, Any]
    config: dict[str, Any]  # the decrypted credential
    timeout_s: float = 30.0


@dataclass
class ActionResult:
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class Tool(Protocol):
    kind: str
    actions: dict[str, dict[str, Any]]  # action name -> JSON Schema of its params

    async def run(self, call: ActionCall) -> ActionResult: ...
