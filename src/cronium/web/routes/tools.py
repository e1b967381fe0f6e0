"""Tools pages: credentials (forms built from each tool's schema) and action templates.

Pages only read, through the models; every write, test and preview goes through the REST
API from the page, so the browser shows exactly the API's validation errors. Secret
credential fields are never rendered: the form only says whether one is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.deps import CoreDep, DbDep, Principal
from cronium.api.listing import get_visible
from cronium.api.schemas.events import MAX_ID
from cronium.api.schemas.tools import TemplateSample
from cronium.db.models import ToolCredential, ToolKind, User, Variable
from cronium.db.models.resources import ActionTemplate
from cronium.tools.registry import TOOLS, get_tool
from cronium.web.deps import PageUser
from cronium.web.pages import count_rows, list_url
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
VARIABLE_HINTS = 50  # template variables listed by key on the template form
ObjectPath = Annotated[int, Path(ge=1, le=MAX_ID)]
ToolFilter = Annotated[str | None, Query(max_length=50)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
# Parameters written as long text get a text area; the others a one-line input.
_LONG_TEXT = {"text", "content", "body", "html", "description", "ca_cert"}
_WORDS = {
    "url": "URL",
    "tls": "TLS",
    "api": "API",
    "ca": "CA",
    "ts": "TS",
    "tts": "TTS",
    "json": "JSON",
    "cc": "Cc",
    "bcc": "Bcc",
}


@dataclass
class FormField:
    """One input of a form generated from a JSON Schema property."""

    name: str  # the dotted path the API reports errors under, e.g. `config.url`
    key: str
    label: str
    kind: str  # text | password | textarea | json | select | int | bool | tristate
    help: str = ""
    required: bool = False
    secret: bool = False
    stored: bool = False  # a secret with a stored value (never shown)
    value: str = ""
    checked: bool = False
    options: list[str] = field(default_factory=list)


def _label(key: str) -> str:
    """`webhook_url` → "Webhook URL" (schema titles say "Webhook Url")."""
    text = " ".join(_WORDS.get(w, w) for w in key.split("_"))
    return text[:1].upper() + text[1:]


def _variants(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a property (`anyOf` of X and null is just X)."""
    options = prop.get("anyOf", [prop])
    return [o for o in options if o.get("type") != "null"]


def _kind(key: str, prop: dict[str, Any], secret: bool) -> tuple[str, list[str]]:
    variants = _variants(prop)
    types = {v.get("type") for v in variants}
    if len(variants) == 1 and "enum" in variants[0]:
        return "select", [str(o) for o in variants[0]["enum"]]
    if types == {"boolean"}:
        return ("bool" if "anyOf" not in prop else "tristate"), []
    if types == {"integer"}:
        return "int", []
    if "string" in types:  # a string, or a string or a list (e-mail recipients)
        if secret:
            return ("password" if key in ("password", "bot_token") else "secret"), []
        return ("textarea" if key in _LONG_TEXT else "text"), []
    return "json", []  # objects, lists and "anything" (a JSON body)


def _to_text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "json":  # what the input parses back: a string stays a JSON string
        return json.dumps(value, indent=2)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def schema_fields(
    schema: dict[str, Any],
    prefix: str,
    values: dict[str, Any] | None = None,
    secrets: frozenset[str] = frozenset(),
    configured: frozenset[str] = frozenset(),
) -> list[FormField]:
    """Form fields for each property of a tool's credential or parameter schema."""
    values = values or {}
    required = set(schema.get("required", []))
    out = []
    for key, prop in schema.get("properties", {}).items():
        secret = key in secrets
        kind, options = _kind(key, prop, secret)
        if kind in ("text", "textarea") and isinstance(values.get(key), list | dict):
            kind = "json"  # e.g. recipients saved as a list: edit them as the list they are
        default = prop.get("default")
        help_text = prop.get("description", "")
        if default not in (None, "", {}, []) and kind not in ("bool", "select"):
            help_text = f"{help_text} Default: {default}.".strip()
        value = values.get(key, default if kind in ("bool", "select") else None)
        out.append(
            FormField(
                name=f"{prefix}.{key}",
                key=key,
                label=_label(key),
                kind=kind,
                help=help_text,
                required=key in required,
                secret=secret,
                stored=secret and key in configured,
                value=_to_text(value, kind),
                checked=bool(value),
                options=options,
            )
        )
    return out


