"""Transport-level faults: answers that are not HTTP at all.

Plain ASGI cannot drop a connection or write bytes that are not a response, so the server runs
uvicorn with `MockhubProtocol`, which puts the connection's transport into
`scope["extensions"]`. Everything here acts on that transport directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["TRANSPORT_KEY", "MockhubProtocol", "close_after", "get_transport", "malformed", "reset"]

TRANSPORT_KEY = "mockhub.transport"

# Not HTTP: a client parsing a status line fails on the very first byte.
GARBAGE = b"\x00\x15\x03 this is not HTTP \xff\xfe\r\n\r\n"


class _CoalescingTransport:
    """Passes writes made in one event-loop step to the socket as one write.

    uvicorn writes a response's head and its body separately, and uvloop sends each at once: two
    system calls per answer, the largest single cost of a recorded call. Buffering until the step
    ends sends them together. Everything else goes straight to the real transport.
    """

    __slots__ = ("_buffer", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(data)

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._buffer.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class MockhubProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, exposing the transport to the app for transport faults."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {TRANSPORT_KEY: self.transport}  # type: ignore[dict-item]


def get_transport(scope: Any) -> asyncio.Transport | None:
    extensions = scope.get("extensions") or {}
    transport: asyncio.Transport | None = extensions.get(TRANSPORT_KEY)
    return transport


async def reset(transport: asyncio.Transport) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), so the client sees a reset, not a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Let uvicorn's connection_lost run, so it knows not to answer for us.
    await asyncio.sleep(0)


async def close_after(transport: asyncio.Transport, seconds: float = 0.0, data: bytes = b"") -> None:
    """Write `data` (maybe nothing), wait `seconds` (a held request), then close the connection."""
    if data:
        transport.write(data)
    if seconds > 0:
        await asyncio.sleep(seconds)
    transport.close()
    await asyncio.sleep(0)


async def malformed(transport: asyncio.Transport) -> None:
    """Answer bytes that are not HTTP, then close."""
    await close_after(transport, 0.0, GARBAGE)
