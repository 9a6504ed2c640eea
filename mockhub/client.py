"""The Python client of the inspection API: `MockHub` (sync) and `AsyncMockHub` (async), both on httpx.

It talks HTTP only (no server imports), so it works the same against a sidecar container and against
the in-process server of the pytest plugin. A client may be bound to a namespace: then every query,
wait and reset is scoped to it, rules it creates match only it, and `urls` / `env()` point an
application at that namespace's fakes.
"""

from __future__ import annotations

import base64
import difflib
import fnmatch
import json as jsonlib
import os
import re
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from mockhub.faults import Stage as SmtpStage
from mockhub.rules import (
    Fault,
    FaultAction,
    FaultSpec,
    Match,
    Preset,
    Stub,
    StubReply,
    StubResponse,
    StubSpec,
)

__all__ = [
    "AsyncMockHub",
    "Call",
    "CallFilters",
    "CallResponse",
    "FaultHit",
    "Health",
    "MockHub",
    "MockHubError",
    "ResetResult",
    "StubHit",
    "Urls",
    "app_env",
    "default_url",
]

DEFAULT_URL = "http://127.0.0.1:8080"
# The long poll's server-side bound (GET /calls?wait= is at most 300 s).
_MAX_WAIT = 300.0
_SHOWN_ON_FAILURE = 10


def default_url() -> str:
    """`MOCKHUB_URL` when set, else the default local server (127.0.0.1, not localhost: no IPv6 surprise)."""
    return (os.environ.get("MOCKHUB_URL") or DEFAULT_URL).rstrip("/")


class MockHubError(Exception):
    """The inspection API answered with an error (`{"error": {"code", "message"}}`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


# -- models ------------------------------------------------------------------------------------------


class CallResponse(BaseModel):
    """What mockhub answered to a call."""

    model_config = ConfigDict(frozen=True)

    status: int
    headers: dict[str, str] = {}
    body: str = ""
    body_encoding: Literal["utf-8", "base64"] = "utf-8"

    @property
    def content(self) -> bytes:
        return _decode(self.body, self.body_encoding)


class FaultHit(BaseModel):
    """The fault rule that hit a call."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    action: str
    preset: str | None = None


class StubHit(BaseModel):
    """The stub that answered a call (`index`: which of its answers, for a `sequence`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str
    index: int = 0


class Call(BaseModel):
    """One recorded call (SPEC section 3). `data` holds the service's parsed fields."""

    model_config = ConfigDict(frozen=True)

    id: str
    seq: int
    time: datetime
    service: str
    namespace: str = "default"
    direction: Literal["inbound", "outbound"] = "inbound"
    method: str
    path: str
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    body: str = ""
    body_encoding: Literal["utf-8", "base64"] = "utf-8"
    data: dict[str, Any] = {}
    response: CallResponse | None = None
    fault: FaultHit | None = None
    stub: StubHit | None = None
    duration_ms: float = 0.0

    @property
    def content(self) -> bytes:
        """The request body byte-exact (an email's message source)."""
        return _decode(self.body, self.body_encoding)

    @property
    def status(self) -> int | None:
        """The HTTP status mockhub answered (None when it never answered: a reset, a timeout)."""
        return None if self.response is None else self.response.status

    def body_json(self) -> Any:
        """The request body parsed as JSON."""
        return jsonlib.loads(self.content)

    def summary(self, width: int = 80) -> str:
        """A one-line human description: what a test author wants to see in a failure message."""
        return describe(self, width)


class Health(BaseModel):
    """`GET /health`."""

    status: Literal["ok", "starting"]
    version: str
    http_port: int
    smtp_port: int | None = None
    smtps_port: int | None = None
    calls: int = 0
    evicted: int = 0
    last_seq: int = 0
    body_bytes: int = 0


class ResetResult(BaseModel):
    """How many calls, faults and stubs a reset forgot."""

    calls: int
    faults: int
    stubs: int


class CallFilters(TypedDict, total=False):
    """The `/calls` filters besides `service` (all combined with AND)."""

    namespace: str
    method: str
    path: str
    direction: Literal["inbound", "outbound"]
    contains: str
    to: str
    subject: str
    after: int


# -- rules with a handle back to their client ----------------------------------------------------------


class ActiveFault(Fault):
    """A fault rule as created by `MockHub.fault`: also a context manager that deletes it on exit."""

    model_config = ConfigDict(extra="ignore")
    _hub: MockHub | None = PrivateAttr(None)

    def delete(self) -> None:
        if self._hub is not None:
            self._hub.delete_fault(self.id, missing_ok=True)

    def refresh(self) -> Fault:
        """The rule as the server sees it now (its counters: `seen`, `fired`, `remaining`)."""
        if self._hub is None:
            raise RuntimeError("this fault is not bound to a client")
        return self._hub.get_fault(self.id)

    def __enter__(self) -> ActiveFault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