@dataclass(frozen=True)
class ToolForm:
    kind: str
    title: str
    description: str
    fields: list[FormField]


@dataclass(frozen=True)
class ActionForm:
    tool: str
    action: str
    fields: list[FormField]


def credential_forms(
    selected: str | None = None,
    config: dict[str, Any] | None = None,
    configured: frozenset[str] = frozenset(),
) -> list[ToolForm]:
    """One field set per tool (just `selected`'s, filled in, when editing)."""
    forms = []
    for tool in TOOLS.values():
        if selected is not None and tool.kind != selected:
            continue
        schema = tool.config.model_json_schema(by_alias=True)
        fields = schema_fields(schema, "config", config, tool.secret_keys(), configured)
        forms.append(ToolForm(tool.kind, tool.title, tool.description, fields))
    return forms


def action_forms(
    selected: str | None = None, action: str | None = None, params: dict[str, Any] | None = None
) -> list[ActionForm]:
    """One field set per tool action (filled in for the template being edited)."""
    forms = []
    for tool in TOOLS.values():
        if selected is not None and tool.kind != selected:
            continue
        for name, model in tool.actions.items():
            values = params if (tool.kind, name) == (selected, action) else None
            schema = model.model_json_schema(by_alias=True)
            forms.append(ActionForm(tool.kind, name, schema_fields(schema, "params", values)))
    return forms


def _tool(value: str | None) -> ToolKind | None:
    """The `?tool=` filter; an unknown value (an old bookmark) means all tools."""
    return ToolKind(value) if value in TOOLS else None


def tool_titles() -> dict[str, str]:
    return {kind: tool.title for kind, tool in TOOLS.items()}


async def _listed(
    db: AsyncSession,
    principal: Principal,
    model: type[ToolCredential] | type[ActionTemplate],
    tool: ToolKind | None,
    offset: int,
) -> tuple[list[Any], int]:
    """A page of the visible credentials or templates (of one tool) with owner emails."""
    stmt = select(model, User.email).join(User, User.id == model.owner_id)
    if not principal.sees_all:
        stmt = stmt.where(model.owner_id == principal.user_id)
    if tool is not None:
        stmt = stmt.where(model.tool == tool)
    total = await count_rows(db, stmt)
    result = await db.execute(stmt.order_by(model.name, model.id).limit(PAGE_SIZE).offset(offset))
    return list(result.all()), total


# --- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialRow:
    id: int
    name: str
    tool: str
    owner_email: str
    configured: list[str]
    created_at: Any


@router.get("/credentials", response_class=HTMLResponse)
async def credentials_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    core: CoreDep,
    tool_filter: Annotated[str | None, Query(alias="tool", max_length=50)] = None,
    offset: Offset = 0,
) -> HTMLResponse:
    tool = _tool(tool_filter)
    found, total = await _listed(db, principal, ToolCredential, tool, offset)
    rows = []
    for cred, email in found:
        config = core.cipher.decrypt_json(cred.config_encrypted)
        keys = sorted(k for k, v in config.items() if v is not None)
        rows.append(
            CredentialRow(cred.id, cred.name, cred.tool.value, email, keys, cred.created_at)
        )
    return render(
        request,
        "tools/credentials.html",
        principal,
        title="Tools",
        rows=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        tool=tool.value if tool else "",
        titles=tool_titles(),
        url=lambda **changes: list_url("/credentials", {"tool": tool}, **changes),
    )


