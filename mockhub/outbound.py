"""Outbound calls aimed at mockhub itself: a status callback must never reach the inspection API.

A callback URL is the caller's to choose. `http://127.0.0.1:8080/reset` would wipe every call,
fault and stub; `.../faults` could plant rules. So a callback whose host is one of this machine's
addresses and whose port is one of mockhub's own listeners is refused, unless its path is a
fake's route (a Twilio status callback to mockhub's own webhook fake is a common, harmless setup).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Collection

from mockhub.router import Router

__all__ = ["is_local_address", "own_listener_refusal"]

# What a fake's route sees of a callback: Twilio's form POST.
_CALLBACK_SCOPE = {"headers": [(b"content-type", b"application/x-www-form-urlencoded")], "query_string": b""}


def is_local_address(ip: str) -> bool:
    """Whether `ip` is this machine's: loopback, unspecified, or an address a socket can bind."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((ip, 0))
    except OSError:
        return False
    return True


async def own_listener_refusal(
    url: str, ports: Callable[[], Collection[int]], http_port: int, router: Router
) -> str | None:
    """Why `url` must not be called (it reaches mockhub's own listener outside a fake's route), or None."""
    import httpx  # the callbacks' own client: the URL as it will really be sent (dot segments removed)

    try:
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except (httpx.InvalidURL, ValueError):
        return None  # not a URL the HTTP client can call either: it fails and is recorded as such
    own = set(ports())
    if port not in own:
        return None
    # What the server will route: the path httpx sends, percent-decoded as the ASGI server does.
    path = parsed.path or "/"
    if port == http_port:
        routed = path
        if routed.startswith("/ns/"):
            routed = "/" + routed[4:].partition("/")[2]
        if router.match(routed, "POST", _CALLBACK_SCOPE) is not None:
            return None
    host = parsed.host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None  # unresolvable: the call fails and is recorded as such
    if any(is_local_address(str(info[4][0])) for info in infos):
        return (
            f"callback refused: {host}:{port} is mockhub's own listener and {path} is not a fake's route "
            "(mockhub never calls its own inspection API)"
        )
    return None
