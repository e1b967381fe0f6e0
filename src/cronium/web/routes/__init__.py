"""Page routes, one module per area of the UI."""

from __future__ import annotations

from fastapi import APIRouter

from cronium.web.routes import (
    accounts,
    dashboard,
    events,
    executions,
    monitoring,
    servers,
    settings,
    tokens,
    tools,
    users,
    variables,
    workflows,
)

ROUTERS: tuple[APIRouter, ...] = tuple(
    module.router
    for module in (
        accounts,
        dashboard,
        events,
        executions,
        workflows,
        servers,
        variables,
        tools,
        tokens,
        monitoring,
        users,
        settings,
    )
)
