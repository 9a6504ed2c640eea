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
    """uvicorn's httptools protocol, exposing the transport to the app for transport faults.

    It also guards what uvicorn leaves open: a request head must arrive within `header_timeout`
    (a slowloris client trickling headers, or connecting and sending nothing, is answered 408 and
    closed instead of holding a connection forever), and a head with more than `max_header_count`
    headers or `max_header_bytes` bytes is answered 431. `make_server` sets these from Settings.
    """

    header_timeout: float = 10.0
    max_header_count: int = 100
    max_header_bytes: int = 64 * 1024

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_late)
        self.scope["extensions"] = {TRANSPORT_KEY: self.transport}  # type: ignore[dict-item]

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count_head(len(name) + len(value))
        if len(self.headers) > self.max_header_count:
            self._reject_head()

    def on_headers_complete(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._reject_head()

    def _reject_head(self) -> None:
        self._head_too_large = True
        # Raising inside a parser callback makes uvicorn answer through send_400_response, below.
        raise ValueError("request head too large")

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._send_and_close(
                431,
                b"Request Header Fields Too Large",
                f"mockhub: request head over the limits of "
                f"{self.max_header_count} headers / {self.max_header_bytes} bytes",
            )
            return
        super().send_400_response(msg)

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self._send_and_close(408, b"Request Timeout", f"mockhub: no request head within {self.header_timeout} s")

    def _send_and_close(self, status: int, reason: bytes, message: str) -> None:
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


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
