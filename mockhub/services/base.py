"""What a fake provides, and the small request/reply types the fakes are written against.

A fake is a `Service` subclass in its own module, and it owns its facts: a journal `name`, its
`routes()`, the real host names it answers for, the URLs and environment variables an application
is pointed at, which headers and path parts are secrets, which `data` fields the common filters
read, a one-line summary of a call, its stub reply fields, how it answers errors in its provider's
shape (`error`, `preset`), and optionally `start`/`stop` hooks for a listener of its own.
`GET /services` serves these facts (`Service.info`); core modules and the UI read them there and
never name a fake. The HTTP pipeline (`mockhub.pipeline`) runs every HTTP call through the same
steps: parse, rules, answer, record.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mockhub.faults import TRANSPORTS
from mockhub.filters import FIELDS, MESSAGES, DataFields
from mockhub.journal import SUMMARIES, Call, Journal, ResponseRecord, default_summary
from mockhub.rules import PRESETS, Preset, RuleBook, StubHit
from mockhub.services.forms import FormPart, parse_multipart
from mockhub.store import StateChannel, Store, StoreUnavailable
from mockhub.tls import Authority
from mockhub.usage import Billed, ModelPrice

if TYPE_CHECKING:
    from fastapi import APIRouter

    from mockhub.settings import Settings

__all__ = [
    "AppUrl",
    "Attachment",
    "BadRequest",
    "EnvVar",
    "Reply",
    "Request",
    "Route",
    "Service",
    "ServiceContext",
    "ServiceInfo",
    "Simulated",
    "Simulation",
    "SimulationBody",
    "SimulationContext",
    "email_summary",
    "json_reply",
    "route",
    "scope_header",
    "text_reply",
]


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
    # Seconds to hold a plain answer before it is recorded and sent (an LLM's generation time).
    wait: float = 0.0


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
    `accepts`, given the request's ASGI scope (headers, query string), lets two fakes share a path:
    a route whose `accepts` says no is skipped, and the router tries routes with an `accepts`
    before those without (SES and SNS both answer `POST /`, told apart by the SigV4 scope).
    """

    methods: frozenset[str] | None
    pattern: str
    handle: Handler
    parse: Parser | None = None
    reply_stubs: bool = True
    accepts: Callable[[Mapping[str, Any]], bool] | None = None
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
    methods: str | None,
    pattern: str,
    handle: Handler,
    parse: Parser | None = None,
    reply_stubs: bool = True,
    accepts: Callable[[Mapping[str, Any]], bool] | None = None,
) -> Route:
    """Shorthand: `route("POST", "/v1/x", self.create)`; methods are space-separated, None = any."""
    return Route(frozenset(methods.split()) if methods else None, pattern, handle, parse, reply_stubs, accepts)


def scope_header(scope: Mapping[str, Any], name: bytes) -> str | None:
    """The first value of header `name` (lower-case bytes) in an ASGI scope, for a route's `accepts`."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a recorded call carried (an email attachment, an upload), as `/calls/{id}/attachments/{n}` serves it."""

    content: bytes
    content_type: str
    filename: str | None = None


