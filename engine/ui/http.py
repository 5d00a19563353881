"""uvicorn's HTTP protocol with Nagle's algorithm off on every connection.

With `--workers N > 1` uvicorn binds the listening socket itself (`socket.socket(family)`, whose
`proto` is 0), and asyncio only sets TCP_NODELAY on sockets whose `proto` is IPPROTO_TCP. The
response then leaves as two writes (headers, body); Nagle holds the body until the headers are
acknowledged, and the client delays that acknowledgement by up to 40 ms: every small page took
~50 ms with two workers against ~10 ms with one (strace of a worker, docs/performance.md cause 12).
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
