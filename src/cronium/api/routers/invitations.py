"""Invitations (admins only): invite an address with a role, list and revoke pending ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from cronium.api.deps import AdminDep, CoreDep, DbDep, client_addr
from cronium.api.listing import Page, PageDep
from cronium.api.routers.settings import request_base_url
from cronium.api.schemas.accounts import InvitationCreate, InvitationCreated, InvitationOut
from cronium.api.schemas.events import MAX_ID
from cronium.db.models import AccountToken
from cronium.domain import account_links, app_settings, audit, invitations
from cronium.domain.mail import send_mail
from cronium.errors import CroniumError

# Included before the users router: /users/{user_id} would otherwise catch these paths.
router = APIRouter(prefix="/users/invitations", tags=["users"])

InvitationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The invitation's id.")]


def _out(row: AccountToken) -> InvitationOut:
    out = InvitationOut.model_validate(row)
    out.expired = row.expires_at <= datetime.now(UTC)
    return out


@router.get("", response_model=Page[InvitationOut])
async def list_invitations(principal: AdminDep, db: DbDep, page: PageDep) -> Page[InvitationOut]:
    """Invitations not yet accepted or revoked, newest first (expired ones are marked)."""
    rows, total = await invitations.pending(db, page.limit, page.offset)
    return Page(items=[_out(r) for r in rows], total=total, limit=page.limit, offset=page.offset)


@router.post("", response_model=InvitationCreated, status_code=201)
async def create_invitation(
    body: InvitationCreate, request: Request, principal: AdminDep, core: CoreDep, db: DbDep
) -> InvitationCreated:
    """Invite an address: it gets an email with a single-use link to choose a password.

    When the email cannot be sent the invitation still exists and the answer holds its
    link (`url`) and the reason (`email_error`), so you can pass it on another way.
    """
    # Own transaction: the link must work the moment the email arrives.
    async with core.sessions() as own, own.begin():
        smtp, accounts = await app_settings.load(own, core.cipher)
        row, token = await invitations.invite(
            own, body.email, body.role, accounts, principal.user_id
        )
        audit.record(
            own,
            "invitation.create",
            actor_user_id=principal.user_id,
            actor=principal.email,
            client_addr=client_addr(request),
            target_type="invitation",
            target_id=row.id,
            details={"email": row.email, "role": body.role.value},
        )
    url = account_links.link(
        accounts.base_url or request_base_url(request), invitations.ACCEPT_PATH, token
    )
    error = None
    try:
        message = invitations.message(
            url, accounts.invitation_ttl_hours, principal.email, body.role
        )
        await send_mail(smtp, row.email, *message)
    except CroniumError as exc:
        error = exc.message
    return InvitationCreated(
        **_out(row).model_dump(),
        email_sent=error is None,
        email_error=error,
        url=url if error is not None else None,
    )


@router.delete("/{invitation_id}", status_code=204)
async def revoke_invitation(
    invitation_id: InvitationId, request: Request, principal: AdminDep, db: DbDep
) -> Response:
    """Withdraw a pending invitation: its link stops working."""
    row = await invitations.revoke(db, invitation_id)
    audit.record(
        db,
        "invitation.revoke",
        actor_user_id=principal.user_id,
        actor=principal.email,
        client_addr=client_addr(request),
        target_type="invitation",
        target_id=row.id,
        details={"email": row.email},
    )
    return Response(status_code=204)