class ActiveStub(Stub):
    """A stub as created by `MockHub.stub`: also a context manager that deletes it on exit."""

    model_config = ConfigDict(extra="ignore")
    _hub: MockHub | None = PrivateAttr(None)

    def delete(self) -> None:
        if self._hub is not None:
            self._hub.delete_stub(self.id, missing_ok=True)

    def __enter__(self) -> ActiveStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


R = TypeVar("R", Fault, Stub)


class AsyncRule(Generic[R]):
    """What `AsyncMockHub.fault/stub` return: `await` it for the rule, or `async with` it to delete on exit."""

    def __init__(self, hub: AsyncMockHub, kind: Literal["faults", "stubs"], spec: FaultSpec | StubSpec) -> None:
        self._hub = hub
        self._kind = kind
        self._spec = spec
        self._rule: R | None = None

    async def _create(self) -> R:
        if self._rule is None:
            body = await self._hub._request("POST", f"/{self._kind}", json=_spec_json(self._spec))
            model: type[Any] = Fault if self._kind == "faults" else Stub
            self._rule = _lenient(model, body)
        return self._rule

    def __await__(self) -> Generator[Any, None, R]:
        return self._create().__await__()

    async def __aenter__(self) -> R:
        return await self._create()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rule is not None:
            await self._hub._delete_rule(self._kind, self._rule.id, missing_ok=True)


# -- URLs and settings for an application under test -----------------------------------------------------


@dataclass(frozen=True)
class Urls:
    """Where each fake lives, for one namespace: the base URLs an application's SDKs are pointed at."""

    base: str
    """The namespace's root: `{server}/ns/{namespace}` (or the server itself when unscoped)."""

    @property
    def slack_webhook(self) -> str:
        """A Slack incoming-webhook URL (`slack_sdk.webhook.WebhookClient(url)`)."""
        return f"{self.base}/services/T000/B000/XXXX"

    @property
    def slack_api(self) -> str:
        """`slack_sdk.WebClient(base_url=...)`."""
        return f"{self.base}/api/"

    @property
    def twilio_base(self) -> str:
        """Twilio's REST root: messages go to `{twilio_base}/2010-04-01/Accounts/{sid}/Messages.json`."""
        return self.base

    @property
    def openai_base(self) -> str:
        """`OpenAI(base_url=...)` (includes `/v1`, as the SDK expects)."""
        return f"{self.base}/v1"

    @property
    def anthropic_base(self) -> str:
        """`Anthropic(base_url=...)` (without `/v1`: the SDK adds it)."""
        return self.base

    @property
    def pagerduty_events(self) -> str:
        """PagerDuty Events v2 enqueue URL."""
        return f"{self.base}/v2/enqueue"

    @property
    def sendgrid_base(self) -> str:
        """SendGrid's API host (`SendGridAPIClient(host=...)`); mail goes to `/v3/mail/send`."""
        return self.base

    @property
    def teams_webhook(self) -> str:
        return f"{self.base}/teams/webhook"

    @property
    def discord_webhook(self) -> str:
        return f"{self.base}/api/webhooks/000/mockhub"

    def webhook(self, name: str = "hook") -> str:
        """A generic webhook URL: any method on `/webhooks/{name...}` is recorded as service `webhook`."""
        return f"{self.base}/webhooks/{name.lstrip('/')}"


def app_env(urls: Urls, smtp_host: str, smtp_port: int | None, namespace: str | None, server: str) -> dict[str, str]:
    """The environment that points a SentinelOps-style alerting application at mockhub."""
    env = {
        "MOCKHUB_URL": server,
        "ALERT_EMAIL_SMTP_SERVER": smtp_host,
        "ALERT_SLACK_WEBHOOK_URL": urls.slack_webhook,
        "ALERT_WEBHOOK_URL": urls.webhook("alerts"),
        "SLACK_API_URL": urls.slack_api,
        "TWILIO_BASE_URL": urls.twilio_base,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "mockhub-auth-token",
        "OPENAI_BASE_URL": urls.openai_base,
        "OPENAI_API_KEY": "sk-mockhub",
        "ANTHROPIC_BASE_URL": urls.anthropic_base,
        "ANTHROPIC_API_KEY": "sk-ant-mockhub",
        "PAGERDUTY_EVENTS_URL": urls.pagerduty_events,
    }
    if smtp_port is not None:
        env["ALERT_EMAIL_SMTP_PORT"] = str(smtp_port)
    if namespace is not None:
        # SMTP carries the namespace as the AUTH user name (SPEC section 6).
        env["ALERT_EMAIL_SMTP_USER"] = namespace
        env["ALERT_EMAIL_SMTP_PASSWORD"] = "mockhub"
        env["MOCKHUB_NAMESPACE"] = namespace
    return dict(sorted(env.items()))


