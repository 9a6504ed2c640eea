"""Outbound calls: the one place mockhub calls out (status callbacks, event webhooks, DSNs), and its guard.

`Outbound` sends a prepared outbound `Call` in the background: it asks the allowlist and the guard
below first, reads a bounded answer within a bounded time, records every attempt in the journal (in
the namespace of the message that caused it), and retries a 5xx or an unreachable target on the
provider's schedule, compressed by `webhook_backoff_scale` and bounded by `webhook_max_attempts`.
The fakes never wait for it.

The guard: outbound calls aimed at mockhub itself: a status callback must never reach the inspection API.

A callback URL is the caller's to choose. `http://127.0.0.1:8080/reset` would wipe every call,
fault and stub; `.../faults` could plant rules. So a callback whose host is one of this machine's
addresses and whose port is one of mockhub's own listeners is refused, unless its path is a
fake's route (a Twilio status callback to mockhub's own webhook fake is a common, harmless setup).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from mockhub.journal import Call, ResponseRecord

if TYPE_CHECKING:
    import httpx

    from mockhub.router import Router
    from mockhub.settings import Settings

__all__ = ["Outbound", "is_local_address", "outbound_call", "own_listener_refusal"]

log = logging.getLogger("mockhub")

# Signs one attempt of an outbound call in place (its headers), just before it is sent.
Signer = Callable[[Call], None]

# Bodies of targets' answers kept in the journal; a callback target is not the thing under test.
MAX_RECORDED_ANSWER = 64 * 1024

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


def outbound_call(
    service: str, namespace: str, url: str, body: bytes, headers: dict[str, str], data: dict[str, Any]
) -> Call:
    """An outbound POST of `service` to `url`, recorded in the namespace of the message that caused it."""
    return Call(
        service=service,
        method="POST",
        path=url,
        namespace=namespace,
        direction="outbound",
        headers=headers,
        body=body,
        data={**data, "url": url},
    )


class Outbound:
    """Sends outbound calls (callbacks, event webhooks, bounces) in the background, records each attempt.

    `refusal(url)` says why a URL must not be called (the allowlist, mockhub's own listeners), or None.
    """

    def __init__(
        self,
        settings: Settings,
        record: Callable[[Call], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        refusal: Callable[[str], Awaitable[str | None]],
    ) -> None:
        self._settings = settings
        # ServiceContext.record: the journal, or the shared store when processes share one.
        self._record = record
        self._spawn = spawn
        self._refusal = refusal
        self._client: httpx.AsyncClient | None = None

    def send(self, call: Call, backoff: Sequence[float] = (), delay: float = 0.0, sign: Signer | None = None) -> None:
        """Deliver `call` (its `path` is the target URL) in the background, after `delay` seconds.

        `backoff` is the provider's documented retry schedule in real seconds (the wait before each
        retry); it is scaled by `webhook_backoff_scale` and cut to `webhook_max_attempts` attempts.
        `sign`, when given, signs each attempt just before it is sent (a fresh timestamp, as the
        providers sign every attempt anew).
        """
        self._spawn(self.deliver(call, backoff, delay, sign))

    def send_steps(
        self, steps: Sequence[tuple[Call, Sequence[float]]], delay: float, sign: Signer | None = None
    ) -> None:
        """Deliver one message's events in order (`processed` before `delivered`), `delay` seconds apart.

        One background task for all of them: a later event never overtakes an earlier one, even
        while the earlier one is being retried.
        """
        if steps:
            self._spawn(self._in_order(list(steps), delay, sign))

    async def _in_order(self, steps: list[tuple[Call, Sequence[float]]], delay: float, sign: Signer | None) -> None:
        for call, backoff in steps:
            await self.deliver(call, backoff, delay, sign)

    def schedule(self, backoff: Sequence[float]) -> list[float]:
        """The waits before each retry, compressed and bounded as the settings say."""
        scale = self._settings.webhook_backoff_scale
        retries = max(self._settings.webhook_max_attempts - 1, 0)
        return [wait * scale for wait in list(backoff)[:retries]]

    async def deliver(
        self, call: Call, backoff: Sequence[float] = (), delay: float = 0.0, sign: Signer | None = None
    ) -> None:
        """Send `call`, retrying a 5xx or a failed connection on `backoff`; every attempt is recorded."""
        if delay > 0:
            await asyncio.sleep(delay)
        refusal = await self._refusal(call.path)
        if refusal is not None:  # not a target mockhub may call: recorded once, never retried
            call.data["error"] = refusal
            await self._record(call)
            return
        waits = self.schedule(backoff)
        attempts = len(waits) + 1
        for attempt in range(1, attempts + 1):
            this = call if attempts == 1 else _attempt_copy(call, attempt, attempts)
            if sign is not None:
                sign(this)
            retry = await self._attempt(this)
            if not retry or attempt == attempts:
                if retry and attempts > 1:
                    this.data["gave_up"] = True
                await self._record(this)
                return
            this.data["next_attempt_in_s"] = round(waits[attempt - 1], 3)
            await self._record(this)
            await asyncio.sleep(waits[attempt - 1])

    async def _attempt(self, call: Call) -> bool:
        """One attempt: fills `call.response` or `data.error`; True when the provider would retry."""
        started = time.perf_counter()
        retry = False
        try:
            async with asyncio.timeout(self._settings.webhook_timeout * 3):
                call.response, cut = await self.exchange(call)
            if cut:
                call.data["answer_truncated"] = True
            retry = call.response.status >= 500
        except Exception as exc:  # an unreachable or broken target is recorded, never raised
            call.data["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            retry = True
        call.duration_ms = (time.perf_counter() - started) * 1000
        return retry

    async def exchange(self, call: Call, timeout: float | None = None) -> tuple[ResponseRecord, bool]:
        """Send `call` once to its `path`; read at most `MAX_RECORDED_ANSWER` bytes of the answer, then hang up.

        The answer is the target's to choose: a huge (or endless) one must not be read whole. Returns
        the answer and whether it was longer than that, and cut. `timeout` (seconds) overrides
        `webhook_timeout` for this request (a simulation's own bound).
        """
        if self._client is None:  # made on the first delivery: httpx is slow to import
            self._client = _new_client(self._settings.webhook_timeout)
        limit = self._settings.webhook_timeout if timeout is None else timeout
        async with self._client.stream(
            call.method, call.path, content=call.body, headers=call.headers, timeout=limit
        ) as answer:
            chunks: list[bytes] = []
            size = 0
            cut = False
            async for chunk in answer.aiter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RECORDED_ANSWER:
                    cut = True
                    break
            body = b"".join(chunks)[:MAX_RECORDED_ANSWER]
            return ResponseRecord(answer.status_code, dict(answer.headers.items()), body), cut

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _attempt_copy(call: Call, attempt: int, attempts: int) -> Call:
    """The record of one attempt of a retried delivery: the same request, numbered."""
    data = copy.deepcopy(call.data)
    data["attempt"] = attempt
    data["max_attempts"] = attempts
    return Call(
        service=call.service,
        method=call.method,
        path=call.path,
        namespace=call.namespace,
        direction=call.direction,
        headers=dict(call.headers),
        body=call.body,
        data=data,
    )


def _new_client(timeout: float) -> httpx.AsyncClient:
    import httpx

    # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback callbacks.
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