@dataclass(slots=True)
class ServiceContext:
    """What a fake may use: settings, the journal (to record outbound calls), the rule book."""

    settings: Settings
    journal: Journal
    rules: RuleBook
    spawn: Callable[[Coroutine[Any, Any, None]], None]
    # mockhub's CA (`GET /tls/ca.pem`): a fake with a TLS listener of its own has it sign its certificate.
    authority: Authority = field(default_factory=Authority)
    # Set by the server: whether a URL reaches one of mockhub's own listeners other than through a
    # fake's route (the inspection API: `POST /reset` would wipe everything). Returns why, or None.
    own_target: Callable[[str], Awaitable[str | None]] | None = None
    # MOCKHUB_CREDENTIALS parsed once: the credentials the fakes accept, or None for "any non-empty one".
    pinned: frozenset[str] | None = field(init=False)
    # Where calls are recorded and rules counted when processes share them (None / memory: the journal).
    store: Store | None = None

    def __post_init__(self) -> None:
        entries = {c.strip() for c in (self.settings.credentials or "").split(",") if c.strip()}
        self.pinned = frozenset(entries) if entries else None

    async def record(self, call: Call) -> None:
        """Record a call a fake makes itself (a status callback), in the shared store when there is one."""
        if self.store is None or not self.store.shared:
            self.journal.append(call)
            return
        try:
            await self.store.append(call)
        except StoreUnavailable as exc:  # background work: nobody to answer, so say it in the log
            logging.getLogger("mockhub").warning("a %s call was not recorded: %s", call.service, exc)

    def channel(self, owner: str, apply: Callable[[dict[str, Any]], None]) -> StateChannel:
        """How a fake changes state of its own so every process sharing a store holds it (`StateChannel`)."""
        return self.store.channel(owner, apply) if self.store is not None else StateChannel(apply)

    async def outbound_refusal(self, url: str) -> str | None:
        """Why a fake must not call `url` (a status callback), or None when it may.

        Refused: a host MOCKHUB_CALLBACK_ALLOW does not list, and any of mockhub's own listeners
        except a fake's route (a callback may reach the webhook fake, never the inspection API).
        """
        if not self.outbound_allowed(url):
            return "callback host not allowed by MOCKHUB_CALLBACK_ALLOW"
        if self.own_target is not None:
            return await self.own_target(url)
        return None

    def outbound_allowed(self, url: str) -> bool:
        """Whether a fake may call `url` (a status callback): its host must match MOCKHUB_CALLBACK_ALLOW."""
        allow = self.settings.callback_allow
        if not allow:
            return True
        host = (urlsplit(url).hostname or "").lower()
        return any(
            fnmatch.fnmatchcase(host, pattern.strip().lower()) for pattern in allow.split(",") if pattern.strip()
        )


# -- inbound simulation: what a provider sends to an application (`POST /simulate/{service}/{event}`) ----


class SimulationBody(BaseModel):
    """The fields every simulated event takes; each event's model adds its own (the provider's parameters)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="the application's URL the event is delivered to (http or https)")
    timeout: float = Field(10.0, gt=0, le=120, description="seconds the whole delivery may take")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:  # an event whose fake knows the target (Telegram's setWebhook) may leave it out
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        # The URL as the request goes out (an empty path is `/`): signatures cover the URL the app sees.
        return value if parts.path else urlunsplit(parts._replace(path="/"))


@dataclass(slots=True)
class SimulationContext:
    """Where a simulated event happens: its namespace and mockhub's root for it (a `response_url` back)."""

    namespace: str
    base_url: str


@dataclass(slots=True)
class Simulated:
    """The HTTP request a simulated event sends: headers and body as the provider sends them, `data` to record."""

    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]
    method: str = "POST"
    # The target, when the fake chose it (the webhook a bot set); else the body's `url`.
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Simulation:
    """One inbound event a fake delivers: its body model, how the request is built, what the answer causes.

    `build` turns the validated body into the signed request. `answered` (optional) reads the
    application's answer (status, headers, body) and returns calls it caused, recorded after the
    delivery (Twilio: each TwiML `<Message>` becomes an outbound SMS).
    """

    description: str
    body: type[SimulationBody]
    build: Callable[[Any, SimulationContext], Simulated]
    # May be a coroutine function: Twilio stores the messages it sends through its state channel.
    answered: Callable[[Any, SimulationContext, Call, ResponseRecord], list[Call] | Awaitable[list[Call]]] | None = None
    # Other names the event answers to (`inbound` for an email fake's one inbound event).
    aliases: tuple[str, ...] = ()


