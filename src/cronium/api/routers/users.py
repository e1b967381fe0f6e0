"""User management (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import delete, select

from cronium.api.deps import AdminDep, DbDep, client_addr
from cronium.api.listing import Page, PageDep, Search, apply_sort, get_visible, paginate
from cronium.api.schemas.accounts import UserCreate, UserOut, UserUpdate
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import Role, User
from cronium.db.models import Session as DbSession
from cronium.domain import audit
from cronium.domain.accounts import (
    count_active_admins,
    create_user,
    find_user,
    lock_user_changes,
)
from cronium.errors import Conflict, ValidationFailed
from cronium.security.passwords import hash_password

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")]
_SORTS = {"email": User.email, "created_at": User.created_at, "role": User.role}


@router.get("", response_model=Page[UserOut])
async def list_users(
    principal: AdminDep,
    db: DbDep,
    page: PageDep,
    role: Role | None = None,
    search: Search = None,
) -> Page[UserOut]:
    """List users."""
    stmt = select(User)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if search:
        stmt = stmt.where(User.email.icontains(search, autoescape=True))
    stmt = apply_sort(stmt, page.sort, _SORTS, "email", User.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[UserOut.model_validate(u) for u in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=UserOut, status_code=201)
async def add_user(body: UserCreate, request: Request, principal: AdminDep, db: DbDep) -> User:
    """Create a user."""
    user = await create_user(db, body.email, body.password, body.role)
    audit.record(
        db,
        "user.create",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "role": user.role.value},
    )
    return user


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: UserId, principal: AdminDep, db: DbDep) -> User:
    """One user."""
    return await get_visible(db, User, user_id, principal, what="user")


async def _guard_last_admin(db: DbDep, user: User) -> None:
    if not (user.role is Role.admin and user.is_active):
        return
    if await count_active_admins(db, excluding=user.id) == 0:
        raise Conflict("this is the last active admin: make another admin first")


@router.patch("/{user_id}", response_model=UserOut)
async def change_user(
    user_id: UserId, body: UserUpdate, request: Request, principal: AdminDep, db: DbDep
) -> User:
    """Change a user's email, password, role or active flag."""
    await lock_user_changes(db)
    user = await get_visible(db, User, user_id, principal, for_write=True, what="user")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None:
            raise ValidationFailed(f"{name}: must not be null", details={"field": name})
    if (changes.get("role") not in (None, Role.admin)) or changes.get("is_active") is False:
        await _guard_last_admin(db, user)
    if "email" in changes and changes["email"] != user.email:
        if await find_user(db, changes["email"]) is not None:
            raise Conflict(
                f"a user with email {changes['email']} already exists", details={"field": "email"}
            )
        user.email = changes["email"]
    if changes.get("password"):
        user.password_hash = hash_password(changes["password"])
    if changes.get("role") is not None:
        user.role = changes["role"]
    if changes.get("is_active") is not None:
        user.is_active = changes["is_active"]
    if changes.get("password") or changes.get("is_active") is False:
        # A new password or a disabled account ends every open session.
        await db.execute(delete(DbSession).where(DbSession.user_id == user.id))
    audit.record(
        db,
        "user.change",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="user",
        target_id=user.id,
        details={"fields": sorted(changes)},
    )
    await db.flush()
    await db.refresh(user)
    return user


@router.delete("/{user_id}", status_code=204)
async def remove_user(
    user_id: UserId, request: Request, principal: AdminDep, db: DbDep
) -> Response:
    """Delete a user and everything they own."""
    await lock_user_changes(db)
    user = await get_visible(db, User, user_id, principal, for_write=True, what="user")
    await _guard_last_admin(db, user)
    audit.record(
        db,
        "user.delete",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    await db.delete(user)
    return Response(status_code=204)
