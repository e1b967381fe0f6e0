"""The API's listening socket hands out connections with Nagle's algorithm off.

Without TCP_NODELAY on accepted sockets, a response written in two parts (uvicorn sends
the headers, then the body) waits for the client's delayed ACK: ~40 ms on every keep-alive
request after the first. asyncio sets it only when the listener's proto is TCP, which
uvicorn's bind_socket() leaves at 0.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from cronium.cli import tcp_listener


async def _app(scope: object, receive: object, send: object) -> None:  # never called
    raise AssertionError("not used")


async def test_accepted_connections_have_tcp_nodelay() -> None:
    listener = tcp_listener(uvicorn.Config(_app, host="127.0.0.1", port=0))
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
    try:
        port = listener.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, timeout=10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