class AppUrl(BaseModel):
    """A URL an application is pointed at: `path` below the namespace root (`{base}`)."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="below the server or namespace root, e.g. /services/T000/B000/XXXX")
    description: str = ""


class EnvVar(BaseModel):
    """An environment variable `mockhub env` / `MockHub.env()` sets for an application under test.

    `value` is a `str.format` template over `base` (the namespace root), `server`, `host` (the
    server's host name), `namespace`, `urls` (the fakes' URLs by name: `{urls.slack_api}`) and the
    listeners' ports (`{smtp_port}`). A variable whose template names something unknown (no
    namespace, a listener that is off) is left out.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    value: str
    description: str = ""
    requires: list[str] = Field(default_factory=list, description="set only when these are known (e.g. namespace)")


class ServiceInfo(BaseModel):
    """One fake's facts, as `GET /services` serves them."""

    name: str = Field(description="the journal name: `service` in calls, filters, faults and stubs")
    label: str = Field(description="the provider's name, for people")
    description: str
    transport: str = Field(description="http, or the protocol of a listener of the fake's own (smtp)")
    view: str = Field(description="how the UI shows a call: http or email")
    color: str = Field(description="the UI's badge colour (CSS)")
    hosts: list[str] = Field(description="the real host names this fake answers for (globs)")
    routes: list[str] = Field(description="METHODS /path patterns; {name} is one segment, {name:path} the rest")
    urls: dict[str, AppUrl]
    env: list[EnvVar]
    secret_headers: list[str] = Field(description="request headers whose values are credentials (masked in the UI)")
    secret_paths: list[str] = Field(
        description="regular expressions over the path: group 1 is shown, group 2 is a credential and masked"
    )
    secret_params: list[str] = Field(
        default_factory=list,
        description="query, form and JSON field names whose values are credentials (masked in the UI)",
    )
    fields: dict[str, list[str]] = Field(
        description="the `data` keys the `to`, `text`/`contains` and `subject` filters read"
    )
    message: bool = Field(
        False, description="whether its calls are messages: those with text get `data.links` and `data.codes`"
    )
    rich: list[str] = Field(
        default_factory=list,
        description="`data` keys of structured content (Slack blocks, Discord embeds) read for links and codes too",
    )
    files: list[str] = Field(
        default_factory=lambda: ["attachments"],
        description="`data` keys holding the files a call carried: what `has=attachment` looks for",
    )
    presets: list[str] = Field(description="the fault presets this fake answers in its provider's shape")
    stub_reply: dict[str, Any] | None = Field(description="JSON schema of this fake's fields of a stub's `reply`")
    raw_content_type: str | None = Field(description="content type of `GET /calls/{id}/raw` (else the request's)")
    simulations: list[str] = Field(
        default_factory=list, description="inbound events `POST /simulate/{service}/{event}` delivers to an application"
    )


def email_summary(call: Call) -> str:
    """`Subject → a@example.com, b@example.com` for a fake that sends email."""
    data = call.data
    recipients = [r for key in ("to", "cc", "rcpt_to") for r in _as_list(data.get(key))]
    seen = list(dict.fromkeys(recipients))
    # The subjects the `subject` filter reads (the fake's own `fields.subject`), the first one shown.
    subjects = call.subjects()
    subject = subjects[0] if subjects else None
    return f"{subject or '(no subject)'} → {', '.join(seen) or '?'}"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v if isinstance(v, str) else str(v.get("email", v)) if isinstance(v, dict) else str(v) for v in value]
    return []


