"""What the inspection API answers, as light pydantic models (no server imports), and rules with a handle
back to the client that made them."""

from __future__ import annotations

import base64
import json as jsonlib
from collections.abc import Awaitable, Callable, Generator
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mockhub.filters import CallFilters, features_of, recipients_of, subjects_of, texts_of
from mockhub.limits import Limit
from mockhub.rules import Fault, Stub

if TYPE_CHECKING:
    from mockhub.client.aio import AsyncMockHub
    from mockhub.client.sync import MockHub

__all__ = [
    "ActiveFault",
    "ActiveLimit",
    "ActiveStub",
    "AsyncActiveFault",
    "AsyncActiveLimit",
    "AsyncActiveStub",
    "AsyncRule",
    "Call",
    "CallFilters",
    "CallResponse",
    "FaultHit",
    "Health",
    "ResetResult",
    "SimulationResult",
    "StubHit",
]


def _decode(text: str, encoding: str) -> bytes:
    return base64.b64decode(text) if encoding == "base64" else text.encode("utf-8")


class CallResponse(BaseModel):
    """What mockhub answered to a call."""

    model_config = ConfigDict(frozen=True)

    status: int = Field(description="the HTTP status mockhub answered")
    headers: dict[str, str] = Field({}, description="the answer's headers, lower-case names")
    body: str = Field("", description="the answer's body as text, or base64 (see `body_encoding`)")
    body_encoding: Literal["utf-8", "base64"] = Field("utf-8", description="how `body` is written")

    @property
    def content(self) -> bytes:
        """The answer's body byte-exact."""
        return _decode(self.body, self.body_encoding)


