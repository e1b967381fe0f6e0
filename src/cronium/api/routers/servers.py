"""Servers CRUD. Credentials are write-only and stored encrypted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import delete, or_, select

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
from cronium.api.schemas.resources import (
    NO_NUL,
    KeyAuth,
    ObjectId,
    PasswordAuth,
    ServerCheckError,
    ServerCheckOut,
    ServerIn,
    ServerOut,
    ServerPatch,
)
from cronium.core import Core
from cronium.db.models import Event, EventServer, Server, ServerAuthType, ServerStatus
from cronium.errors import Conflict, NotFound, ValidationFailed
from cronium.services.server_check import check_server

router = APIRouter(prefix="/servers", tags=["servers"])

# Changing these makes pooled connections (and the breaker's verdict) out of date.
_CONNECTION_FIELDS = frozenset({"host", "port", "username", "auth", "host_key_fingerprint"})

_SORTS = {
    "name": Server.name,
    "host": Server.host,
    "created_at": Server.created_at,
    "status": Server.status,
}


def _store_auth(core: Core, server: Server, auth: KeyAuth | PasswordAuth) -> None:
    if isinstance(auth, KeyAuth):
        server.auth_type = ServerAuthType.key
        server.secret_encrypted = core.cipher.encrypt_str(auth.private_key)
        server.passphrase_encrypted = (
            core.cipher.encrypt_str(auth.passphrase) if auth.passphrase else None
        )
    else:
        server.auth_type = ServerAuthType.password
        server.secret_encrypted = core.cipher.encrypt_str(auth.password)
        server.passphrase_encrypted = None


async def _check_unique(db: DbDep, owner_id: int, name: str, server_id: int | None) -> None:
    stmt = select(Server.id).where(Server.owner_id == owner_id, Server.name == name)
    if server_id is not None:
        stmt = stmt.where(Server.id != server_id)
    if await db.scalar(stmt) is not None:
        raise Conflict(f"you already have a server named {name!r}", details={"field": "name"})


@router.get("", response_model=Page[ServerOut])
async def list_servers(
    principal: PrincipalDep,
    db: DbDep,
    page: PageDep,
    status: ServerStatus | None = None,
    search: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> Page[ServerOut]:
    """List servers you can see."""
    stmt = visible(select(Server), Server.owner_id, principal)
    if status is not None:
        stmt = stmt.where(Server.status == status)
    if search:
        stmt = stmt.where(
            or_(
                Server.name.icontains(search, autoescape=True),
                Server.host.icontains(search, autoescape=True),
            )
        )
    stmt = apply_sort(stmt, page.sort, _SORTS, "name", Server.id)
    items, total = await paginate(db, stmt, page)
    return Page(
        items=[ServerOut.model_validate(s) for s in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post("", response_model=ServerOut, status_code=201)
async def create_server(body: ServerIn, principal: WriterDep, core: CoreDep, db: DbDep) -> Server:
    """Add a server reached over SSH with a key or a password."""
    await _check_unique(db, principal.user_id, body.name, None)
    server = Server(
        owner_id=principal.user_id,
        name=body.name,
        host=body.host,
        port=body.port,
        username=body.username,
        host_key_fingerprint=body.host_key_fingerprint,
        max_concurrent_jobs=body.max_concurrent_jobs,
        status=ServerStatus.unknown,
        system_info={},
    )
    _store_auth(core, server, body.auth)
    db.add(server)
    await flush_unique(db, "uq_servers_owner_name", "server", "name", body.name)
    await db.refresh(server)
    return server


@router.get("/{server_id}", response_model=ServerOut)
async def get_server(server_id: ObjectId, principal: PrincipalDep, db: DbDep) -> Server:
    """One server."""
    return await get_visible(db, Server, server_id, principal, what="server")


@router.patch("/{server_id}", response_model=ServerOut)
async def update_server(
    server_id: ObjectId, patch: ServerPatch, principal: WriterDep, core: CoreDep, db: DbDep
) -> Server:
    """Change a server; a new host, port or fingerprint drops the pinned host key."""
    server = await get_visible(db, Server, server_id, principal, for_write=True, what="server")
    fields = patch.model_fields_set
    for name in ("name", "host", "username", "port", "max_concurrent_jobs"):
        if name in fields and getattr(patch, name) is None:
            raise ValidationFailed(f"{name}: must not be null", details={"field": name})
    if patch.name is not None:
        await _check_unique(db, server.owner_id, patch.name, server.id)
        server.name = patch.name
    endpoint_changed = False
    for name in ("host", "port", "username", "max_concurrent_jobs"):
        value = getattr(patch, name)
        if value is not None and value != getattr(server, name):
            endpoint_changed |= name in ("host", "port")
            setattr(server, name, value)
    if "host_key_fingerprint" in fields:
        server.host_key_fingerprint = patch.host_key_fingerprint
        server.host_key = None
    elif endpoint_changed:
        server.host_key, server.host_key_fingerprint = None, None
    if patch.auth is not None:
        _store_auth(core, server, patch.auth)
    await flush_unique(db, "uq_servers_owner_name", "server", "name", server.name)
    await db.refresh(server)
    if fields & _CONNECTION_FIELDS:
        core.ssh.forget(server.id)
    return server


@router.post("/{server_id}/check", response_model=ServerCheckOut)
async def check_server_now(
    server_id: ObjectId, principal: WriterDep, core: CoreDep, db: DbDep
) -> ServerCheckOut:
    """Connect to the server now and probe it (OS, login shell, python3/node/curl/bash/setsid).

    A failed check still answers 200, with ok=false and the reason's code: the check ran.
    The first successful contact pins the host key; a changed key is refused until you
    re-pin it (PATCH host_key_fingerprint with the new value, or null to trust the next).
    """
    # No row lock: the check writes the row (and pins the key) on other connections.
    server = await get_visible(
        db, Server, server_id, principal, for_write=True, lock=False, what="server"
    )
    result = await check_server(core, server.id)
    if result is None:
        raise NotFound(f"server {server_id} not found")
    await db.refresh(server)
    error = result.error
    return ServerCheckOut(
        ok=result.ok,
        status=result.status,
        checked_at=result.checked_at,
        latency_ms=result.latency_ms,
        duration_ms=result.duration_ms,
        error=ServerCheckError(code=error.code, message=error.message) if error else None,
        system_info=result.system_info,
        host_key_fingerprint=result.host_key_fingerprint,
        server=ServerOut.model_validate(server),
    )


@router.delete("/{server_id}", status_code=204)
async def delete_server(
    server_id: ObjectId,
    principal: WriterDep,
    core: CoreDep,
    db: DbDep,
    force: Annotated[bool, Query(description="Detach the server from events that use it.")] = False,
) -> Response:
    """Delete a server. Refused while events use it unless force=true."""
    server = await get_visible(db, Server, server_id, principal, for_write=True, what="server")
    users = (
        await db.execute(
            select(Event.id, Event.name)
            .join(EventServer, EventServer.event_id == Event.id)
            .where(EventServer.server_id == server.id)
            .order_by(Event.id)
        )
    ).all()
    if users and not force:
        raise Conflict(
            f"server {server.name!r} is used by {len(users)} event(s): "
            "detach it first or delete with force=true",
            details={"events": [{"id": i, "name": n} for i, n in users]},
        )
    await db.execute(delete(EventServer).where(EventServer.server_id == server.id))
    await db.delete(server)
    await db.flush()
    core.ssh.forget(server.id)
    return Response(status_code=204)
