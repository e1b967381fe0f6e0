"""Browser tests: Cronium served on a loopback port, driven by headless Chromium.

Debian's `chromium` is driven by Playwright for Python with `executable_path` (no browser
download). Each test gets a fresh database, a running node (scheduler and worker with the
local executor) and a logged-in browser context per persona it asks for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core
from cronium.engine.node import Node
from tests.conftest import PASSWORD, REQUIRE_ALL, Persona
from tests.support.tool_receivers import SmtpServer, smtp_server

CHROMIUM = (
    os.environ.get("CRONIUM_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ROOT = Path(__file__).resolve().parents[2]
# Screenshots go to docs/screenshots when asked (they are committed), else to a temp folder.
SCREENSHOTS = os.environ.get("CRONIUM_SCREENSHOTS") == "1"
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if REQUIRE_ALL:
            pytest.fail(f"Chromium is required for the browser tests: {CHROMIUM} not found")
        pytest.skip(f"Chromium not installed ({CHROMIUM}): apt-get install chromium")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        yield launched
        await launched.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    """A local SMTP server that keeps what it receives (the accounts pages send mail)."""
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
async def live_url(settings: Settings, core: Core, node: Node) -> AsyncIterator[str]:
    """The app on a real TCP port of 127.0.0.1 (WebSockets and all), with a node running."""
    app = create_app(settings, core=core)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=15)
    sock.close()


LoginAs = Callable[..., Awaitable[Page]]


@pytest.fixture
async def login_as(
    browser: Browser, live_url: str, personas: dict[str, Persona]
) -> AsyncIterator[LoginAs]:
    """`await login_as("user")` gives a page signed in as that persona (API login: fast)."""
    contexts: list[BrowserContext] = []

    async def _login(name: str, *, viewport: dict[str, int] | None = None) -> Page:
        context = await browser.new_context(
            base_url=live_url,
            viewport=viewport or VIEWPORT,
            locale="en-GB",  # type: ignore[arg-type]
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        response = await context.request.post(
            "/api/v1/auth/login", data={"email": personas[name].email, "password": PASSWORD}
        )
        assert response.ok, await response.text()
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    errors: list[str] = []
    yield _login
    for context in contexts:
        await context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


@pytest.fixture
async def anon_page(browser: Browser, live_url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=live_url, viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(10_000)
    page = await context.new_page()
    yield page
    await context.close()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Page, str], Awaitable[Path]]:
    """`await shot(page, "events")` saves a PNG of the page (docs/screenshots/ when asked)."""
    folder = ROOT / "docs" / "screenshots" if SCREENSHOTS else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    async def _shot(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        await page.screenshot(path=str(path), full_page=False)
        assert path.stat().st_size > 1000
        return path

    return _shot
