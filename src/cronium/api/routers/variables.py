"""Variables CRUD. Secret values are stored encrypted and never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import or_, select

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
from cronium.api.schemas.resources import NO_NUL, ObjectId, VariableIn, VariableOut, VariablePatch
from cronium.core import Core
from cronium.db.models import Variable
from cronium.errors import Conflict, ValidationFailed

router = APIRouter(prefix="/variables", tags=["variables"])

_SORTS = {"key": Variable.key, "created_at": Variable.created_at, "updated_at": Variable.updated_at}


def variable_out(var: Variable) -> VariableOut:
    return VariableOut(
        id=var.id,
        owner_id=var.owner_id,
        key=var.key,
        value=None if var.secret else var.value,
        secret=var.secret,
        description=var.description,
        created_at=var.created_at,
        updated_at=var.updated_at,
    )


def _store_value(core: Core, var: Variable, value: object, secret: bool) -> None:
    var.secret = secret
    if secret:
        var.value, var.value_encrypted = None, core.cipher.encrypt_json(value)
    else:
        var.value, var.value_encrypted = value, None


async def _check_unique(db: DbDep, owner_id: int, key: str, var_id: int | None) -> None:
    stmt = select(Variable.id).where(Variable.owner_id == owner_id, Variable.key == key)
    if var_id is not None:
        stmt = stmt.where(Variable.id != var_id)
    if await db.scalar(stmt) is not None:
        raise Conflict(f"you already have a variable named {key!r}", details={"field": "key"})


@router.get("", response_model=Page[VariableOut])
async def list_variables(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    secret: bool | None = None,
    search: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> Page[VariableOut]:
    """List variables you can see (secret values are null)."""
    stmt = visible(select(Variable), Variable.owner_id, principal)
    if secret is not None:
        stmt = stmt.where(Variable.secret.is_(secret))
    if search:
        stmt = stmt.where(
            or_(
                Variable.key.icontains(search, autoescape=True),
                Variable.description.icontains(search, autoescape=True),
            )
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "key", Variable.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[variable_out(v) for v in items], total=total, limit=page.limit, offset=page.offset
    )


@router.post("", response_model=VariableOut, status_code=201)
async def create_variable(
    body: VariableIn, principal: WriterDep, core: CoreDep, db: DbDep
) -> VariableOut:
    """Create a variable."""
    await _check_unique(db, principal.user_id, body.key, None)
    var = Variable(owner_id=principal.user_id, key=body.key, description=body.description)
    _store_value(core, var, body.value, body.secret)
    db.add(var)
    await flush_unique(db, "uq_variables_owner_key", "variable", "key", body.key)
    await db.refresh(var)
    return variable_out(var)


@router.get("/{variable_id}", response_model=VariableOut)
async def get_variable(variable_id: ObjectId, principal: PrincipalDep, db: DbDep) -> VariableOut:
    """One variable."""
    return variable_out(await get_visible(db, Variable, variable_id, principal, what="variable"))


@router.patch("/{variable_id}", response_model=VariableOut)
async def update_variable(
    variable_id: ObjectId, patch: VariablePatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> VariableOut:
    """Change a variable. Turning a secret into a plain variable needs a new value."""
    var = await get_visible(db, Variable, variable_id, principal, for_write=True, what="variable")
    fields = patch.model_fields_set
    if "key" in fields:
        if patch.key is None:
            raise ValidationFailed("key: must not be null", details={"field": "key"})
        await _check_unique(db, var.owner_id, patch.key, var.id)
        var.key = patch.key
    if "description" in fields:
        var.description = patch.description or ""
    secret = var.secret if patch.secret is None else patch.secret
    if "value" in fields:
        _store_value(core, var, patch.value, secret)
    elif secret != var.secret:
        if var.secret and not secret:
            raise ValidationFailed(
                "give a new value to make a secret variable plain: "
                "secret values are never revealed",
                details={"field": "value"},
            )
        _store_value(core, var, var.value, secret)
    await flush_unique(db, "uq_variables_owner_key", "variable", "key", var.key)
    await db.refresh(var)
    return variable_out(var)


@router.delete("/{variable_id}", status_code=204)
async def delete_variable(variable_id: ObjectId, principal: WriterDep, db: DbDep) -> Response:
    """Delete a variable."""
    var = await get_visible(db, Variable, variable_id, principal, for_write=True, what="variable")
    await db.delete(var)
    await db.flush()
    return Response(status_code=204)