@router.get("/credentials/new", response_class=HTMLResponse)
async def new_credential_page(
    request: Request, principal: PageUser, tool: ToolFilter = None
) -> HTMLResponse:
    selected = (_tool(tool) or ToolKind.webhook).value
    return render(
        request,
        "tools/credential_form.html",
        principal,
        title="New credential",
        cred=None,
        selected=selected,
        forms=credential_forms(),
        titles=tool_titles(),
    )


@router.get("/credentials/{credential_id}", response_class=HTMLResponse)
async def credential_page(
    request: Request, principal: PageUser, db: DbDep, core: CoreDep, credential_id: ObjectPath
) -> HTMLResponse:
    cred = await get_visible(db, ToolCredential, credential_id, principal, what="credential")
    config: dict[str, Any] = core.cipher.decrypt_json(cred.config_encrypted)
    tool = get_tool(cred.tool.value)
    configured = frozenset(k for k, v in config.items() if v is not None)
    shown = {k: v for k, v in config.items() if k not in tool.secret_keys()}
    return render(
        request,
        "tools/credential_form.html",
        principal,
        title=cred.name,
        cred=cred,
        selected=cred.tool.value,
        forms=credential_forms(cred.tool.value, shown, configured),
        titles=tool_titles(),
    )


# --- action templates -----------------------------------------------------------------------


@router.get("/action-templates", response_class=HTMLResponse)
async def templates_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    tool_filter: Annotated[str | None, Query(alias="tool", max_length=50)] = None,
    offset: Offset = 0,
) -> HTMLResponse:
    tool = _tool(tool_filter)
    rows, total = await _listed(db, principal, ActionTemplate, tool, offset)
    return render(
        request,
        "tools/templates.html",
        principal,
        title="Action templates",
        path="/credentials",  # highlights "Tools" in the navigation
        rows=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        tool=tool.value if tool else "",
        titles=tool_titles(),
        url=lambda **changes: list_url("/action-templates", {"tool": tool}, **changes),
    )


async def _variable_keys(db: AsyncSession, owner_id: int) -> list[str]:
    """The owner's non-secret variable keys: what `variables.<key>` can name."""
    keys = await db.scalars(
        select(Variable.key)
        .where(Variable.owner_id == owner_id, Variable.secret.is_(False))
        .order_by(Variable.key)
        .limit(VARIABLE_HINTS)
    )
    return list(keys.all())


def _sample() -> str:
    return json.dumps(TemplateSample().model_dump(), indent=2)


@router.get("/action-templates/new", response_class=HTMLResponse)
async def new_template_page(
    request: Request, principal: PageUser, db: DbDep, tool: ToolFilter = None
) -> HTMLResponse:
    return render(
        request,
        "tools/template_form.html",
        principal,
        title="New action template",
        path="/credentials",
        saved=None,
        selected=(_tool(tool) or ToolKind.slack).value,
        forms=action_forms(),
        titles=tool_titles(),
        variable_keys=await _variable_keys(db, principal.user_id),
        sample=_sample(),
        credentials=[],
    )


@router.get("/action-templates/{template_id}", response_class=HTMLResponse)
async def template_page(
    request: Request, principal: PageUser, db: DbDep, template_id: ObjectPath
) -> HTMLResponse:
    template = await get_visible(db, ActionTemplate, template_id, principal, what="action template")
    credentials = await db.execute(
        select(ToolCredential.id, ToolCredential.name)
        .where(ToolCredential.owner_id == template.owner_id, ToolCredential.tool == template.tool)
        .order_by(ToolCredential.name)
        .limit(PAGE_SIZE)
    )
    return render(
        request,
        "tools/template_form.html",
        principal,
        title=template.name,
        path="/credentials",
        saved=template,
        selected=template.tool.value,
        forms=action_forms(template.tool.value, template.action, template.params),
        titles=tool_titles(),
        variable_keys=await _variable_keys(db, template.owner_id),
        sample=_sample(),
        credentials=credentials.all(),
    )