class FaultHit(BaseModel):
    """The fault rule that hit a call."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(description="the fault rule's id (`hub.faults()`, `DELETE /faults/{id}`)")
    action: str = Field(description="what it did: error, delay, timeout, reset, empty, malformed, cut_stream")
    preset: str | None = Field(None, description="the preset it answered with, if any")


class StubHit(BaseModel):
    """The stub that answered a call (`index`: which of its answers, for a `sequence`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    id: str = Field(description="the stub's id")
    index: int = Field(0, description="which of its answers (of a `sequence`) it gave")


class Call(BaseModel):
    """One recorded call (docs/inspection-api.md). `data` holds the service's parsed fields."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="the call's id (`GET /calls/{id}`)")
    seq: int = Field(description="its place in the journal: strictly increasing")
    time: datetime = Field(description="when it arrived (UTC)")
    service: str = Field(description="the fake that took it (`GET /services` names)")
    namespace: str = Field("default", description="the namespace it was recorded in")
    direction: Literal["inbound", "outbound"] = Field(
        "inbound", description="inbound: to a fake; outbound: a fake's call to the app (a callback)"
    )
    method: str = Field(description="the HTTP method (SMTP: the command, `DATA` for a delivered message)")
    scheme: str = Field("http", description="http or https (through the proxy or the HTTPS listener)")
    host: str = Field("", description="where it was going: the Host / CONNECT target, the port only when not default")
    path: str = Field(description="the path, without an /ns/{namespace} prefix")
    query: dict[str, Any] = Field({}, description="the query string: a string per name, a list when repeated")
    headers: dict[str, str] = Field({}, description="the request's headers, lower-case names")
    body: str = Field("", description="the request body as text, or base64 (see `body_encoding`); `content`: bytes")
    body_encoding: Literal["utf-8", "base64"] = Field("utf-8", description="how `body` is written")
    data: dict[str, Any] = Field(
        {}, description="the fake's parsed fields (types per fake: each fake's page, 'Recorded data')"
    )
    data_truncated: bool = Field(
        False, description="`data` was cut at 64 levels or cleaned to stay readable (`content` is byte-exact)"
    )
    response: CallResponse | None = Field(None, description="what mockhub answered (None: it never answered)")
    fault: FaultHit | None = Field(None, description="the fault rule that hit it, if any")
    stub: StubHit | None = Field(None, description="the stub that answered it, if any")
    duration_ms: float = Field(0.0, description="from the request's arrival to the end of the answer")
    summary: str = Field("", description="the fake's own one-line summary (what the UI's list shows)")

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

    def describe(self, width: int = 80) -> str:
        """`#12 slack POST /services/T/B/X -> 200  "alerts: disk full"`: what a failure message shows."""
        from mockhub.client.explain import describe

        return describe(self, width)

    # What `mockhub.filters` reads of a call (the server's matchers, run on the client's copy).
    def recipients(self) -> frozenset[str]:
        return recipients_of(self.service, self.data)

    def search_text(self) -> str:
        return "\n".join([self.content.decode("utf-8", "replace"), *texts_of(self.service, self.data)])

    def subjects(self) -> list[str]:
        return subjects_of(self.service, self.data)

    def features(self) -> frozenset[str]:
        return features_of(self.service, self.data)

    @property
    def links(self) -> list[str]:
        """The links in this message (`data.links`; empty for a call that is not a message)."""
        return [v for v in self.data.get("links") or () if isinstance(v, str)]

    @property
    def codes(self) -> list[str]:
        """The one-time codes in this message (`data.codes`; empty for a call that is not a message)."""
        return [v for v in self.data.get("codes") or () if isinstance(v, str)]


class Health(BaseModel):
    """`GET /health`."""

    status: Literal["ok", "starting"]
    version: str
    http_port: int
    smtp_port: int | None = None
    smtps_port: int | None = None
    https_port: int | None = None
    calls: int = 0
    evicted: int = 0
    last_seq: int = 0
    body_bytes: int = 0
    held_bytes: int = 0
    store: Literal["memory", "ok", "unavailable"] = "memory"
    connections: int = 0
    max_connections: int = 0


class ResetResult(BaseModel):
    """How many calls, faults and stubs a reset forgot."""

    calls: int
    faults: int
    stubs: int


class SimulationResult(BaseModel):
    """`POST /simulate/{service}/{event}`: what was delivered, and what the application answered."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    service: str
    event: str
    namespace: str
    url: str
    delivered: bool = Field(description="the application answered (any status); false: unreachable, timed out")
    ok: bool = Field(description="delivered and answered 2xx")
    status: int | None = None
    response: CallResponse | None = Field(None, description="the application's answer (`.content`: its bytes)")
    truncated: bool = Field(False, description="the answer was longer than mockhub reads (64 KiB) and was cut")
    error: str | None = None
    call_id: str = Field(description="the recorded outbound call (`hub.call(call_id)`)")
    caused: list[str] = Field(default_factory=list, description="calls the answer caused (TwiML replies)")
    duration_ms: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


# The one definition of the /calls filters in the client (to move to mockhub/filters.py).
# The filters are defined once, in mockhub.filters; re-exported here for the clients.
__all__ += ["CallFilters"]


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

    def refresh(self) -> Stub:
        """The stub as the server sees it now (its `hits`)."""
        if self._hub is None:
            raise RuntimeError("this stub is not bound to a client")
        return self._hub.get_stub(self.id)

    def __enter__(self) -> ActiveStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


class ActiveLimit(Limit):
    """A limit rule as created by `MockHub.limit`: also a context manager that deletes it on exit."""

    model_config = ConfigDict(extra="ignore")
    _hub: MockHub | None = PrivateAttr(None)

    def delete(self) -> None:
        if self._hub is not None:
            self._hub.delete_limit(self.id, missing_ok=True)

    def refresh(self) -> Limit:
        """The rule as the server sees it now (its counters: `seen`, `passed`, `limited`, `keys`)."""
        if self._hub is None:
            raise RuntimeError("this limit is not bound to a client")
        return self._hub.get_limit(self.id)

    def __enter__(self) -> ActiveLimit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()


class AsyncActiveLimit(Limit):
    """A limit rule as created by `AsyncMockHub.limit`: `await rule.delete()`, `await rule.refresh()`."""

    model_config = ConfigDict(extra="ignore")
    _hub: AsyncMockHub | None = PrivateAttr(None)

    async def delete(self) -> None:
        if self._hub is not None:
            await self._hub.delete_limit(self.id, missing_ok=True)

    async def refresh(self) -> Limit:
        """The rule as the server sees it now (its counters: `seen`, `passed`, `limited`, `keys`)."""
        if self._hub is None:
            raise RuntimeError("this limit is not bound to a client")
        return await self._hub.get_limit(self.id)


class AsyncActiveFault(Fault):
    """A fault rule as created by `AsyncMockHub.fault`: `await rule.delete()`, `await rule.refresh()`."""

    model_config = ConfigDict(extra="ignore")
    _hub: AsyncMockHub | None = PrivateAttr(None)

    async def delete(self) -> None:
        if self._hub is not None:
            await self._hub.delete_fault(self.id, missing_ok=True)

    async def refresh(self) -> Fault:
        """The rule as the server sees it now (its counters: `seen`, `fired`, `remaining`)."""
        if self._hub is None:
            raise RuntimeError("this fault is not bound to a client")
        return await self._hub.get_fault(self.id)


class AsyncActiveStub(Stub):
    """A stub as created by `AsyncMockHub.stub`: `await rule.delete()`, `await rule.refresh()`."""

    model_config = ConfigDict(extra="ignore")
    _hub: AsyncMockHub | None = PrivateAttr(None)

    async def delete(self) -> None:
        if self._hub is not None:
            await self._hub.delete_stub(self.id, missing_ok=True)

    async def refresh(self) -> Stub:
        """The stub as the server sees it now (its `hits`)."""
        if self._hub is None:
            raise RuntimeError("this stub is not bound to a client")
        return await self._hub.get_stub(self.id)


R = TypeVar("R", AsyncActiveFault, AsyncActiveStub, AsyncActiveLimit)


class AsyncRule(Generic[R]):
    """What `AsyncMockHub.fault/stub` return: `await` it for the rule, or `async with` it to delete on exit."""

    def __init__(self, create: Callable[[], Awaitable[R]]) -> None:
        self._create_rule: Callable[[], Awaitable[R]] = create
        self._rule: R | None = None

    async def _create(self) -> R:
        if self._rule is None:
            self._rule = await self._create_rule()
        return self._rule

    def __await__(self) -> Generator[Any, None, R]:
        return self._create().__await__()

    async def __aenter__(self) -> R:
        return await self._create()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._rule is not None:
            await self._rule.delete()
