"""Interception: the forward proxy's CONNECT tunnels and the HTTPS listener, both ending in mockhub.

A `CONNECT api.twilio.com:443` is answered `200 Connection established`; mockhub then terminates
TLS itself, with a certificate for `api.twilio.com` signed by its CA, and the tunnelled requests
are served by a fresh `MockhubProtocol` on the same connection, i.e. by the same ASGI app with
scheme `https`. Nothing is forwarded anywhere. The HTTPS listener is the same second half: every
connection it accepts starts with TLS.

`TlsFront` looks at a connection's first bytes before starting TLS, so a client that speaks plain
HTTP where TLS was expected gets a readable 400, a client that sends nothing is closed after the
handshake timeout, and a broken handshake only closes its own connection. TLS itself is asyncio's
`SSLProtocol` (what `loop.start_tls` uses), placed between the socket and the HTTP protocol, so
transport faults (`reset`, `timeout`) act on the tunnel's own TCP connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
from asyncio.sslproto import SSLProtocol
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from mockhub.tls import Authority

__all__ = [
    "INTERCEPT_PORTS",
    "PROXY_KEY",
    "Intercepted",
    "TlsFront",
    "feed",
    "normal_host",
    "proxy_namespace",
    "split_target",
    "target_of",
]

PROXY_KEY = "mockhub.proxy"
"""The ASGI scope extension holding `Intercepted` for a request that came through the proxy."""

# CONNECT is accepted for these ports only: HTTPS (TLS terminated here) and HTTP (plain, in a tunnel).
INTERCEPT_PORTS = frozenset({443, 80})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# First byte of a TLS record carrying a handshake (the ClientHello).
_TLS_HANDSHAKE = 0x16
_HTTP_METHODS = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE", b"PRI")


@dataclass(frozen=True, slots=True)
class Intercepted:
    """Where a proxied request was going (`host`, without the scheme's default port) and the proxy user."""

    host: str
    namespace: str | None = None


def normal_host(host: str, port: int | None, scheme: str) -> str:
    """`api.twilio.com` (the scheme's default port left out), `127.0.0.1:8080`, `[::1]:8443`."""
    host = host.lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host
    return f"{host}:{port}"


Target = tuple[str, str, int | None]
# Host headers seen, parsed, per scheme: nearly every request repeats one of a few, and this runs for each.
_TARGETS: dict[str, dict[bytes, Target]] = {"http": {}, "https": {}}
_MAX_TARGETS = 4096


def target_of(scope: Mapping[str, Any], proxied: Intercepted | None) -> Target:
    """Where a request was going: (host as recorded, host name for routing, explicit port or None).

    The proxy's target (the CONNECT or absolute-form authority) when proxied, else the Host header.
    """
    scheme: str = scope.get("scheme") or "http"
    if proxied is not None:
        raw = proxied.host.encode("latin-1")
    else:
        raw = b""
        for name, value in scope["headers"]:
            if name == b"host":
                raw = value
                break
    cache = _TARGETS.get(scheme)
    if cache is None:
        return _parse_host(raw.decode("latin-1").strip(), scheme)
    found = cache.get(raw)
    if found is None:
        found = _parse_host(raw.decode("latin-1").strip(), scheme)
        if len(cache) < _MAX_TARGETS:
            cache[raw] = found
    return found


def _parse_host(text: str, scheme: str) -> Target:
    if text.startswith("["):
        end = text.find("]")
        name, rest = (text[1:end], text[end + 1 :]) if end > 0 else (text, "")
    elif text.count(":") == 1:
        name, _, port_text = text.partition(":")
        rest = ":" + port_text
    else:
        name, rest = text, ""
    port: int | None = None
    if rest.startswith(":") and rest[1:].isdigit():
        port = int(rest[1:])
    name = name.lower().rstrip(".")
    if not name:
        return "", "", port
    return normal_host(name, port, scheme), name, port


def split_target(target: str) -> tuple[str, int] | None:
    """A CONNECT target `host:port` (`[v6]:port` too) as (host, port); None when it is not one."""
    host, sep, port_text = target.rpartition(":")
    if not sep or not port_text.isdigit() or not host:
        return None
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    elif not all(c.isalnum() or c in "-._" for c in host):
        return None
    if not 0 < port < 65536:
        return None
    return host.lower(), port


def proxy_namespace(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The user name of `Proxy-Authorization: Basic` (any password): the namespace of the proxied calls."""
    for name, value in headers:
        if name.lower() != b"proxy-authorization":
            continue
        scheme, _, token = value.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # Clients send the user as written in the proxy URL; some leave it percent-encoded.
        user = unquote(decoded.partition(":")[0]).strip()
        return user or None
    return None


def feed(protocol: asyncio.BufferedProtocol, data: bytes) -> None:
    """Hand bytes already read from the socket to a buffered protocol, as the event loop would."""
    view = memoryview(data)
    while view:
        buffer = memoryview(protocol.get_buffer(len(view)))
        size = min(len(buffer), len(view))
        if size == 0:
            return
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)
        view = view[size:]


class TlsFront(asyncio.Protocol):
    """The start of a connection that must speak TLS: wait for the ClientHello, then start TLS.

    `host` (the CONNECT target) picks the certificate when the client sends no SNI; with SNI the
    certificate is for the name the client asked for. `make_inner` builds the HTTP protocol that
    serves the decrypted requests.
    """

    def __init__(
        self,
        authority: Authority,
        make_inner: Callable[[], asyncio.Protocol],
        host: str | None,
        timeout: float,
        on_done: Callable[[TlsFront], None] | None = None,
    ) -> None:
        self.authority = authority
        self.make_inner = make_inner
        self.host = host
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._on_done = on_done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = transport  # type: ignore[assignment]
        self._timer = asyncio.get_running_loop().call_later(self.timeout, self._late)

    def _late(self) -> None:
        # A client that opened the tunnel (or connected) and never sent a ClientHello.
        self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._on_done is not None:
            self._on_done(self)
            self._on_done = None

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        self._finish()
        if data[0] != _TLS_HANDSHAKE:
            if data.lstrip().upper().startswith(_HTTP_METHODS):
                body = (
                    b"mockhub: this connection expects TLS (a ClientHello) and got plain HTTP. "
                    b"Send https:// URLs through a CONNECT tunnel, and http:// URLs to the proxy as plain requests."
                )
                transport.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
                    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
                )
                transport.close()
            else:
                transport.abort()
            return
        try:
            context = self.authority.context_for(self.host)
        except Exception:  # no certificate can be made (cryptography missing, say): close, never crash
            transport.abort()
            return
        tls = SSLProtocol(
            asyncio.get_running_loop(),
            self.make_inner(),
            context,
            None,  # type: ignore[arg-type]  # no waiter: nobody awaits the handshake, the HTTP protocol starts after it
            server_side=True,
            ssl_handshake_timeout=self.timeout,  # type: ignore[arg-type]  # seconds, a float as loop.start_tls takes
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)
        feed(tls, data)

    def eof_received(self) -> bool | None:
        return None  # the client gave up before TLS: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        self.transport = None
