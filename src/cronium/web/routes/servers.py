"""Servers pages: the list, the add/edit form, one server's page and its terminal.

Pages only read (through the models, with the API's visibility rules); every change goes
through the REST API from the browser. Secrets (keys, passwords, passphrases) are never
decrypted here: the form says "stored" instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import or_, select

from cronium.api.deps import DbDep
from cronium.api.listing import PageParams, get_visible, paginate, visible
from cronium.db.models import Event, EventServer, Role, Server, ServerStatus, User
from cronium.services import terminal
from cronium.web.deps import PageUser
from cronium.web.pages import is_htmx, list_url, owner_emails, require_writer
from cronium.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
READ_ONLY = "Viewers can look at servers but not change them."


@router.get("/servers", response_class=HTMLResponse)
async def servers_page(
    request: Request,
    principal: PageUser,
    db: DbDep,
    search: Annotated[str, Query(max_length=200)] = "",
    status: ServerStatus | None = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> HTMLResponse:
    search = search.replace("\x00", "").strip()
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
    servers, total = await paginate(
        db, stmt.order_by(Server.name, Server.id), PageParams(PAGE_SIZE, offset, None)
    )
    query = {"search": search, "status": status, "offset": offset}
    template = "servers/_table.html" if is_htmx(request) else "servers/list.html"
    return render(
        request,
        template,
        principal,
        title="Servers",
        servers=servers,
        owners=await owner_emails(db, principal, (s.owner_id for s in servers)),
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        search=search,
        status=status,
        statuses=list(ServerStatus),
        url=lambda **changes: list_url("/servers", query, **changes),
    )


@router.get("/servers/new", response_class=HTMLResponse)
async def new_server_page(request: Request, principal: PageUser) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    return render(request, "servers/form.html", principal, title="Add a server", server=None)


@router.get("/servers/{server_id}", response_class=HTMLResponse)
async def server_page(
    request: Request, server_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    server = await get_visible(db, Server, server_id, principal, what="server")
    events = (
        await db.execute(
            select(Event.id, Event.name)
            .join(EventServer, EventServer.event_id == Event.id)
            .where(EventServer.server_id == server.id)
            .order_by(Event.name, Event.id)
            .limit(50)
        )
    ).all()
    owner = await db.scalar(select(User.email).where(User.id == server.owner_id))
    may_write = principal.is_admin or (
        principal.role is not Role.viewer and server.owner_id == principal.user_id
    )
    return render(
        request,
        "servers/detail.html",
        principal,
        title=server.name,
        server=server,
        events=events,
        owner=owner,
        may_write=may_write,
    )


@router.get("/servers/{server_id}/edit", response_class=HTMLResponse)
async def edit_server_page(
    request: Request, server_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    require_writer(principal, READ_ONLY)
    server = await get_visible(db, Server, server_id, principal, for_write=True, lock=False)
    return render(
        request, "servers/form.html", principal, title=f"Edit {server.name}", server=server
    )


@router.get("/servers/{server_id}/terminal", response_class=HTMLResponse)
async def terminal_page(
    request: Request, server_id: int, principal: PageUser, db: DbDep
) -> HTMLResponse:
    require_writer(principal, "Viewers cannot open a terminal: a shell can change the server.")
    server = await get_visible(db, Server, server_id, principal, for_write=True, lock=False)
    return render(
        request,
        "servers/terminal.html",
        principal,
        title=f"Terminal · {server.name}",
        server=server,
        idle_minutes=round(terminal.IDLE_LIMIT_S / 60),
    )
