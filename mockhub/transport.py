"""Transport-level faults: answers that are not HTTP at all.

Plain ASGI cannot drop a connection or write bytes that are not a response, so the server runs
uvicorn with `MockhubProtocol` (a subclass of its httptools protocol), which puts the connection's
transport into `scope["extensions"]`. Everything here acts on that transport directly.

After breaking a connection, the app does not return at once: it waits (through plain ASGI
`receive()`) until uvicorn has seen the connection go. Returning earlier would make uvicorn log
"ASGI callable returned without starting response" and try to write a 500 on a dead socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "PROTOCOL_KEY",
    "TRANSPORT_KEY",
    "MockhubProtocol",
    "abandon",
    "close_after",
    "get_transport",
    "hold",
    "malformed",
    "reset",
]

TRANSPORT_KEY = "mockhub.transport"
PROTOCOL_KEY = "mockhub.protocol"

# Not HTTP: a client parsing a status line fails on the very first byte.
GARBAGE = b"\x00\x15\x03 this is not HTTP \xff\xfe\r\n\r\n"

# How long to wait for the event loop to report a connection we closed as lost (normally one tick).
_GONE_WITHIN = 5.0


class MockhubProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, exposing the transport to the app for transport faults."""

    # True while the app holds the current request without answering (a `timeout` or `delay` fault).
    holding = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {TRANSPORT_KEY: self.transport, PROTOCOL_KEY: self}  # type: ignore[dict-item]

    def shutdown(self) -> None:
        # uvicorn's graceful shutdown waits for every in-flight request; a request held by a
        # `timeout` fault would keep it waiting for the whole hold (60 s by default).
        if self.holding and not self.transport.is_closing():
            self.transport.close()
        super().shutdown()


def get_transport(scope: Any) -> asyncio.Transport | None:
    extensions = scope.get("extensions") or {}
    transport: asyncio.Transport | None = extensions.get(TRANSPORT_KEY)
    return transport


async def _until_disconnect(receive: Any) -> None:
    """Consume request messages until the server reports the client gone (ASGI `http.disconnect`)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def hold(scope: Any, receive: Any, seconds: float) -> bool:
    """Hold the request for `seconds` without answering; True if the client went away first.

    Ends early when the client disconnects (its own timeout fired) or the server shuts down, so a
    held request never keeps a dead connection or a stopping server waiting.
    """
    protocol: MockhubProtocol | None = (scope.get("extensions") or {}).get(PROTOCOL_KEY)
    if protocol is not None:
        protocol.holding = True
    try:
        await asyncio.wait_for(_until_disconnect(receive), seconds)
        return True
    except TimeoutError:
        return False
    finally:
        if protocol is not None:
            protocol.holding = False


async def abandon(transport: asyncio.Transport, receive: Any) -> None:
    """Wait until the server has seen the connection we broke as lost (abort it if that takes long)."""
    try:
        await asyncio.wait_for(_until_disconnect(receive), _GONE_WITHIN)
    except TimeoutError:
        # close() waits for the write buffer to drain; a client that never reads must not pin us.
        transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_until_disconnect(receive), _GONE_WITHIN)


async def reset(transport: asyncio.Transport, receive: Any) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), so the client sees a reset, not a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await abandon(transport, receive)


async def close_after(transport: asyncio.Transport, receive: Any, data: bytes = b"") -> None:
    """Write `data` (maybe nothing), then close the connection (a FIN, after the data)."""
    if data:
        transport.write(data)
    transport.close()
    await abandon(transport, receive)


async def malformed(transport: asyncio.Transport, receive: Any) -> None:
    """Answer bytes that are not HTTP, then close."""
    await close_after(transport, receive, GARBAGE)