# -- shared request building and parsing -------------------------------------------------------------------


def _decode(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


def _lenient(model: type[Any], body: Any) -> Any:
    """Validate `body`, ignoring fields this client does not know (a newer server): drop them and retry."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        extra = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
        if not extra or not isinstance(body, dict):
            raise
        pruned = jsonlib.loads(jsonlib.dumps(body))
        for loc in extra:
            holder: Any = pruned
            for part in loc[:-1]:
                holder = holder[part]
            holder.pop(loc[-1], None)
        return model.model_validate(pruned)


def _spec_json(spec: FaultSpec | StubSpec) -> Any:
    # exclude_defaults keeps requests minimal (and readable by older servers); `times=None` is not a default.
    return spec.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _error(response: httpx.Response) -> MockHubError:
    code, message = "error", response.text[:500]
    try:
        detail = response.json()["error"]
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError):
        pass
    return MockHubError(response.status_code, code, message)


def _match(
    base: Match | None,
    namespace: str | None,
    method: str | None,
    path: str | None,
    contains: str | None,
    regex: str | None,
    to: str | None,
    subject: str | None,
    data: dict[str, Any] | None,
) -> Match:
    fields = base.model_dump(exclude_none=True) if base is not None else {}
    given = {"method": method, "path": path, "contains": contains, "regex": regex, "to": to, "subject": subject}
    fields.update({k: v for k, v in given.items() if v is not None})
    if data is not None:
        fields["data"] = data
    if namespace is not None:
        fields.setdefault("namespace", namespace)
    return Match(**fields)


def _fault_spec(
    service: str | None,
    namespace: str | None,
    *,
    match: Match | None,
    action: FaultAction,
    preset: Preset | None,
    status: int | None,
    body: str | dict[str, Any] | list[Any] | None,
    headers: dict[str, str] | None,
    delay_ms: int | None,
    jitter_ms: int,
    times: int | None,
    after: int,
    probability: float,
    after_chunks: int,
    stage: SmtpStage | None,
    code: int | None,
    message: str | None,
    method: str | None,
    path: str | None,
    contains: str | None,
    regex: str | None,
    to: str | None,
    subject: str | None,
    data: dict[str, Any] | None,
) -> FaultSpec:
    return FaultSpec(
        service=service,
        match=_match(match, namespace, method, path, contains, regex, to, subject, data),
        action=action,
        preset=preset,
        status=status,
        body=body,
        headers=headers or {},
        delay_ms=delay_ms,
        jitter_ms=jitter_ms,
        times=times,
        after=after,
        probability=probability,
        after_chunks=after_chunks,
        stage=stage,
        code=code,
        message=message,
    )


def _stub_spec(
    service: str | None,
    namespace: str | None,
    *,
    match: Match | None,
    content: str | None,
    tool_calls: list[dict[str, Any]] | None,
    reply: StubReply | dict[str, Any] | None,
    response: StubResponse | dict[str, Any] | None,
    sequence: list[StubReply | dict[str, Any]] | None,
    status: int | None,
    json: Any,
    body: str | None,
    headers: dict[str, str] | None,
    times: int | None,
    chunk_delay_ms: int,
    method: str | None,
    path: str | None,
    contains: str | None,
    regex: str | None,
    to: str | None,
    subject: str | None,
    data: dict[str, Any] | None,
) -> StubSpec:
    if content is not None or tool_calls is not None:
        if reply is not None:
            raise ValueError("give either `reply` or its shortcuts `content` / `tool_calls`, not both")
        reply = StubReply.model_validate({"content": content, "tool_calls": tool_calls or []})
    if status is not None or json is not None or body is not None or headers is not None:
        if response is not None:
            raise ValueError("give either `response` or its shortcuts `status` / `json` / `body` / `headers`")
        raw: dict[str, Any] = {"status": status or 200, "headers": headers or {}}
        if json is not None:
            raw["json"] = json
        if body is not None:
            raw["body"] = body
        response = StubResponse.model_validate(raw)
    return StubSpec.model_validate(
        {
            "service": service,
            "match": _match(match, namespace, method, path, contains, regex, to, subject, data),
            "reply": reply,
            "response": response,
            "sequence": sequence,
            "times": times,
            "chunk_delay_ms": chunk_delay_ms,
        }
    )


def _params(namespace: str | None, service: str | None, filters: CallFilters, **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"service": service}
    params.update(filters)
    if namespace is not None:
        params.setdefault("namespace", namespace)
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


class _Sse:
    """An incremental Server-Sent Events parser: feed it lines, get (event, data) when one completes."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []

    def feed(self, line: str) -> tuple[str, str] | None:
        if not line:
            done = (self.event, "\n".join(self.data)) if self.data else None
            self.event, self.data = "message", []
            return done
        if not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                self.event = value
            elif name == "data":
                self.data.append(value)
        return None


def _stream_item(event: str, data: str) -> Call | None:
    if event == "overflow":
        raise MockHubError(503, "overflow", "the call stream fell behind and was cut off by the server")
    return Call.model_validate_json(data) if event == "call" else None


# -- failure messages ---------------------------------------------------------------------------------------

_TEXT_KEYS = ("subject", "text", "body", "summary", "reply", "html")
_RECIPIENT_KEYS = ("to", "cc", "bcc", "rcpt_to", "channel", "recipients")


def _recipients(call: Call) -> set[str]:
    found: set[str] = set()
    for key in _RECIPIENT_KEYS:
        value = call.data.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.add(_norm_recipient(item))
    return found


def _norm_recipient(value: str) -> str:
    value = value.strip().lower()
    if value.endswith(">") and "<" in value:
        value = value[value.rindex("<") + 1 : -1]
    return value.lstrip("#")


def _search_text(call: Call) -> str:
    parts = [call.content.decode("utf-8", "replace")]
    parts.extend(v for k in _TEXT_KEYS if isinstance(v := call.data.get(k), str))
    return "\n".join(parts)


def _criterion(call: Call, name: str, wanted: Any) -> tuple[bool, float]:
    """Whether `call` meets one filter, and how close it comes (0..1) when it does not."""
    text = str(wanted)
    have: str
    if name == "service":
        have = call.service
        ok = have == text
    elif name == "method":
        have = call.method
        ok = have == text.upper()
    elif name == "direction":
        have = call.direction
        ok = have == text
    elif name == "path":
        have = call.path
        ok = fnmatch.fnmatchcase(have, text) if any(c in text for c in "*?[") else have == text
    elif name == "to":
        recipients = _recipients(call)
        ok = _norm_recipient(text) in recipients
        have = " ".join(sorted(recipients))
    elif name == "subject":
        have = str(call.data.get("subject") or "")
        ok = text.lower() in have.lower()
    elif name == "contains":
        have = _search_text(call)
        ok = text in have
        if not ok:
            # Closeness of the best same-length window: "disk ful" is near "disk full", "cpu" is not.
            best = difflib.SequenceMatcher(None, text.lower(), have.lower()).find_longest_match()
            return False, best.size / max(len(text), 1)
    else:
        return True, 1.0
    if ok:
        return True, 1.0
    return False, difflib.SequenceMatcher(None, text.lower(), have.lower()).ratio()


def explain_miss(wanted: dict[str, Any], count: int, got: list[Call], others: list[Call], timeout: float) -> str:
    """The message of `wait_for`'s AssertionError: what was awaited, and what arrived, most similar first."""
    described = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if k != "namespace") or "any call"
    where = f" in namespace {wanted['namespace']!r}" if "namespace" in wanted else ""
    lines = [f"mockhub: expected {count} call(s) matching {described}{where} within {timeout:g}s; {len(got)} matched."]
    if got:
        lines.append("Matching calls:")
        lines.extend(f"  {describe(c, 110, show_namespace=not where)}" for c in got)
    criteria = {k: v for k, v in wanted.items() if k not in ("namespace", "after")}
    matched_ids = {c.id for c in got}
    rest = [c for c in others if c.id not in matched_ids]
    if not rest:
        lines.append(f"No other calls arrived{where}.")
        return "\n".join(lines)
    scored = []
    for call in rest:
        results = {name: _criterion(call, name, value) for name, value in criteria.items()}
        score = sum(1.0 if ok else closeness * 0.9 for ok, closeness in results.values())
        misses = [name for name, (ok, _) in results.items() if not ok]
        scored.append((score, call.seq, call, misses))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    lines.append(f"{len(rest)} other call(s) arrived{where}, most similar first:")
    for _, _, call, misses in scored[:_SHOWN_ON_FAILURE]:
        hint = f"  [differs in: {', '.join(misses)}]" if misses else ""
        lines.append(f"  {describe(call, 110, show_namespace=not where)}{hint}")
    if len(scored) > _SHOWN_ON_FAILURE:
        lines.append(f"  ... and {len(scored) - _SHOWN_ON_FAILURE} more")
    return "\n".join(lines)


