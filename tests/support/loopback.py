"""The app served by a real uvicorn on a free loopback port (WebSocket handshakes, sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from cronium.app import create_app
from cronium.config import Settings
from cronium.core import Core


@asynccontextmanager
async def serve_on_loopback(settings: Settings, core: Core) -> AsyncIterator[str]:
    """`host:port` of the app while the block runs; the server stops after it."""
    config = uvicorn.Config(
        create_app(settings, core=core),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)
