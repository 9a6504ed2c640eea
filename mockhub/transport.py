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

import httptools
from starlette.types import Receive, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mockhub.proxy import INTERCEPT_PORTS, PROXY_KEY, Intercepted, TlsFront, normal_host, proxy_namespace, split_target
from mockhub.tls import Authority

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


HEALTH_PATHS = frozenset({b"/health", b"/livez", b"/readyz"})
"""Answered even at `max_connections` (the probes of an orchestrator)."""


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
    # True while the app holds the current request without answering (a `timeout` or `delay` fault).
    holding = False
    # The CA that terminates CONNECT tunnels (`make_server` sets it); None: CONNECT is refused.
    authority: Authority | None = None
    # Set on the protocol serving a CONNECT tunnel: where the tunnel goes, and the proxy user.
    tunnel: Intercepted | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
        self._head_bytes = 0
        self._head_too_large = False
        self._connect = False
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
        extensions: dict[str, Any] = {TRANSPORT_KEY: self.transport, PROTOCOL_KEY: self}
        if self.tunnel is not None:
            extensions[PROXY_KEY] = self.tunnel
        self.scope["extensions"] = extensions

    def shutdown(self) -> None:
        # uvicorn's graceful shutdown waits for every in-flight request; a request held by a
        # `timeout` fault would keep it waiting for the whole hold (60 s by default).
        if self.holding and not self.transport.is_closing():
            self.transport.close()
        super().shutdown()

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
        if self.parser.get_method() == b"CONNECT":
            # Answered once the parser stops at the end of the head (data_received, below).
            self._connect = True
            return
        limit = self.limit_concurrency
        at_limit = limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)
        if at_limit and self.url.split(b"?", 1)[0] in HEALTH_PATHS:
            # At the connection limit, health is still answered: an orchestrator that got 503
            # from /health would restart a server that is only busy. The limit is for the rest.
            self.limit_concurrency = None
            try:
                super().on_headers_complete()
            finally:
                self.limit_concurrency = limit
            return
        super().on_headers_complete()
        if self.url[:1] != b"/" and self.url[:4].lower() == b"http":
            self._absolute_form()

    def _absolute_form(self) -> None:
        """`POST http://hooks.slack.com/... HTTP/1.1`: a proxy request, served here like any other."""
        try:
            url = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            return
        scheme = url.schema.decode("latin-1").lower()
        if not url.host or scheme not in ("http", "https"):
            return
        host = normal_host(url.host.decode("latin-1"), url.port, scheme)
        extensions: dict[str, Any] = self.scope["extensions"]
        extensions[PROXY_KEY] = Intercepted(host, proxy_namespace(self.headers))

    def on_body(self, body: bytes) -> None:
        if not self._connect:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._connect:
            super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as upgrade:
            if self._connect:
                self._open_tunnel(data[upgrade.args[0] :])
            elif self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _open_tunnel(self, early: bytes) -> None:
        """Answer a CONNECT and serve the tunnel here: TLS for port 443, plain HTTP for port 80."""
        target = split_target(self.url.decode("latin-1"))
        if target is None:
            self._send_and_close(400, b"Bad Request", "mockhub: CONNECT needs a host:port target")
            return
        host, port = target
        if port not in INTERCEPT_PORTS:
            self._send_and_close(
                403,
                b"Forbidden",
                f"mockhub: CONNECT to port {port} refused: mockhub intercepts HTTPS (port 443) and HTTP (port 80) "
                "and never forwards to the internet",
            )
            return
        if port == 443 and self.authority is None:
            self._send_and_close(501, b"Not Implemented", "mockhub: this server has no certificate authority")
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._send_and_close(400, b"Bad Request", "mockhub: CONNECT while a request is still being answered")
            return
        scheme = "https" if port == 443 else "http"
        tunnel = Intercepted(normal_host(host, port, scheme), proxy_namespace(self.headers))
        outer = self.transport
        raw: asyncio.Transport = outer._transport if isinstance(outer, _CoalescingTransport) else outer
        if isinstance(outer, _CoalescingTransport):
            outer._flush()
        # This protocol is done with the connection: the tunnel's own protocol takes it over.
        self.connections.discard(self)
        raw.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def inner() -> MockhubProtocol:
            protocol = type(self)(
                config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
            )
            protocol.tunnel = tunnel
            return protocol

        front: asyncio.Protocol
        if port == 443:
            assert self.authority is not None
            front = TlsFront(self.authority, inner, host, self.header_timeout)
        else:
            front = inner()
        raw.set_protocol(front)
        front.connection_made(raw)
        if early:
            front.data_received(early)

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


def get_transport(scope: Scope) -> asyncio.Transport | None:
    extensions = scope.get("extensions") or {}
    transport: asyncio.Transport | None = extensions.get(TRANSPORT_KEY)
    return transport


async def _until_disconnect(receive: Receive) -> None:
    """Consume request messages until the server reports the client gone (ASGI `http.disconnect`)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def hold(scope: Scope, receive: Receive, seconds: float) -> bool:
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


async def abandon(transport: asyncio.Transport, receive: Receive) -> None:
    """Wait until the server has seen the connection we broke as lost (abort it if that takes long)."""
    try:
        await asyncio.wait_for(_until_disconnect(receive), _GONE_WITHIN)
    except TimeoutError:
        # close() waits for the write buffer to drain; a client that never reads must not pin us.
        transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_until_disconnect(receive), _GONE_WITHIN)


async def reset(transport: asyncio.Transport, receive: Receive) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), so the client sees a reset, not a clean close."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await abandon(transport, receive)


async def close_after(transport: asyncio.Transport, receive: Receive, data: bytes = b"") -> None:
    """Write `data` (maybe nothing), then close the connection (a FIN, after the data)."""
    if data:
        transport.write(data)
    transport.close()
    await abandon(transport, receive)


async def malformed(transport: asyncio.Transport, receive: Receive) -> None:
    """Answer bytes that are not HTTP, then close."""
    await close_after(transport, receive, GARBAGE)
