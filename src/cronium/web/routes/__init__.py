"""Page routes, one module per area of the UI."""

from __future__ import annotations

from fastapi import APIRouter

from cronium.web.routes import (
    accounts,
    admin,
    dashboard,
    events,
    executions,
    resources,
    servers,
    workflows,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (accounts, dashboard, events, executions, workflows, servers, resources, admin)
)
