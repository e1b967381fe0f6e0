"""Every error leaves the API as {"error": {"code", "message", "details"}} with a 4xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from cronium.errors import CroniumError, RateLimited

log = logging.getLogger("cronium.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ErrorInfo(BaseModel):
    """What went wrong: a stable code for programs, a sentence for people, and specifics."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="Stable and machine-readable: not_found, validation_error, unauthorized, "
        "forbidden, conflict, rate_limited, payload_too_large, …",
        examples=["not_found"],
    )
    message: str = Field(description="One sentence for people; it may change between versions.")
    details: Any = Field(
        description="null, or what the error is about: an object, or for a validation error "
        "usually a list of {field, message}."
    )


class ErrorBody(BaseModel):
    """The body of every 4xx answer of the API and the Runtime API."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON of an ErrorBody (built as a dict: the Runtime API answers these in loops)."""
    return {"error": {"code": code, "message": message, "details": details}}


# Discriminated unions put the tag into the error location ("schedule.cron.cron"); drop it.
_UNION_TAGS = {"schedule": {"manual", "cron", "interval", "once"}, "auth": {"key", "password"}}


def _clean_loc(loc: list[str]) -> list[str]:
    return [p for i, p in enumerate(loc) if not (i and p in _UNION_TAGS.get(loc[i - 1], ()))]


def _describe_validation(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for err in errors:
        loc = _clean_loc([str(p) for p in err.get("loc", ()) if p not in ("body",)])
        field = ".".join(loc) or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        elif err.get("type") == "json_invalid":
            field, msg = "body", "request body is not valid JSON"
        details.append({"field": field, "message": msg})
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return f"{first['field']}: {first['message']}", details


def cronium_error_response(exc: CroniumError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.message)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), exc.status_code, headers=headers
    )


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(
        error_body(code, message), exc.status_code, headers=getattr(exc, "headers", None)
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CroniumError)
    async def _cronium_error(request: Request, exc: CroniumError) -> JSONResponse:
        return cronium_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _describe_validation(list(exc.errors()))
        return JSONResponse(error_body("validation_error", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)
