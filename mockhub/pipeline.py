"""The HTTP pipeline: every HTTP call to a fake goes through `HttpPipeline.handle`.

1. read the body and build the call; the route's parser fills `data`;
2. ask the rule book for a fault (error, delay, transport faults) and then for a stub;
3. otherwise the fake answers;
4. append the finished call to the journal (sinks write it to disk), then send the answer.

This is the hot path of every fake, so it works on raw ASGI messages rather than a framework's
request and response objects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from mockhub import transport
from mockhub.journal import Call, Journal, ResponseRecord, SinkError
from mockhub.rules import FaultRule, RuleBook, StubResponse
from mockhub.services.base import BadRequest, Reply, Request, Route, Service
from mockhub.store import Store, StoreUnavailable

__all__ = ["HttpPipeline"]

log = logging.getLogger("mockhub")


class _ClientGone(Exception):
    pass


# Every recorded call keeps its headers, and nearly all of them repeat from call to call (names,
# user agents, content types, hosts). Decoding each to a fresh string cost ~500 bytes per call
# kept in memory; these bounded caches hand back the same string objects instead.
_NAMES: dict[bytes, str] = {}
_VALUES: dict[bytes, str] = {}
_MAX_CACHED = 4096
_MAX_CACHED_VALUE = 256


def _text(raw: bytes, cache: dict[bytes, str]) -> str:
    text = cache.get(raw)
    if text is None:
        text = raw.decode("latin-1")
        if len(cache) < _MAX_CACHED and len(raw) <= _MAX_CACHED_VALUE:
            cache[raw] = text
    return text


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for k, v in raw:
        key = _text(k, _NAMES)
        value = _text(v, _VALUES)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


_RESPONSE_HEADERS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def _response_headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The recorded response headers; identical sets (a fake's fixed answer) share one dict, never mutated."""
    key = tuple(pairs)
    headers = _RESPONSE_HEADERS.get(key)
    if headers is None:
        headers = dict(pairs)
        if len(_RESPONSE_HEADERS) < _MAX_CACHED:
            _RESPONSE_HEADERS[key] = headers
    return headers


def _query(query_string: bytes) -> dict[str, Any]:
    if not query_string:
        return {}
    from urllib.parse import parse_qsl

    out: dict[str, Any] = {}
    for k, v in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if k in out:
            prev = out[k]
            out[k] = [*prev, v] if isinstance(prev, list) else [prev, v]
        else:
            out[k] = v
    return out


def raw_stub_reply(response: StubResponse) -> Reply:
    if response.json_body is not None:
        body = orjson.dumps(response.json_body)
        content_type = "application/json"
    else:
        body = (response.body or "").encode()
        content_type = "text/plain; charset=utf-8"
    headers = {"content-type": content_type, **{k.lower(): v for k, v in response.headers.items()}}
    return Reply(response.status, body, list(headers.items()))


def fault_error_reply(service: Service, rule: FaultRule, request: Request) -> Reply:
    """A fault's `error` answer: the fake's own preset, with any status/body/headers given overriding it.

    Without a preset, the answer is the fake's own error shape for `status`. A JSON `body` is sent
    as JSON; a string body verbatim (as JSON when it parses as JSON, else as text/plain).
    """
    spec = rule.spec
    if spec.preset is not None:
        reply = service.preset(spec.preset, request)
    else:
        reply = service.error(spec.status or 500, f"mockhub fault {rule.id}")
    if spec.status is None and spec.body is None and not spec.headers:
        return reply
    # A copy: a fake may hand out the same preset Reply object to every call.
    reply = Reply(reply.status, reply.body, list(reply.headers), reply.stream, reply.after)
    if spec.status is not None:
        reply.status = spec.status
    if spec.body is not None:
        if isinstance(spec.body, str):
            reply.body = spec.body.encode()
            content_type = "application/json" if _is_json(reply.body) else "text/plain; charset=utf-8"
        else:
            reply.body = orjson.dumps(spec.body)
            content_type = "application/json"
        reply.headers = [h for h in reply.headers if h[0].lower() != "content-type"]
        reply.headers.append(("content-type", content_type))
    if spec.headers:
        names = {k.lower() for k in spec.headers}
        reply.headers = [h for h in reply.headers if h[0].lower() not in names]
        reply.headers.extend((k.lower(), v) for k, v in spec.headers.items())
    return reply


def _is_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


# The `malformed` action's well-formed HTTP variant: a response whose JSON body is cut short.
BROKEN_JSON = '{"ok": tru'


