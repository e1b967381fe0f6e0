"""ASGI app factory and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from cronium import __version__
from cronium.api.errors import install_error_handlers
from cronium.api.openapi import install_openapi
from cronium.api.routers import (
    account_links,
    action_templates,
    auth,
    credentials,
    events,
    executions,
    health,
    invitations,
    metrics,
    servers,
    stream,
    terminal,
    tokens,
    tools,
    users,
    variables,
    webhooks,
    workflows,
)
from cronium.api.routers import (
    settings as settings_router,
)
from cronium.config import Settings
from cronium.core import Core, open_core
from cronium.runtime import router as runtime_router
from cronium.runtime.socket import RuntimeOnlyOverSocket
from cronium.web.setup import install_web

API_PREFIX = "/api/v1"


def create_app(settings: Settings, *, core: Core | None = None) -> FastAPI:
    """Build the app. With `core` given (CLI, tests) the caller owns its lifecycle."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = core is None
        app.state.core = core if core is not None else await open_core(settings)
        try:
            yield
        finally:
            if owned:
                await app.state.core.close()

    app = FastAPI(
        title="Cronium",
        version=__version__,
        description="Self-hosted automation: scripts, HTTP requests and tool actions on schedules.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # served below from our own static files: no CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    if core is not None:
        app.state.core = core
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    api = APIRouter(prefix=API_PREFIX)
    # invitations before users: /users/{user_id} would otherwise catch /users/invitations.
    for module in (auth, account_links, invitations, users, tokens, settings_router):
        api.include_router(module.router)
    for module in (events, executions, stream, servers, variables, workflows):
        api.include_router(module.router)
    api.include_router(terminal.router)
    api.include_router(workflows.runs_router)
    api.include_router(webhooks.router)
    for module in (credentials, tools, action_templates):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(runtime_router.router)
    install_web(app)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Cronium API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/vendor/favicon.png",
        )

    app.add_middleware(RuntimeOnlyOverSocket)
    return app
