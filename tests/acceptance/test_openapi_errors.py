"""The OpenAPI document describes the errors the API really sends.

Every operation documents `{"error": {"code", "message", "details"}}` on 422 and on a `4XX`
range response; real 401, 403, 404 and 422 answers (REST, webhooks, Runtime API) validate
against what the document says for their operation and status.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cronium.api.errors import ErrorBody
from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from cronium.db.session import create_engine, session_factory
from tests.conftest import Persona

ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture
def app(settings: Settings, core: Core) -> FastAPI:
    return create_app(settings, core=core)


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/api/openapi.json")
    assert resp.status_code == 200
    return dict(resp.json())


def documented_operations(app: FastAPI) -> list[tuple[str, str]]:
    """(path, method) of every route in the document, straight from the app's routes."""
    return [
        (route.path, method.lower())
        for route in iter_route_contexts(app.routes)  # routers included in routers, flattened
        if isinstance(route.original_route, APIRoute) and route.include_in_schema
        for method in sorted(route.methods or ())
    ]


def error_schema_ref(response: dict[str, Any]) -> str:
    return str(response["content"]["application/json"]["schema"]["$ref"])


def test_every_operation_documents_the_error_body_on_4xx_and_422(
    app: FastAPI, document: dict[str, Any]
) -> None:
    operations = documented_operations(app)
    assert len(operations) > 50
    assert any(path.startswith("/runtime/v1/") for path, _ in operations)
    assert ("/api/v1/webhooks/{key}", "post") in operations
    with_422 = 0
    for path, method in operations:
        responses = document["paths"][path][method]["responses"]
        assert error_schema_ref(responses["4XX"]) == ERROR_REF, (method, path)
        if "422" in responses:
            with_422 += 1
            assert error_schema_ref(responses["422"]) == ERROR_REF, (method, path)
    assert with_422 > 40
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert schemas["ErrorInfo"]["required"] == ["code", "message", "details"]
    # FastAPI's own validation error body is never sent, so it is not documented either.
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in json.dumps(document)


def test_the_document_is_built_once_and_again_for_a_new_route(app: FastAPI) -> None:
    assert app.openapi() is app.openapi()
    assert app.openapi_schema is app.openapi()

    @app.get("/api/v1/added-late")
    async def added_late(n: int) -> dict[str, int]:
        return {"n": n}

    responses = app.openapi()["paths"]["/api/v1/added-late"]["get"]["responses"]
    assert error_schema_ref(responses["4XX"]) == ERROR_REF
    assert error_schema_ref(responses["422"]) == ERROR_REF


def test_success_statuses_are_the_ones_sent(document: dict[str, Any]) -> None:
    runtime_delete = document["paths"]["/runtime/v1/variables/{key}"]["delete"]["responses"]
    assert "204" in runtime_delete and "200" not in runtime_delete
    assert "503" in document["paths"]["/ready"]["get"]["responses"]


# (persona or None, method, path, JSON body, the status it answers, the documented operation)
ERRORS = [
    (None, "GET", "/api/v1/auth/me", None, 401, "/api/v1/auth/me"),
    ("user", "GET", "/api/v1/events/999999", None, 404, "/api/v1/events/{event_id}"),
    ("user", "GET", "/api/v1/events/not-a-number", None, 422, "/api/v1/events/{event_id}"),
    ("user", "POST", "/api/v1/events", {"name": ""}, 422, "/api/v1/events"),
    ("viewer", "POST", "/api/v1/events", {"name": "x"}, 403, "/api/v1/events"),
    ("user", "DELETE", "/api/v1/users/1", None, 403, "/api/v1/users/{user_id}"),
    (None, "POST", "/api/v1/webhooks/no-such-key", {}, 404, "/api/v1/webhooks/{key}"),
    (None, "POST", "/api/v1/webhooks/bad", {}, 422, "/api/v1/webhooks/{key}"),
    (None, "GET", "/runtime/v1/input", None, 401, "/runtime/v1/input"),
    ("user", "GET", "/runtime/v1/variables/k", None, 401, "/runtime/v1/variables/{key}"),
]


@pytest.mark.parametrize(
    ("persona", "method", "path", "body", "status", "operation"),
    ERRORS,
    ids=[f"{status}-{method}-{path}" for _, method, path, _, status, _ in ERRORS],
)
async def test_a_real_error_matches_the_document(
    client: httpx.AsyncClient,
    personas: dict[str, Persona],
    document: dict[str, Any],
    persona: str | None,
    method: str,
    path: str,
    body: Any,
    status: int,
    operation: str,
) -> None:
    headers = {"Authorization": f"Bearer {personas[persona].token}"} if persona else {}
    resp = await client.request(
        method, path, headers=headers, **({"json": body} if body is not None else {})
    )
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    responses = document["paths"][operation][method.lower()]["responses"]
    documented = responses.get(str(status), responses["4XX"])
    schema = {
        **documented["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(resp.json())]
    assert errors == [], resp.text
    ErrorBody.model_validate(resp.json())  # the model says the same


def test_the_document_refuses_another_error_shape(document: dict[str, Any]) -> None:
    """The schema is strict enough to catch FastAPI's default shape (so the tests above bite)."""
    schema = {"$ref": ERROR_REF, "components": document["components"]}
    validator = jsonschema_rs.validator_for(schema)
    assert not validator.is_valid({"detail": "Not Found"})
    assert not validator.is_valid({"error": {"code": "not_found", "message": "gone"}})
    assert not validator.is_valid({"error": {"code": 404, "message": "gone", "details": None}})
    assert validator.is_valid({"error": {"code": "not_found", "message": "gone", "details": None}})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_ready_without_a_database_answers_a_documented_503(
    core: Core, settings: Settings
) -> None:
    engine = create_engine(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing", connect_timeout_s=2
    )
    down = dataclasses.replace(core, engine=engine, sessions=session_factory(engine))
    app = create_app(settings, core=down)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.get("/ready")
    await engine.dispose()
    assert resp.status_code == 503
    operation = schemathesis.openapi.from_dict(app.openapi())["/ready"]["GET"]
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    operation.Case().validate_response(resp, checks=checks)