def describe(call: Call, width: int = 80, *, show_namespace: bool = True) -> str:
    """`#12 slack POST /services/T/B/X -> 200  "disk full on db-1"`."""
    status = "--" if call.status is None else str(call.status)
    head = f"#{call.seq} {call.service} {call.method} {call.path} -> {status}"
    if show_namespace and call.namespace != "default":
        head += f" [ns {call.namespace}]"
    if call.fault is not None:
        head += f" (fault {call.fault.preset or call.fault.action})"
    what = call_text(call)
    if what:
        room = max(width - len(head) - 4, 20)
        if len(what) > room:
            what = what[: room - 1] + "…"
        head += f'  "{what}"'
    return head


def call_text(call: Call) -> str:
    """The most telling text of a call: an email's subject and recipients, a message's text, a body."""
    data = call.data
    if call.service == "smtp":
        to = ", ".join(sorted(_recipients(call)))
        return f"{data.get('subject') or '(no subject)'} -> {to}"
    for key in ("text", "body", "summary", "reply", "subject"):
        value = data.get(key)
        if isinstance(value, str) and value:
            recipient = data.get("to") or data.get("channel")
            return f"{recipient}: {value}" if isinstance(recipient, str) else value
    body = call.body if call.body_encoding == "utf-8" else f"<{len(call.content)} bytes>"
    return re.sub(r"\s+", " ", body).strip()


