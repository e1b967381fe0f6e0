"""The settings page (admins only): outgoing mail, the address of emailed links and their
lifetimes. Saved through PUT /api/v1/settings; the stored SMTP password never reaches the
page (it only says whether one is stored)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cronium.api.deps import CoreDep, DbDep
from cronium.api.routers.settings import request_base_url
from cronium.domain import app_settings
from cronium.web.deps import PageAdmin
from cronium.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(
    request: Request, principal: PageAdmin, core: CoreDep, db: DbDep
) -> HTMLResponse:
    smtp, accounts = await app_settings.load(db, core.cipher)
    return render(
        request,
        "settings/index.html",
        principal,
        title="Settings",
        smtp=smtp,
        password_set=smtp.password is not None,
        accounts=accounts,
        # Unset: offer the address this page was opened at, so that saving pins it.
        base_url=accounts.base_url or request_base_url(request),
        base_url_saved=accounts.base_url is not None,
    )
