"""`crm serve` answers with Nagle's algorithm off even when uvicorn binds the socket itself (as it
does with several workers, where asyncio would leave TCP_NODELAY off)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
from typing import Any

import uvicorn

from engine.ui.http import NoDelayHTTPProtocol


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_connections_get_tcp_nodelay() -> None:
    seen: list[int] = []

    class Probe(NoDelayHTTPProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    async def scenario() -> bytes:
        listener = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket makes it: proto 0
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(_app, http=Probe, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        server.should_exit = True
        await serving
        return answer

    # A thread of its own: another test in this worker may have left an event loop running here.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(asyncio.run, scenario()).result(timeout=60)
    assert answer.startswith(b"HTTP/1.1 200") and b"\r\nok\r\n" in answer
    assert seen and all(seen)


def test_crm_serve_uses_it() -> None:
    import inspect

    from engine import cli

    assert '"engine.ui.http:NoDelayHTTPProtocol"' in inspect.getsource(cli.cmd_serve)
