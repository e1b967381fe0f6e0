"""Tool credentials CRUD and test. Secret fields are encrypted and never returned."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import ValidationError
from sqlalchemy import String, cast, or_, select

from cronium.api.deps import CoreDep, DbDep, PrincipalDep, WriterDep
from cronium.api.listing import (
    Page,
    PageDep,
    apply_sort,
    flush_unique,
    get_visible,
    paginate,
    visible,
)
from cronium.api.schemas.resources import NO_NUL, ObjectId
from cronium.api.schemas.tools import (
    ActionOutcomeOut,
    CredentialIn,
    CredentialOut,
    CredentialPatch,
    CredentialTestIn,
)
from cronium.core import Core
from cronium.db.models import Event, EventAction, ToolCredential, ToolKind
from cronium.errors import Conflict, ValidationFailed
from cronium.tools.base import Tool
from cronium.tools.execute import ActionRequest, RetryPolicy, execute
from cronium.tools.registry import get_tool

router = APIRouter(prefix="/credentials", tags=["credentials"])

_SORTS = {
    "name": ToolCredential.name,
    "tool": ToolCredential.tool,
    "created_at": ToolCredential.created_at,
    "updated_at": ToolCredential.updated_at,
}
# A test is one attempt, quickly: the answer tells the user what is wrong.
TEST_POLICY = RetryPolicy(max_attempts=1, budget_s=15.0, attempt_timeout_s=15.0)


def credential_out(core: Core, cred: ToolCredential) -> CredentialOut:
    config: dict[str, Any] = core.cipher.decrypt_json(cred.config_encrypted)
    secrets = get_tool(cred.tool.value).secret_keys()
    return CredentialOut(
        id=cred.id,
        owner_id=cred.owner_id,
        name=cred.name,
        tool=cred.tool,
        config={k: v for k, v in config.items() if k not in secrets},
        configured_keys=sorted(k for k, v in config.items() if v is not None),
        created_at=cred.created_at,
        updated_at=cred.updated_at,
    )


def checked_config(tool: Tool, config: dict[str, Any]) -> dict[str, Any]:
    """The config as the tool's schema accepts it; a 422 naming each bad field otherwise."""
    try:
        model = tool.config.model_validate(config)
    except ValidationError as exc:
        details = [
            {
                "field": ".".join(["config", *(str(p) for p in err["loc"])]),
                "message": "unknown field"
                if err["type"] == "extra_forbidden"
                else str(err["msg"]).removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        first = details[0]
        raise ValidationFailed(f"{first['field']}: {first['message']}", details=details) from None
    stored: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return stored


async def _check_unique(db: DbDep, owner_id: int, name: str, cred_id: int | None) -> None:
    stmt = select(ToolCredential.id).where(
        ToolCredential.owner_id == owner_id, ToolCredential.name == name
    )
    if cred_id is not None:
        stmt = stmt.where(ToolCredential.id != cred_id)
    if await db.scalar(stmt) is not None:
        raise Conflict(f"you already have a credential named {name!r}", details={"field": "name"})


@router.get("", response_model=Page[CredentialOut])
async def list_credentials(
    principal: PrincipalDep,
    core: CoreDep,
    db: DbDep,
    page: PageDep,
    tool: ToolKind | None = None,
    search: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> Page[CredentialOut]:
    """List tool credentials you can see (secret fields left out)."""
    stmt = visible(select(ToolCredential), ToolCredential.owner_id, principal)
    if tool is not None:
        stmt = stmt.where(ToolCredential.tool == tool)
    if search:
        stmt = stmt.where(
            or_(
                ToolCredential.name.icontains(search, autoescape=True),
                cast(ToolCredential.tool, String).icontains(search, autoescape=True),
            )
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "name", ToolCredential.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[credential_out(core, c) for c in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=CredentialOut, status_code=201)
async def create_credential(
    body: CredentialIn, principal: WriterDep, core: CoreDep, db: DbDep
) -> CredentialOut:
    """Create a tool credential (the whole config is stored encrypted)."""
    config = checked_config(get_tool(body.tool.value), body.config)
    await _check_unique(db, principal.user_id, body.name, None)
    cred = ToolCredential(
        owner_id=principal.user_id,
        name=body.name,
        tool=body.tool,
        config_encrypted=core.cipher.encrypt_json(config),
    )
    db.add(cred)
    await flush_unique(db, "uq_tool_credentials_owner_name", "credential", "name", body.name)
    await db.refresh(cred)
    return credential_out(core, cred)


@router.get("/{credential_id}", response_model=CredentialOut)
async def get_credential(
    credential_id: ObjectId, principal: PrincipalDep, core: CoreDep, db: DbDep
) -> CredentialOut:
    """One tool credential (secret fields left out)."""
    cred = await get_visible(db, ToolCredential, credential_id, principal, what="credential")
    return credential_out(core, cred)


@router.patch("/{credential_id}", response_model=CredentialOut)
async def update_credential(
    credential_id: ObjectId, patch: CredentialPatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> CredentialOut:
    """Rename a credential or change config fields (omitted secret fields are kept)."""
    cred = await get_visible(
        db, ToolCredential, credential_id, principal, for_write=True, what="credential"
    )
    if patch.name is not None:
        await _check_unique(db, cred.owner_id, patch.name, cred.id)
        cred.name = patch.name
    if patch.config is not None:
        merged: dict[str, Any] = core.cipher.decrypt_json(cred.config_encrypted)
        for key, value in patch.config.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        config = checked_config(get_tool(cred.tool.value), merged)
        cred.config_encrypted = core.cipher.encrypt_json(config)
    await flush_unique(db, "uq_tool_credentials_owner_name", "credential", "name", cred.name)
    await db.refresh(cred)
    return credential_out(core, cred)


@router.delete("/{credential_id}", status_code=204)
async def delete_credential(credential_id: ObjectId, principal: WriterDep, db: DbDep) -> Response:
    """Delete a credential that no event uses (409 names the events that still do)."""
    cred = await get_visible(
        db, ToolCredential, credential_id, principal, for_write=True, what="credential"
    )
    users = await db.scalars(
        select(Event.id)
        .where(
            or_(
                Event.tool_spec["credential_id"].astext == str(cred.id),
                Event.id.in_(
                    select(EventAction.event_id).where(EventAction.credential_id == cred.id)
                ),
            )
        )
        .order_by(Event.id)
        .limit(10)
    )
    event_ids = list(users.all())
    if event_ids:
        raise Conflict(
            f"credential {cred.id} is used by events {', '.join(map(str, event_ids))}: "
            "change or delete them first",
            details={"event_ids": event_ids},
        )
    await db.delete(cred)
    await db.flush()
    return Response(status_code=204)


@router.post("/{credential_id}/test", response_model=ActionOutcomeOut)
async def test_credential(
    credential_id: ObjectId,
    principal: WriterDep,
    core: CoreDep,
    db: DbDep,
    body: CredentialTestIn | None = None,
) -> ActionOutcomeOut:
    """Send a test message with this credential; 200 with ok=false when the send fails."""
    cred = await get_visible(
        db, ToolCredential, credential_id, principal, for_write=True, lock=False, what="credential"
    )
    body = body or CredentialTestIn()
    tool = get_tool(cred.tool.value)
    action = body.action or tool.test_action
    params = {**tool.test_params(core.cipher.decrypt_json(cred.config_encrypted)), **body.params}
    request = ActionRequest(
        owner_id=cred.owner_id, action=action, params=params, credential_id=cred.id
    )
    outcome = await execute(core.db, core.cipher, request, TEST_POLICY)
    return ActionOutcomeOut.model_validate(outcome.as_dict())
