"""Mount the web UI on the app: static files, page routes, redirects and security headers."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cronium.api.errors import cronium_error_response, http_error_response
from cronium.errors import CroniumError
from cronium.web.deps import LoginRequired, PageForbidden, login_url
from cronium.web.render import WEB_DIR, render
from cronium.web.routes import ROUTERS

# Scripts and styles only from Cronium itself; no framing; WebSockets to the same host.
# Inline styles are allowed for CodeMirror's and xterm's computed styles; scripts are not.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
_UI_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_ALL_HEADERS = [(b"x-content-type-options", b"nosniff")]
_NOT_UI = ("/api/", "/runtime/", "/metrics", "/health", "/ready")


class SecurityHeaders:
    """Adds the browser security headers; the UI's pages also get the CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = list(_ALL_HEADERS)
        if not path.startswith(_NOT_UI):
            extra += _UI_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_web(app: FastAPI) -> None:
    # The bundled editor is ~550 kB: compressed it is a fifth of that.
    static = GZipMiddleware(StaticFiles(directory=str(WEB_DIR / "static")), minimum_size=1024)
    app.mount("/static", static, name="static")
    for router in ROUTERS:
        app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        target = login_url(exc.next_path)
        if request.headers.get("hx-request") == "true":
            # HTMX follows HX-Redirect with a full page load instead of swapping the login in.
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> HTMLResponse:
        return render(request, "error.html", None, 403, title="Forbidden", message=exc.message)

    @app.exception_handler(CroniumError)
    async def _page_error(request: Request, exc: CroniumError) -> Response:
        # A page (not the API, not an HTMX call) that fails gets an HTML page, not JSON.
        page = not request.url.path.startswith(_NOT_UI) and "hx-request" not in request.headers
        if page and exc.status_code < 500:
            title = "Not found" if exc.status_code == 404 else "Request refused"
            return render(
                request, "error.html", None, exc.status_code, title=title, message=exc.message
            )
        return cronium_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _page_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        page = not request.url.path.startswith(_NOT_UI) and "hx-request" not in request.headers
        if page and exc.status_code == 404:
            return render(
                request,
                "error.html",
                None,
                404,
                title="Not found",
                message="There is no page at this address.",
            )
        return http_error_response(exc)

    app.add_middleware(SecurityHeaders)
