"""The OpenAPI document: FastAPI's, plus the error responses the API really sends.

FastAPI documents a 422 with its own `HTTPValidationError` body and no other 4xx, while every
error leaves Cronium as `{"error": {"code", "message", "details"}}` (see api/errors.py). Here
each operation's 422 gets that body, and a `4XX` range response documents it for all other
client errors, so clients and the schemathesis fuzz test check errors against it too.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from cronium.api.errors import ErrorBody

ERROR_SCHEMA = ErrorBody.__name__
ERROR_REF = f"#/components/schemas/{ERROR_SCHEMA}"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
# FastAPI's own validation error schemas: unused once every 422 has the error body.
FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    """Serve the documented errors from `app.openapi()`, built once and cached like FastAPI's."""
    build = app.openapi  # FastAPI's: cached in app.openapi_schema until the routes change
    documented: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal documented
        doc = build()
        if doc is not documented:
            documented = document_errors(doc)  # in place: FastAPI's cache holds the result
        return doc

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }


def _client_error_response() -> dict[str, Any]:
    response = _error_response(
        "Client error: `code` says which (not_found, unauthorized, forbidden, conflict, …)."
    )
    response["headers"] = {
        "Retry-After": {
            "description": "With 429: seconds to wait before calling again.",
            "schema": {"type": "integer"},
        }
    }
    return response


def _add_component_schemas(schemas: dict[str, Any]) -> None:
    generated = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    found = {**generated.pop("$defs", {}), ERROR_SCHEMA: generated}
    for name, schema in found.items():
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two schemas named {name} in the OpenAPI document")


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Give every operation the error body on 422 and on a 4XX range response (in place)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_component_schemas(schemas)
    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error_response(
                    "Validation error: `details` usually lists {field, message} per invalid field."
                )
            responses["4XX"] = _client_error_response()
    for name in FASTAPI_ERROR_SCHEMAS:  # in order: the first one refers to the second
        if f'"#/components/schemas/{name}"' not in json.dumps(doc):
            schemas.pop(name, None)
    return doc
