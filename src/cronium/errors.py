"""One exception hierarchy: the API maps these to JSON 4xx bodies in one handler."""

from __future__ import annotations

from typing import Any


class CroniumError(Exception):
    """Base of every error Cronium raises on purpose."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(CroniumError):
    """A setting is malformed or a required dependency is unreachable at start."""

    code = "config_error"


class ValidationFailed(CroniumError):
    status_code = 422
    code = "validation_error"


class NotFound(CroniumError):
    status_code = 404
    code = "not_found"


class Conflict(CroniumError):
    status_code = 409
    code = "conflict"


class Unauthorized(CroniumError):
    status_code = 401
    code = "unauthorized"


class Forbidden(CroniumError):
    status_code = 403
    code = "forbidden"


class RateLimited(CroniumError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class PayloadTooLarge(CroniumError):
    status_code = 413
    code = "payload_too_large"