class Service:
    """Base class of every fake. Subclasses set `name` and the facts below, and override what they need."""

    name: ClassVar[str]
    label: ClassVar[str] = ""
    transport: ClassVar[str] = "http"
    view: ClassVar[str] = "http"
    color: ClassVar[str] = "#868e96"
    hosts: ClassVar[tuple[str, ...]] = ()
    # False: reached only through `hosts` (by the host of an intercepted request), never by path alone.
    by_path: ClassVar[bool] = True
    urls: ClassVar[dict[str, AppUrl]] = {}
    env: ClassVar[tuple[EnvVar, ...]] = ()
    secret_headers: ClassVar[tuple[str, ...]] = ()
    secret_paths: ClassVar[tuple[str, ...]] = ()
    # Query, form and JSON field names whose values are credentials (Slack's `token=`), masked in the UI.
    secret_params: ClassVar[tuple[str, ...]] = ()
    fields: ClassVar[DataFields] = DataFields()
    # True: the fake's calls are messages (an email, an SMS, a chat post); each one that carries text
    # gets `data.links` and `data.codes` when it is recorded, for `has=` and `wait_for_code`.
    message: ClassVar[bool] = False
    presets: ClassVar[tuple[Preset, ...]] = PRESETS
    # This fake's own fields of a stub's `reply` (beside the common ones of `StubReply`), if any.
    stub_reply: ClassVar[type[BaseModel] | None] = None
    raw_content_type: ClassVar[str | None] = None
    # What its models cost (USD per million tokens), by model or start of model names: `GET /usage`'s estimate.
    prices: ClassVar[Mapping[str, ModelPrice]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            # What the journal and the filters need of a fake, without importing it.
            FIELDS[name] = cls.fields
            SUMMARIES[name] = cls.summarize
            TRANSPORTS[name] = cls.transport
            if cls.message:
                MESSAGES.add(name)
            else:
                MESSAGES.discard(name)

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @classmethod
    def summarize(cls, call: Call) -> str:
        """One line telling what `call` was (the UI's list, the CLI's table, failure messages)."""
        return default_summary(call)

    @classmethod
    def usage(cls, call: Call) -> Billed | None:
        """What `call` was billed for (model, tokens), for `GET /usage`; None: nothing (the default)."""
        return None

    def info(self) -> ServiceInfo:
        """This fake's facts, for `GET /services`."""
        doc = (type(self).__doc__ or "").strip().splitlines()
        stub_schema = self.stub_reply.model_json_schema() if self.stub_reply is not None else None
        return ServiceInfo(
            name=self.name,
            label=self.label or self.name,
            description=doc[0] if doc else "",
            transport=self.transport,
            view=self.view,
            color=self.color,
            hosts=list(self.hosts),
            routes=[f"{' '.join(sorted(r.methods)) if r.methods else '*'} {r.pattern}" for r in self.routes()],
            urls=dict(self.urls),
            env=list(self.env),
            secret_headers=list(self.secret_headers),
            secret_paths=list(self.secret_paths),
            secret_params=list(self.secret_params),
            fields={"to": list(self.fields.to), "text": list(self.fields.text), "subject": list(self.fields.subject)},
            message=self.message,
            rich=list(self.fields.rich),
            files=list(self.fields.files),
            presets=list(self.presets),
            stub_reply=stub_schema,
            raw_content_type=self.raw_content_type,
            simulations=list(self.simulations()),
        )

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

    def attachment(self, call: Call, index: int) -> Attachment | None:
        """The `index`-th file of a recorded call, in the order of its `data.attachments`, or None.

        The default reads the file parts of a `multipart/form-data` body (every upload a fake keeps);
        a fake whose forms carry other files (Mailgun's `inline`) or whose files live elsewhere (an
        email's MIME parts) overrides it. Raises ValueError for a body it cannot take apart.
        """
        content_type = call.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            return None
        files = [p for p in parse_multipart(content_type, call.body) if p.filename is not None and self.is_file(p)]
        if not 0 <= index < len(files):
            return None
        part = files[index]
        return Attachment(part.value, part.content_type, part.filename)

    def is_file(self, part: FormPart) -> bool:
        """Whether a multipart part with a filename counts as one of `data.attachments` (all, by default)."""
        return True

    def finish(self, reply: Reply) -> None:
        """Add what every answer of this provider carries (Discord's `Via` and rate headers), faults included.

        Runs for every HTTP answer of the fake, just before it is recorded and sent; the default does nothing.
        """

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

    def simulations(self) -> dict[str, Simulation]:
        """The inbound events this fake can deliver to an application (`POST /simulate/{name}/{event}`)."""
        return {}


_PLAIN_PRESETS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate limited"),
    "server_error": (500, "internal server error"),
    "unavailable": (503, "service unavailable"),
    "overloaded": (529, "overloaded"),
    "unauthorized": (401, "unauthorized"),
}
