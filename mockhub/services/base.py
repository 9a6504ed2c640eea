"""What a fake provides, and the small request/reply types the fakes are written against.

A fake is a `Service` subclass in its own module: a journal `name`, its `routes()`, how it answers
errors in its provider's shape (`error`, `preset`), and optionally `start`/`stop` hooks for a
listener of its own (SMTP). The HTTP pipeline (`mockhub.pipeline`) runs every HTTP call through
the same steps: parse, rules, answer, record.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import orjson

from mockhub.journal import Call, Journal
from mockhub.rules import Preset, RuleBook, StubHit

if TYPE_CHECKING:
    from fastapi import APIRouter

    from mockhub.settings import Settings

__all__ = ["BadRequest", "Reply", "Request", "Route", "Service", "ServiceContext", "json_reply", "text_reply"]


class BadRequest(Exception):
    """Raised by a route's parser for input the real service would reject; `reply` is its answer."""

    def __init__(self, reply: Reply, data: dict[str, Any] | None = None) -> None:
        super().__init__(reply.status)
        self.reply = reply
        self.data = data or {}


@dataclass(slots=True)
class Request:
    """One HTTP call to a fake, as its handler sees it."""

    method: str
    path: str
    path_params: dict[str, str]
    query_string: bytes
    headers: dict[str, str]
    body: bytes
    namespace: str
    base_url: str
    call: Call
    data: dict[str, Any] = field(default_factory=dict)
    stub: StubHit | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return orjson.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """An `application/x-www-form-urlencoded` body, every key with all of its values."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string.decode("latin-1"), keep_blank_values=True)


@dataclass(slots=True)
class Reply:
    """What a fake answers. `stream` (an async iterator of chunks) replaces `body` for SSE answers."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    # Work to do after the answer is sent (Twilio status callbacks), run as a task.
    after: Callable[[], Coroutine[Any, Any, None]] | None = None


def json_reply(obj: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, orjson.dumps(obj), [("content-type", "application/json"), *(headers or [])])


def text_reply(text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode(), [("content-type", content_type)])


Handler = Callable[[Request], Awaitable[Reply]]
Parser = Callable[[Request], dict[str, Any]]

_PARAM = re.compile(r"\{(\w+)(:path)?\}")


@dataclass(slots=True)
class Route:
    """A path a fake answers. `{name}` matches one segment, `{name:path}` the rest of the path.

    `parse` runs first and returns the call's `data` (the fields rules and tests match on); it may
    raise `BadRequest`. `handle` then answers, unless a fault or a raw stub answered instead.
    `reply_stubs=False` marks a route that renders no `reply` stubs (an LLM fake's embeddings or model
    list), so such stubs neither answer its calls nor spend their `times` or `sequence` on them.
    """

    methods: frozenset[str] | None
    pattern: str
    handle: Handler
    parse: Parser | None = None
    reply_stubs: bool = True
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        out, pos = ["^"], 0
        for m in _PARAM.finditer(self.pattern):
            out.append(re.escape(self.pattern[pos : m.start()]))
            out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
            pos = m.end()
        out.append(re.escape(self.pattern[pos:]) + "$")
        self.regex = re.compile("".join(out))

    @property
    def first_segment(self) -> str | None:
        """The literal first path segment, used to dispatch without trying every route."""
        head = self.pattern[1:].split("/", 1)[0]
        return None if "{" in head else head


def route(
    methods: str | None, pattern: str, handle: Handler, parse: Parser | None = None, reply_stubs: bool = True
) -> Route:
    """Shorthand: `route("POST", "/v1/x", self.create)`; methods are space-separated, None = any."""
    return Route(frozenset(methods.split()) if methods else None, pattern, handle, parse, reply_stubs)


@dataclass(slots=True)
class ServiceContext:
    """What a fake may use: settings, the journal (to record outbound calls), the rule book."""

    settings: Settings
    journal: Journal
    rules: RuleBook
    spawn: Callable[[Coroutine[Any, Any, None]], None]
    # MOCKHUB_CREDENTIALS parsed once: the credentials the fakes accept, or None for "any non-empty one".
    pinned: frozenset[str] | None = field(init=False)

    def __post_init__(self) -> None:
        entries = {c.strip() for c in (self.settings.credentials or "").split(",") if c.strip()}
        self.pinned = frozenset(entries) if entries else None

    def outbound_allowed(self, url: str) -> bool:
        """Whether a fake may call `url` (a status callback): its host must match MOCKHUB_CALLBACK_ALLOW."""
        allow = self.settings.callback_allow
        if not allow:
            return True
        host = (urlsplit(url).hostname or "").lower()
        return any(
            fnmatch.fnmatchcase(host, pattern.strip().lower()) for pattern in allow.split(",") if pattern.strip()
        )


class Service:
    """Base class of every fake. Subclasses set `name` and override what they need."""

    name: ClassVar[str]

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[Route]:
        """The HTTP routes of this fake (none for a fake with its own listener)."""
        return []

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        """An error in this provider's shape (bad JSON, body too large, ...). Override per provider."""
        return json_reply({"error": {"code": code or "error", "message": message}}, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        """The provider's own answer for a fault preset. Override per provider; this is the plain form."""
        status, message = _PLAIN_PRESETS[name]
        headers = [("retry-after", "1")] if name == "rate_limited" else []
        reply = self.error(status, message, code=name)
        reply.headers.extend(headers)
        return reply

    def reset(self, namespace: str | None) -> None:
        """Forget state of the fake's own (Twilio's stored messages) on `POST /reset`; all when None."""

    async def start(self) -> None:
        """Start listeners of the fake's own (SMTP). Runs in the server's event loop at startup."""

    async def stop(self) -> None:
        """Stop what `start` started."""

    def listeners(self) -> dict[str, int]:
        """Ports of the fake's own listeners, reported by `/health` (e.g. {"smtp_port": 1025})."""
        return {}

    def api_router(self) -> APIRouter | None:
        """Inspection routes of this fake's own (an email's attachments), added to the inspection API."""
        return None


_PLAIN_PRESETS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate limited"),
    "server_error": (500, "internal server error"),
    "unavailable": (503, "service unavailable"),
    "overloaded": (529, "overloaded"),
    "unauthorized": (401, "unauthorized"),
}