# -- the clients ---------------------------------------------------------------------------------------------


class _Base:
    def __init__(
        self,
        url: str | None,
        namespace: str | None,
        smtp_host: str | None,
        smtp_port: int | None,
    ) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.namespace = namespace
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port

    @property
    def urls(self) -> Urls:
        """The fakes' URLs for this client's namespace."""
        if self.namespace is None:
            return Urls(self.url)
        return Urls(f"{self.url}/ns/{quote(self.namespace, safe='')}")

    @property
    def smtp_host(self) -> str:
        return self._smtp_host or urlsplit(self.url).hostname or "127.0.0.1"

    def address(self, local: str = "test", domain: str = "example.com") -> str:
        """An email address that routes to this namespace (`local+ns-{namespace}@domain`) without SMTP AUTH."""
        if self.namespace is None:
            return f"{local}@{domain}"
        return f"{local}+ns-{self.namespace}@{domain}"

    def __repr__(self) -> str:
        scope = f", namespace={self.namespace!r}" if self.namespace is not None else ""
        return f"{type(self).__name__}({self.url!r}{scope})"


class MockHub(_Base):
    """A typed client of a running mockhub's inspection API.

    `MockHub()` connects to `MOCKHUB_URL` (default http://127.0.0.1:8080). With `namespace=`, every
    query and reset is scoped to that namespace, and rules created here only match it.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(url, namespace, smtp_host, smtp_port)
        self._owns_client = client is None
        self._http = client or httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    # -- plumbing ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = self._http.request(method, self.url + path, **kwargs, **extra)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> MockHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespaced(self, namespace: str | None) -> MockHub:
        """A client for another namespace (None: all of them), sharing this one's connections."""
        return MockHub(
            self.url, namespace=namespace, smtp_host=self._smtp_host, smtp_port=self._smtp_port, client=self._http
        )

    # -- health ----------------------------------------------------------------------------------------
    def health(self) -> Health:
        return Health.model_validate(self._request("GET", "/health"))

    @property
    def smtp_port(self) -> int | None:
        """The SMTP listener's port (asked from `/health` once when not given)."""
        if self._smtp_port is None:
            self._smtp_port = self.health().smtp_port
        return self._smtp_port

    def env(self) -> dict[str, str]:
        """Ready-made settings pointing an application at this namespace's fakes (see `app_env`)."""
        return app_env(self.urls, self.smtp_host, self.smtp_port, self.namespace, self.url)

    # -- calls -------------------------------------------------------------------------------------------
    def calls(
        self,
        service: str | None = None,
        *,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "asc",
        **filters: Unpack[CallFilters],
    ) -> list[Call]:
        """The recorded calls matching the filters, oldest first."""
        params = _params(self.namespace, service, filters, limit=limit, order=order)
        body = self._request("GET", "/calls", params=params)
        return [Call.model_validate(c) for c in body["calls"]]

    def call(self, call_id: str) -> Call:
        return Call.model_validate(self._request("GET", f"/calls/{quote(call_id, safe='')}"))

    def raw(self, call_id: str) -> bytes:
        """A call's body byte-exact: an email's message source, a webhook's payload."""
        response = self._http.get(f"{self.url}/calls/{quote(call_id, safe='')}/raw")
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    def count(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        return int(self._request("GET", "/calls/count", params=_params(self.namespace, service, filters))["count"])

    def delete_calls(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        """Forget the matching calls (faults and stubs stay); returns how many were forgotten."""
        return int(self._request("DELETE", "/calls", params=_params(self.namespace, service, filters))["deleted"])

    def wait_for(
        self, service: str | None = None, *, count: int = 1, timeout: float = 5.0, **filters: Unpack[CallFilters]
    ) -> list[Call]:
        """Wait (long poll, no sleeping) until at least `count` calls match; return every matching call.

        On timeout, raise an AssertionError listing what did arrive in this namespace, most similar first.
        """
        __tracebackhide__ = True  # pytest: show the test's line, not the client's insides
        params = _params(self.namespace, service, filters, wait=min(timeout, _MAX_WAIT), min=count)
        body = self._request("GET", "/calls", params=params, timeout=timeout + 10.0)
        got = [Call.model_validate(c) for c in body["calls"]]
        if len(got) >= count:
            return got
        others = self.namespaced(params.get("namespace")).calls(limit=500, order="desc")
        wanted = {k: v for k, v in params.items() if k not in ("wait", "min")}
        raise AssertionError(explain_miss(wanted, count, got, others, timeout))

    def stream(self, service: str | None = None, **filters: Unpack[CallFilters]) -> Iterator[Call]:
        """Each new matching call as it is recorded (Server-Sent Events); with `after`, earlier ones first."""
        params = _params(self.namespace, service, filters)
        timeout = httpx.Timeout(10.0, read=None)
        with self._http.stream("GET", f"{self.url}/calls/stream", params=params, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            parser = _Sse()
            for line in response.iter_lines():
                done = parser.feed(line)
                if done is not None and (call := _stream_item(*done)) is not None:
                    yield call

    def export(
        self, fmt: Literal["jsonl", "har"] = "jsonl", service: str | None = None, **filters: Unpack[CallFilters]
    ) -> Iterator[bytes]:
        """The journal as JSON Lines or HAR, in chunks (servers without `/calls/export`: JSONL from `/calls`)."""
        params = _params(self.namespace, service, filters, format=fmt)
        with self._http.stream("GET", f"{self.url}/calls/export", params=params, timeout=60.0) as response:
            if response.status_code == 404 and fmt == "jsonl":
                response.read()
                fallback = True
            elif response.status_code == 404:
                response.read()
                raise MockHubError(
                    404, "export_unsupported", f"{self.url} has no /calls/export: HAR needs a newer mockhub"
                )
            elif response.status_code >= 400:
                response.read()
                raise _error(response)
            else:
                fallback = False
                yield from response.iter_bytes()
        if fallback:
            params.pop("format")
            for call in self._request("GET", "/calls", params=params)["calls"]:
                yield jsonlib.dumps(call, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    # -- faults ------------------------------------------------------------------------------------------
    def fault(
        self,
        service: str | None = None,
        *,
        preset: Preset | None = None,
        action: FaultAction = "error",
        status: int | None = None,
        body: str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        delay_ms: int | None = None,
        jitter_ms: int = 0,
        times: int | None = 1,
        after: int = 0,
        probability: float = 1.0,
        after_chunks: int = 0,
        stage: SmtpStage | None = None,
        code: int | None = None,
        message: str | None = None,
        match: Match | None = None,
        method: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        regex: str | None = None,
        to: str | None = None,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> ActiveFault:
        """Add a fault rule (SPEC section 5); `with hub.fault(...):` removes it again on exit.

        `times=None` fails every matching call until the rule is deleted.
        """
        spec = _fault_spec(
            service, self.namespace, match=match, action=action, preset=preset, status=status, body=body,
            headers=headers, delay_ms=delay_ms, jitter_ms=jitter_ms, times=times, after=after,
            probability=probability, after_chunks=after_chunks, stage=stage, code=code, message=message,
            method=method, path=path, contains=contains, regex=regex, to=to, subject=subject, data=data,
        )  # fmt: skip
        return self.add_fault(spec)

    def add_fault(self, spec: FaultSpec) -> ActiveFault:
        rule: ActiveFault = _lenient(ActiveFault, self._request("POST", "/faults", json=_spec_json(spec)))
        rule._hub = self
        return rule

    def get_fault(self, fault_id: str) -> Fault:
        return _lenient(Fault, self._request("GET", f"/faults/{quote(fault_id, safe='')}"))  # type: ignore[no-any-return]

    def faults(self) -> list[Fault]:
        body = self._request("GET", "/faults", params=_params(self.namespace, None, {}))
        return [_lenient(Fault, f) for f in body["faults"]]

    def delete_fault(self, fault_id: str, *, missing_ok: bool = False) -> bool:
        return self._delete_rule("faults", fault_id, missing_ok=missing_ok)

    def clear_faults(self) -> int:
        return int(self._request("DELETE", "/faults", params=_params(self.namespace, None, {}))["deleted"])

    # -- stubs -------------------------------------------------------------------------------------------
    def stub(
        self,
        service: str | None = None,
        *,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        reply: StubReply | dict[str, Any] | None = None,
        response: StubResponse | dict[str, Any] | None = None,
        sequence: list[StubReply | dict[str, Any]] | None = None,
        status: int | None = None,
        json: Any = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        times: int | None = None,
        chunk_delay_ms: int = 0,
        match: Match | None = None,
        method: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        regex: str | None = None,
        to: str | None = None,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> ActiveStub:
        """Script a reply (SPEC section 7): `content`/`tool_calls` for LLMs, `status`/`json`/`body` for raw HTTP.

        `with hub.stub(...):` removes it again on exit.
        """
        spec = _stub_spec(
            service, self.namespace, match=match, content=content, tool_calls=tool_calls, reply=reply,
            response=response, sequence=sequence, status=status, json=json, body=body, headers=headers,
            times=times, chunk_delay_ms=chunk_delay_ms, method=method, path=path, contains=contains,
            regex=regex, to=to, subject=subject, data=data,
        )  # fmt: skip
        return self.add_stub(spec)

    def add_stub(self, spec: StubSpec) -> ActiveStub:
        rule: ActiveStub = _lenient(ActiveStub, self._request("POST", "/stubs", json=_spec_json(spec)))
        rule._hub = self
        return rule

    def stubs(self) -> list[Stub]:
        body = self._request("GET", "/stubs", params=_params(self.namespace, None, {}))
        return [_lenient(Stub, s) for s in body["stubs"]]

    def delete_stub(self, stub_id: str, *, missing_ok: bool = False) -> bool:
        return self._delete_rule("stubs", stub_id, missing_ok=missing_ok)

    def clear_stubs(self) -> int:
        return int(self._request("DELETE", "/stubs", params=_params(self.namespace, None, {}))["deleted"])

    def _delete_rule(self, kind: str, rule_id: str, *, missing_ok: bool) -> bool:
        try:
            self._request("DELETE", f"/{kind}/{quote(rule_id, safe='')}")
        except MockHubError as exc:
            if exc.status == 404 and missing_ok:
                return False
            raise
        return True

    # -- reset -------------------------------------------------------------------------------------------
    def reset(self) -> ResetResult:
        """Forget calls, faults and stubs (only this namespace's when the client has one)."""
        return ResetResult.model_validate(self._request("POST", "/reset", params=_params(self.namespace, None, {})))


class AsyncMockHub(_Base):
    """The async twin of `MockHub` (httpx.AsyncClient). `fault`/`stub` return an `AsyncRule`:
    `rule = await hub.fault(...)`, or `async with hub.fault(...):` to delete it on exit."""

    def __init__(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        timeout: float = 10.0,
        smtp_host: str | None = None,
        smtp_port: int | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(url, namespace, smtp_host, smtp_port)
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False)

    async def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = await self._http.request(method, self.url + path, **kwargs, **extra)
        if response.status_code >= 400:
            raise _error(response)
        return response.json()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncMockHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def namespaced(self, namespace: str | None) -> AsyncMockHub:
        return AsyncMockHub(
            self.url, namespace=namespace, smtp_host=self._smtp_host, smtp_port=self._smtp_port, client=self._http
        )

    async def health(self) -> Health:
        return Health.model_validate(await self._request("GET", "/health"))

    async def env(self) -> dict[str, str]:
        if self._smtp_port is None:
            self._smtp_port = (await self.health()).smtp_port
        return app_env(self.urls, self.smtp_host, self._smtp_port, self.namespace, self.url)

    async def calls(
        self,
        service: str | None = None,
        *,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "asc",
        **filters: Unpack[CallFilters],
    ) -> list[Call]:
        params = _params(self.namespace, service, filters, limit=limit, order=order)
        body = await self._request("GET", "/calls", params=params)
        return [Call.model_validate(c) for c in body["calls"]]

    async def call(self, call_id: str) -> Call:
        return Call.model_validate(await self._request("GET", f"/calls/{quote(call_id, safe='')}"))

    async def raw(self, call_id: str) -> bytes:
        response = await self._http.get(f"{self.url}/calls/{quote(call_id, safe='')}/raw")
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    async def count(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        body = await self._request("GET", "/calls/count", params=_params(self.namespace, service, filters))
        return int(body["count"])

    async def delete_calls(self, service: str | None = None, **filters: Unpack[CallFilters]) -> int:
        body = await self._request("DELETE", "/calls", params=_params(self.namespace, service, filters))
        return int(body["deleted"])

    async def wait_for(
        self, service: str | None = None, *, count: int = 1, timeout: float = 5.0, **filters: Unpack[CallFilters]
    ) -> list[Call]:
        """Wait (long poll) until at least `count` calls match; on timeout, AssertionError listing what arrived."""
        __tracebackhide__ = True
        params = _params(self.namespace, service, filters, wait=min(timeout, _MAX_WAIT), min=count)
        body = await self._request("GET", "/calls", params=params, timeout=timeout + 10.0)
        got = [Call.model_validate(c) for c in body["calls"]]
        if len(got) >= count:
            return got
        others = await self.namespaced(params.get("namespace")).calls(limit=500, order="desc")
        wanted = {k: v for k, v in params.items() if k not in ("wait", "min")}
        raise AssertionError(explain_miss(wanted, count, got, others, timeout))

    async def stream(self, service: str | None = None, **filters: Unpack[CallFilters]) -> AsyncIterator[Call]:
        params = _params(self.namespace, service, filters)
        timeout = httpx.Timeout(10.0, read=None)
        async with self._http.stream("GET", f"{self.url}/calls/stream", params=params, timeout=timeout) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _error(response)
            parser = _Sse()
            async for line in response.aiter_lines():
                done = parser.feed(line)
                if done is not None and (call := _stream_item(*done)) is not None:
                    yield call

    def fault(
        self,
        service: str | None = None,
        *,
        preset: Preset | None = None,
        action: FaultAction = "error",
        status: int | None = None,
        body: str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        delay_ms: int | None = None,
        jitter_ms: int = 0,
        times: int | None = 1,
        after: int = 0,
        probability: float = 1.0,
        after_chunks: int = 0,
        stage: SmtpStage | None = None,
        code: int | None = None,
        message: str | None = None,
        match: Match | None = None,
        method: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        regex: str | None = None,
        to: str | None = None,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AsyncRule[Fault]:
        spec = _fault_spec(
            service, self.namespace, match=match, action=action, preset=preset, status=status, body=body,
            headers=headers, delay_ms=delay_ms, jitter_ms=jitter_ms, times=times, after=after,
            probability=probability, after_chunks=after_chunks, stage=stage, code=code, message=message,
            method=method, path=path, contains=contains, regex=regex, to=to, subject=subject, data=data,
        )  # fmt: skip
        return AsyncRule(self, "faults", spec)

    async def get_fault(self, fault_id: str) -> Fault:
        return _lenient(Fault, await self._request("GET", f"/faults/{quote(fault_id, safe='')}"))  # type: ignore[no-any-return]

    async def faults(self) -> list[Fault]:
        body = await self._request("GET", "/faults", params=_params(self.namespace, None, {}))
        return [_lenient(Fault, f) for f in body["faults"]]

    async def delete_fault(self, fault_id: str, *, missing_ok: bool = False) -> bool:
        return await self._delete_rule("faults", fault_id, missing_ok=missing_ok)

    async def clear_faults(self) -> int:
        return int((await self._request("DELETE", "/faults", params=_params(self.namespace, None, {})))["deleted"])

    def stub(
        self,
        service: str | None = None,
        *,
        content: str | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        reply: StubReply | dict[str, Any] | None = None,
        response: StubResponse | dict[str, Any] | None = None,
        sequence: list[StubReply | dict[str, Any]] | None = None,
        status: int | None = None,
        json: Any = None,
        body: str | None = None,
        headers: dict[str, str] | None = None,
        times: int | None = None,
        chunk_delay_ms: int = 0,
        match: Match | None = None,
        method: str | None = None,
        path: str | None = None,
        contains: str | None = None,
        regex: str | None = None,
        to: str | None = None,
        subject: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> AsyncRule[Stub]:
        spec = _stub_spec(
            service, self.namespace, match=match, content=content, tool_calls=tool_calls, reply=reply,
            response=response, sequence=sequence, status=status, json=json, body=body, headers=headers,
            times=times, chunk_delay_ms=chunk_delay_ms, method=method, path=path, contains=contains,
            regex=regex, to=to, subject=subject, data=data,
        )  # fmt: skip
        return AsyncRule(self, "stubs", spec)

    async def stubs(self) -> list[Stub]:
        body = await self._request("GET", "/stubs", params=_params(self.namespace, None, {}))
        return [_lenient(Stub, s) for s in body["stubs"]]

    async def delete_stub(self, stub_id: str, *, missing_ok: bool = False) -> bool:
        return await self._delete_rule("stubs", stub_id, missing_ok=missing_ok)

    async def clear_stubs(self) -> int:
        return int((await self._request("DELETE", "/stubs", params=_params(self.namespace, None, {})))["deleted"])

    async def _delete_rule(self, kind: str, rule_id: str, *, missing_ok: bool) -> bool:
        try:
            await self._request("DELETE", f"/{kind}/{quote(rule_id, safe='')}")
        except MockHubError as exc:
            if exc.status == 404 and missing_ok:
                return False
            raise
        return True

    async def reset(self) -> ResetResult:
        body = await self._request("POST", "/reset", params=_params(self.namespace, None, {}))
        return ResetResult.model_validate(body)