def malformed_reply(rule: FaultRule) -> Reply:
    """`malformed` with a `status` or `body`: valid HTTP (200 by default) carrying broken JSON."""
    spec = rule.spec
    body = spec.body if isinstance(spec.body, str) else BROKEN_JSON
    headers = {"content-type": "application/json", **{k.lower(): v for k, v in spec.headers.items()}}
    return Reply(spec.status or 200, body.encode(), list(headers.items()))


def _hold_seconds(rule: FaultRule, rng: random.Random, default_ms: int) -> float:
    spec = rule.spec
    jitter = rng.uniform(0, spec.jitter_ms) if spec.jitter_ms else 0.0
    return ((spec.delay_ms if spec.delay_ms is not None else default_ms) + jitter) / 1000


class HttpPipeline:
    """Runs an HTTP call to a fake through parse, rules, answer and record."""

    def __init__(
        self,
        journal: Journal,
        rules: RuleBook,
        max_body_bytes: int,
        spawn: Any,
        body_timeout: float = 30.0,
        store: Store | None = None,
    ) -> None:
        self.body_timeout = body_timeout
        # A shared store records and counts; without one (memory) the journal and rules are called directly.
        self.store = store if store is not None and store.shared else None
        self.journal = journal
        self.rules = rules
        self.max_body_bytes = max_body_bytes
        self.spawn = spawn
        self._random = random.Random()

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        """The request body, and whether it was cut at the size limit."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False) and len(body) <= self.max_body_bytes:
            return body, False
        chunks = [body]
        size = len(body)
        # Only bodies that arrive in pieces can be slow; a deadline keeps a trickling client from
        # holding its request open forever.
        async with asyncio.timeout(self.body_timeout):
            while message.get("more_body", False) and size <= self.max_body_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
        data = b"".join(chunks)
        if size > self.max_body_bytes:
            return data[: self.max_body_bytes], True
        return data, False

    async def handle(
        self,
        service: Service,
        route: Route | None,
        params: dict[str, str],
        path: str,
        namespace: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        host: str = "",
    ) -> None:
        """Serve one call. `host` is where it was going, as recorded (`api.twilio.com`, `127.0.0.1:8080`)."""
        try:
            await self._handle(service, route, params, path, namespace, scope, receive, send, host)
        except SinkError as exc:
            # Every path records the call before it sends a byte, so nothing has been answered yet:
            # a call that could not be recorded is refused, never acknowledged and lost.
            await _send_reply(send, service.error(500, f"mockhub could not record this call: {exc}", "mockhub_error"))
        except StoreUnavailable as exc:
            # Not acknowledged: the client sees the provider's 503 and retries.
            reply = service.error(503, f"mockhub could not record this call: {exc}", "store_unavailable")
            reply.headers.append(("retry-after", "1"))
            await _send_reply(send, reply)

    async def _record(self, call: Call) -> None:
        """Record `call` before it is answered (in the shared store when there is one)."""
        if self.store is None:
            self.journal.append(call)
        else:
            await self.store.append(call)

    async def _handle(
        self,
        service: Service,
        route: Route | None,
        params: dict[str, str],
        path: str,
        namespace: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        host: str,
    ) -> None:
        started = time.perf_counter()
        headers = _headers(scope["headers"])
        too_slow = False
        try:
            body, too_large = await self._read_body(receive)
        except _ClientGone:
            return
        except TimeoutError:
            body, too_large, too_slow = b"", False, True
        scheme = scope.get("scheme", "http")
        call = Call(
            service=service.name,
            method=scope["method"],
            host=host or headers.get("host", ""),
            scheme=scheme,
            path=path,
            namespace=namespace or headers.get("x-mockhub-namespace") or "default",
            query=_query(scope["query_string"]),
            headers=headers,
            body=body,
        )
        request = Request(
            method=call.method,
            path=path,
            path_params=params,
            query_string=scope["query_string"],
            headers=headers,
            body=body,
            namespace=call.namespace,
            base_url=f"{scheme}://{call.host or 'localhost'}",
            call=call,
        )
        reply: Reply | None = None
        if too_slow or too_large:
            if too_slow:
                reply = service.error(408, f"request body not received within {self.body_timeout} s", code="timeout")
                call.data = {"error": "body_timeout"}
            else:
                reply = service.error(413, f"request body larger than {self.max_body_bytes} bytes", code="too_large")
                call.data = {"error": "body_too_large"}
            # The rest of the body is still on the wire: the connection cannot carry another request.
            reply.headers.append(("connection", "close"))
        elif route is None:
            reply = service.error(405, f"{call.method} is not allowed on {path}", code="method_not_allowed")
        elif route.parse is not None:
            try:
                call.data = route.parse(request)
            except BadRequest as exc:
                reply = exc.reply
                call.data = exc.data
            request.data = call.data

        cut_after: int | None = None
        break_after: int | None = None
        rule = self.rules.fault_for(call) if self.store is None else await self.store.fault_for(call)
        if rule is not None:
            spec = rule.spec
            call.fault = rule.summary()
            action = spec.action
            if action == "error":
                reply = fault_error_reply(service, rule, request)
            elif action == "delay":
                if await transport.hold(scope, receive, _hold_seconds(rule, self._random, 0)):
                    # Nobody is left to answer: record the call as the client experienced it.
                    call.duration_ms = (time.perf_counter() - started) * 1000
                    call.fault["reason"] = f"the connection was closed after {call.duration_ms:.0f} ms of the delay"
                    await self._record(call)
                    return
            elif action == "cut_stream":
                cut_after = spec.after_chunks
            elif action == "malformed" and "after_chunks" in spec.model_fields_set:
                # The answer itself goes wrong: a stream's next chunk, or a plain body, arrives broken.
                break_after = spec.after_chunks
            elif action == "malformed" and (spec.status is not None or spec.body is not None):
                reply = malformed_reply(rule)
            elif action in ("timeout", "reset", "empty", "malformed"):
                await self._transport_fault(rule, call, scope, started, receive, send)
                return

        if reply is None and route is not None:
            if self.store is None:
                hit = self.rules.stub_for(call, route.reply_stubs)
            else:
                hit = await self.store.stub_for(call, route.reply_stubs)
            if hit is not None:
                call.stub = hit.summary()
            if hit is not None and hit.response is not None:
                reply = raw_stub_reply(hit.response)
            else:
                request.stub = hit
                try:
                    reply = await route.handle(request)
                except BadRequest as exc:
                    reply = exc.reply
                    call.data.update(exc.data)
                except StoreUnavailable:
                    raise  # not a bug of the fake: answered 503 by `handle`
                except Exception as exc:  # a bug in a fake must not take the server down
                    log.exception("fake %s failed on %s %s", service.name, call.method, path)
                    reply = service.error(500, f"mockhub internal error: {exc!r}", code="mockhub_error")
        assert reply is not None
        if reply.wait and reply.stream is None and await transport.hold(scope, receive, reply.wait):
            # The client gave up while the answer was being "generated": record what it experienced.
            call.duration_ms = (time.perf_counter() - started) * 1000
            call.data["timing"] = f"the client left after {call.duration_ms:.0f} ms of the {reply.wait:.3f} s wait"
            call.invalidate()
            self.journal.append(call)
            return
        service.finish(reply)

        call.duration_ms = (time.perf_counter() - started) * 1000
        if reply.stream is None:
            conn = transport.get_transport(scope) if cut_after is not None else None
            if conn is not None:
                await self._cut_body(call, reply, conn, receive, send)
            else:
                if break_after is not None:
                    reply.body = _broken(reply.body)
                    _note(call, "answered a truncated body")
                call.response = ResponseRecord(reply.status, _response_headers(reply.headers), reply.body)
                await self._record(call)
                await _send_reply(send, reply)
        else:
            await self._stream(call, reply, cut_after, break_after, scope, receive, send)
        if reply.after is not None:
            self.spawn(reply.after())

    async def _stream(
        self,
        call: Call,
        reply: Reply,
        cut_after: int | None,
        break_after: int | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Send a streamed answer chunk by chunk; the call is recorded first and its body completed after.

        `cut_after` chunks: stop and close the connection. `break_after` chunks: send the next chunk
        broken (its JSON cut in half), then end the answer cleanly, so the client fails parsing it.
        """
        assert reply.stream is not None
        call.response = ResponseRecord(reply.status, _response_headers(reply.headers), b"")
        await self._record(call)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers],
            }
        )
        sent: list[bytes] = []
        cut = False
        try:
            async for chunk in reply.stream:
                if cut_after is not None and len(sent) >= cut_after:
                    cut = True
                    break
                if break_after is not None and len(sent) >= break_after:
                    chunk = _broken(chunk)
                    sent.append(chunk)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    _note(call, f"chunk {len(sent)} sent broken")
                    break
                sent.append(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError:
            cut = True  # the client went away mid-stream
        finally:
            old = call.size
            call.response.body = b"".join(sent)
            call.invalidate()
            if self.store is None:
                self.journal.resized(call, old)
            else:
                try:
                    await self.store.resized(call, old)
                except StoreUnavailable as exc:  # the answer is already on its way: say so, carry on
                    log.warning("the finished stream of %s was not stored: %s", call.id, exc)
        if cut:
            if call.fault is not None:
                call.fault["reason"] = f"stream cut after {len(sent)} chunks"
            conn = transport.get_transport(scope)
            if conn is not None:
                await transport.close_after(conn, receive)
                return
        elif cut_after is not None and call.fault is not None:
            call.fault["reason"] = f"stream ended after {len(sent)} chunks, before after_chunks={cut_after}"
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _cut_body(self, call: Call, reply: Reply, conn: asyncio.Transport, receive: Receive, send: Send) -> None:
        """`cut_stream` on an answer that is not streamed: announce the whole body, send half, close."""
        sent = reply.body[: len(reply.body) // 2]
        assert call.fault is not None
        call.fault["reason"] = f"body cut after {len(sent)} of {len(reply.body)} bytes"
        call.response = ResponseRecord(reply.status, _response_headers(reply.headers), sent)
        await self._record(call)
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        # At least one byte announced, so that even an empty answer is visibly incomplete.
        headers.append((b"content-length", str(max(len(reply.body), 1)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if sent:
            await send({"type": "http.response.body", "body": sent, "more_body": True})
        await transport.close_after(conn, receive)

    async def _transport_fault(
        self, rule: FaultRule, call: Call, scope: Scope, started: float, receive: Receive, send: Send
    ) -> None:
        """Record the call with no response, then break the connection the way the rule says."""
        action = rule.spec.action
        assert call.fault is not None
        conn = transport.get_transport(scope)
        if conn is None:  # not served by MockhubProtocol (another ASGI server): say so rather than pretend
            reply = Reply(502, b"mockhub: transport faults need mockhub's own server (MockhubProtocol)")
            call.fault["reason"] = "transport fault impossible: the ASGI server does not expose the transport"
            call.response = ResponseRecord(reply.status, _response_headers(reply.headers), reply.body)
            await self._record(call)
            await _send_reply(send, reply)
            return
        if action == "timeout":
            await self._timeout(rule, call, scope, started, conn, receive)
            return
        call.fault["reason"] = {
            "reset": "connection reset",
            "empty": "connection closed with no answer",
            "malformed": "answered bytes that are not HTTP",
        }[action]
        call.duration_ms = (time.perf_counter() - started) * 1000
        await self._record(call)
        if action == "reset":
            await transport.reset(conn, receive)
        elif action == "empty":
            await transport.close_after(conn, receive)
        else:
            await transport.malformed(conn, receive)

    async def _timeout(
        self, rule: FaultRule, call: Call, scope: Scope, started: float, conn: asyncio.Transport, receive: Receive
    ) -> None:
        """Hold the request unanswered, then close; recorded at once so a test sees it while the client waits."""
        assert call.fault is not None
        seconds = _hold_seconds(rule, self._random, 60_000)
        call.fault["reason"] = f"held without an answer (for up to {seconds * 1000:.0f} ms)"
        call.duration_ms = (time.perf_counter() - started) * 1000
        await self._record(call)
        gone = await transport.hold(scope, receive, seconds)
        # The record is updated in memory once the hold ends (a JSONL sink keeps the first version).
        call.duration_ms = (time.perf_counter() - started) * 1000
        if gone:
            call.fault["reason"] = (
                f"held without an answer; the connection was closed after {call.duration_ms:.0f} ms, "
                "before the hold ended"
            )
            return
        call.fault["reason"] = f"held {call.duration_ms:.0f} ms without an answer, then closed"
        await transport.close_after(conn, receive)


def _broken(chunk: bytes) -> bytes:
    """`chunk` with its (last) JSON payload cut in half: an SSE frame keeps its `event:` line and framing."""
    start = chunk.rfind(b"data:")
    if start < 0:
        return chunk[: len(chunk) // 2]
    payload = chunk[start:].rstrip()
    return chunk[: start + max(7, len(payload) // 2)] + b"\n\n"


def _note(call: Call, reason: str) -> None:
    if call.fault is not None:
        call.fault["reason"] = reason


async def _send_reply(send: Send, reply: Reply) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})
