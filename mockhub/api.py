"""The inspection API: `/calls`, `/faults`, `/stubs`, `/limits`, `/services`, `/reset`, health (docs/inspection-api.md).

Errors are always `{"error": {"code", "message"}}` with a 4xx status, including validation errors
(which name the bad field) and unknown routes.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Query
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mockhub.filters import CallFilter, with_filters
from mockhub.har import har_chunks
from mockhub.journal import Call, Journal
from mockhub.limits import Limit, LimitSpec
from mockhub.recording import jsonl_chunks
from mockhub.rules import Fault, FaultSpec, RuleBook, Stub, StubSpec, TooManyRules, check_reply_fields
from mockhub.services.base import Attachment, ServiceInfo
from mockhub.services.limits import LIMITS, ParseLimitExceeded, ParseLimits
from mockhub.store import Store, StoreUnavailable
from mockhub.usage import Billed, PriceList, Prices, PriceTable, UsageOut, summarize

__all__ = ["ApiState", "create_api"]


class JSONOut(JSONResponse):
    """JSON rendered by orjson (a JSONResponse, so FastAPI documents the route's response model)."""

    def render(self, content: Any) -> bytes:
        if isinstance(content, BaseModel):
            return content.model_dump_json(by_alias=True).encode()
        return orjson.dumps(content)


class ApiError(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, message)
        self.code = code


# -- models: what crosses the API, for validation and /openapi.json ---------------------------------


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ResponseOut(BaseModel):
    status: int
    headers: dict[str, str]
    body: str
    body_encoding: Literal["utf-8", "base64"]


class CallOut(BaseModel):
    """One recorded call."""

    id: str
    seq: int
    time: str
    service: str
    namespace: str
    direction: Literal["inbound", "outbound"]
    method: str
    scheme: str = Field("http", description="http or https (the HTTPS listener, a proxy tunnel)")
    host: str = Field(
        "", description="where the call was going: api.twilio.com, 127.0.0.1:8080 (the default port left out)"
    )
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: str
    body_encoding: Literal["utf-8", "base64"] = Field(description="base64 when the body is not valid UTF-8")
    data: dict[str, Any]
    data_truncated: bool = Field(
        False,
        description="data was cut at 64 levels or cleaned (keys made strings, huge integers and lone surrogates "
        "made text) to stay readable; the body is byte-exact",
    )
    response: ResponseOut | None
    fault: dict[str, Any] | None
    stub: dict[str, Any] | None
    duration_ms: float
    summary: str = Field(description="one line telling what the call was, in its fake's words")


class ServiceList(BaseModel):
    services: list[ServiceInfo]
    count: int


class CallList(BaseModel):
    calls: list[CallOut]
    count: int = Field(description="calls in this page")
    next: str | None = Field(
        None,
        description="more calls match: pass this back as `cursor` (with the same filters and order) for the next page",
    )
    timed_out: bool | None = Field(None, description="long poll only: true when `wait` ran out first")


class CountOut(BaseModel):
    count: int


class DeletedOut(BaseModel):
    deleted: int


class ResetOut(BaseModel):
    calls: int
    faults: int
    stubs: int


class LimitList(BaseModel):
    limits: list[Limit]
    count: int


class FaultList(BaseModel):
    faults: list[Fault]
    count: int


class StubList(BaseModel):
    stubs: list[Stub]
    count: int


class HealthOut(BaseModel):
    status: Literal["ok", "starting"]
    version: str
    http_port: int
    smtp_port: int | None = None
    smtps_port: int | None = None
    https_port: int | None = Field(None, description="the HTTPS listener (when on)")
    calls: int = Field(description="calls held in memory")
    evicted: int = Field(description="calls evicted from memory by the max_calls / byte bounds")
    last_seq: int
    body_bytes: int = Field(description="bytes of request and answer bodies held in memory")
    held_bytes: int = Field(
        0,
        description="what the calls in memory hold (bodies, headers, data, by estimate): what max_journal_bytes bounds",
    )
    store: Literal["memory", "ok", "unavailable"] = Field(
        "memory", description="the store: memory (this process), ok (a shared store, reachable), unavailable"
    )
    connections: int = Field(0, description="HTTP connections open now (health is answered even at the limit)")
    max_connections: int = Field(0, description="the max_connections setting: other requests get 503 beyond it")
    recorded: int | None = Field(None, description="calls written to the record file since start (when recording)")
    record_failures: int | None = Field(
        None, description="calls the record file refused (a full disk): answered 500, not acknowledged"
    )
    record_file: str | None = Field(None, description="the JSON Lines file being written (when recording)")
    replay_skipped: int | None = Field(
        None, description="lines of the replayed recording skipped as not call records (with --replay)"
    )


@dataclass
class ApiState:
    """What the API reads: the journal, the rule book, and the server's health."""

    journal: Journal
    rules: RuleBook
    health: Callable[[], dict[str, Any]]
    # The fakes' facts (GET /services), by name: what names, presets and stub fields exist.
    services: dict[str, ServiceInfo] = field(default_factory=dict)
    # Each fake's own fields of a stub's reply, checked when a stub is added.
    stub_replies: dict[str, type[BaseModel] | None] = field(default_factory=dict)
    # Each fake's reader of the files a recorded call carried (`Service.attachment`), by name.
    attachments: dict[str, Callable[[Call, int], Attachment | None]] = field(default_factory=dict)
    # Lets the fakes forget state of their own (stored messages) on POST /reset.
    on_reset: Callable[[str | None], None] = lambda namespace: None
    # The parse limits and thread threshold the fakes parsed with: attachments are read the same way.
    limits: ParseLimits = field(default_factory=ParseLimits)
    parse_thread_bytes: int = 64 * 1024
    # GET /usage: each fake's reader of what a call was billed for, and the price table.
    usage_readers: dict[str, Callable[[Call], Billed | None]] = field(default_factory=dict)
    prices: Prices = field(default_factory=lambda: Prices({}))
    # Where changes go (calls deleted, rules added and removed); None: the journal and rules above (memory).
    store: Store | None = None


# GET /calls answers a page: `limit` calls (DEFAULT_LIMIT without one, never more than MAX_LIMIT), and
# a `next` cursor when more match. A page is built and rendered in one go on the event loop, so its
# size bounds how long one listing can keep every other client waiting (~15 µs a call).
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A page also ends early past PAGE_BYTES of calls (by the journal's `Call.size`): a page of 100 calls of
# 10 MiB each would be a gigabyte to render in one go.
PAGE_BYTES = 8 * 1024 * 1024
# Exports are streamed a batch at a time (EXPORT_BATCH calls or EXPORT_BATCH_BYTES, whichever comes
# first), yielding to the event loop between batches.
EXPORT_BATCH = 200
EXPORT_BATCH_BYTES = 1024 * 1024

# A stream's keep-alive comment costs a wake-up of the event loop: a tiny interval would spin it.
MIN_HEARTBEAT_S = 0.05


# -- the query parameters ----------------------------------------------------------------------------
# Each /calls route reads its query string with one pydantic model (`_parse`) instead of FastAPI's
# per-parameter machinery, which measured ~0.4 ms of a ~1 ms `GET /calls` (`bench`, journal group).
# The same models write the routes' parameters into /openapi.json (`_documents`).


class _Filtering(BaseModel):
    """The call filters (`mockhub.filters.CallFilters`); every one is optional and they combine with AND."""

    def to_filter(self) -> CallFilter:
        return CallFilter.of(self.model_dump(exclude_none=True, by_alias=False))


class _Listing(_Filtering):
    limit: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description=f"calls in a page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})",
    )
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,18}$", description="the `next` of the previous page: where this page starts"
    )
    order: Literal["asc", "desc"] = Field("asc", description="asc = oldest first")
    wait: float | None = Field(None, ge=0, le=300, description="long poll: seconds to wait")
    min: int = Field(1, ge=1, description="long poll: how many matching calls to wait for")
    before: int | None = Field(None, ge=1, description="only calls with a smaller seq (paging back)")


class _Streaming(_Filtering):
    heartbeat: float = Field(
        15.0,
        ge=MIN_HEARTBEAT_S,
        le=300,
        description=f"seconds between keep-alive comments (at least {MIN_HEARTBEAT_S})",
    )


class _Exporting(_Filtering):
    fmt: Literal["jsonl", "har"] = Field("jsonl", alias="format")
    limit: int | None = Field(None, ge=1, description="at most this many calls (default: every matching call)")


class _Usage(_Filtering):
    model: str | None = Field(None, description="only this model (a name, or a glob such as gpt-4o*)")

    def to_filter(self) -> CallFilter:
        return CallFilter.of(self.model_dump(exclude_none=True, by_alias=False, exclude={"model"}))


# Each model is its options plus every filter, added from the one definition in mockhub.filters.
FilterQuery = with_filters(_Filtering)
ListQuery = with_filters(_Listing)
StreamQuery = with_filters(_Streaming)
ExportQuery = with_filters(_Exporting)
UsageQuery = with_filters(_Usage)


QueryModel = TypeVar("QueryModel", bound=_Filtering)
# Filters that may be repeated in a query string (the others take their last value, as before).
_REPEATABLE = ("has",)


def _parse(model: type[QueryModel], request: Request) -> QueryModel:
    """The request's query string as `model`; a bad value is the same 422 FastAPI would give."""
    params: dict[str, Any] = dict(request.query_params)
    for name in _REPEATABLE:
        # `has=link&has=code`: every value (a plain dict keeps only the last one).
        if name in params and len(values := request.query_params.getlist(name)) > 1:
            params[name] = values
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        errors = [{**err, "loc": ("query", *err["loc"])} for err in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _documents(model: type[_Filtering]) -> dict[str, Any]:
    """`openapi_extra` listing `model`'s fields as the operation's query parameters."""
    parameters = []
    for name, schema in model.model_json_schema(by_alias=True)["properties"].items():
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema["description"]
        parameters.append(parameter)
    return {"parameters": parameters}


def _calls_body(calls: list[Call], next_cursor: str | None, timed_out: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"calls": [c.to_api() for c in calls], "count": len(calls)}
    if next_cursor is not None:  # left out on the last page, as `timed_out` is outside a long poll
        body["next"] = next_cursor
    if timed_out is not None:
        body["timed_out"] = timed_out
    return body


def _next(calls: list[Call], more: bool, desc: bool, f: CallFilter) -> str | None:
    """The cursor of the page after `calls` (None: it is the last page)."""
    if not more:
        return None
    if calls:
        return str(calls[-1].seq)
    # What a long poll kept was forgotten meanwhile: the next page starts where this one did.
    return None if desc else str(f.after or 0)


def _from(f: CallFilter, after: int | None) -> CallFilter:
    """`f` narrowed to calls with a seq greater than `after`."""
    if after is None or (f.after is not None and f.after >= after):
        return f
    return CallFilter.of({**f.values, "after": after})


async def _batches(journal: Journal, f: CallFilter, limit: int | None) -> AsyncIterator[list[Call]]:
    """The matching calls oldest first, a batch at a time, yielding to the event loop between batches.

    Each batch is read afresh from where the last one ended (by seq), so an export of the whole
    journal holds one batch at a time, never a list of every call, and calls evicted meanwhile go.
    """
    left = limit
    while left is None or left > 0:
        size = EXPORT_BATCH if left is None else min(EXPORT_BATCH, left)
        batch, more = journal.page(f, size, max_bytes=EXPORT_BATCH_BYTES)
        if batch:
            yield batch
        if not more or not batch:
            return
        if left is not None:
            left -= len(batch)
        f = _from(f, batch[-1].seq)
        await asyncio.sleep(0)  # let the other clients in between two batches


def create_api(state: ApiState, version: str) -> FastAPI:
    journal, rules, services = state.journal, state.rules, state.services
    # Long-poll answers rendered during this turn of the event loop (list_calls), by content.
    woken: dict[tuple[Any, ...], bytes] = {}
    store = state.store or Store(journal, rules)

    def _known(service: str | None, preset: str | None = None, where: str = "service") -> None:
        """422 for a service (or a preset of it) mockhub does not have: a typo must not pass silently."""
        if service is None or not services:
            return
        info = services.get(service)
        if info is None:
            close = difflib.get_close_matches(service, services, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(services))
            raise ApiError(422, "unknown_service", f"{where}: mockhub has no service {service!r}{hint}; known: {known}")
        if preset is not None and preset not in info.presets:
            raise ApiError(
                422, "invalid_request", f"preset: service {service!r} has no preset {preset!r}; it has {info.presets}"
            )

    def _check_stub(spec: StubSpec) -> None:
        _known(spec.service)
        try:
            check_reply_fields(spec, state.stub_replies)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None

    api = FastAPI(
        title="mockhub inspection API",
        version=version,
        description="Query recorded calls, wait for them, inject faults and script replies.",
        default_response_class=JSONOut,
        docs_url="/docs",
        redoc_url=None,
        responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )

    @api.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        code = getattr(exc, "code", None) or {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        message = exc.detail
        if exc.status_code == 404 and code == "not_found" and exc.detail == "Not Found":
            message = f"no mockhub route for {request.method} {request.url.path}"
        return JSONOut({"error": {"code": code, "message": message}}, exc.status_code, headers=exc.headers)

    @api.exception_handler(StoreUnavailable)
    async def _store_lost(request: Request, exc: StoreUnavailable) -> Response:
        return JSONOut({"error": {"code": "store_unavailable", "message": str(exc)}}, 503, headers={"retry-after": "1"})

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            msg = str(err.get("msg", "")).removeprefix("Value error, ")
            # Model-level checks (FaultSpec's) carry no location; their messages start with the field.
            problems.append(f"{where}: {msg}" if where else msg)
        return JSONOut({"error": {"code": "invalid_request", "message": "; ".join(problems)}}, 422)

    # -- calls -------------------------------------------------------------------------------------

    def _filter(model: type[QueryModel], request: Request) -> QueryModel:
        query = _parse(model, request)
        # `service` is one of the filters `with_filters` added to every query model.
        _known(getattr(query, "service", None))
        return query

    # -- services ----------------------------------------------------------------------------------

    @api.get("/services", response_model=ServiceList, tags=["services"])
    async def list_services() -> Response:
        """Every fake and its facts: routes, host names, URLs and env settings, secrets, filter fields, presets."""
        return JSONOut(ServiceList(services=list(services.values()), count=len(services)))

    @api.get("/services/{name}", response_model=ServiceInfo, tags=["services"])
    async def get_service(name: str) -> Response:
        _known(name)
        return JSONOut(services[name])

    @api.get("/calls", response_model=CallList, tags=["calls"], openapi_extra=_documents(ListQuery))
    async def list_calls(request: Request) -> Response:
        """List calls, oldest first; with `wait`, answer as soon as `min` calls match (long poll)."""
        q = _filter(ListQuery, request)
        f = q.to_filter()
        desc = q.order == "desc"
        before = q.before
        if q.cursor is not None:
            # The cursor is the seq the previous page ended at: older calls newest first, newer ones oldest first.
            cursor = int(q.cursor)
            if desc:
                before = cursor if before is None else min(before, cursor)
            else:
                f = _from(f, cursor)
        limit = min(q.limit or DEFAULT_LIMIT, MAX_LIMIT)
        if q.wait is None:
            calls, more = journal.page(f, limit, newest_first=desc, before=before, max_bytes=PAGE_BYTES)
            return JSONOut(_calls_body(calls, _next(calls, more, desc, f)))
        # The long poll hands back what it matched: no second scan of the journal after waking.
        calls, arrived, more = await journal.wait_page(f, q.min, q.wait, limit, newest_first=desc)
        if before is not None:
            calls = [c for c in calls if c.seq < before]
        held = 0
        for i, call in enumerate(calls):
            held += call.held
            if i and held > PAGE_BYTES:  # big calls make a short page, as without `wait`
                del calls[i:]
                more = True
                break
        next_cursor = _next(calls, more, desc, f)
        # Long polls on one filter wake together on the same call, most with the same answer: it is
        # rendered once for all of them (until the event loop's next turn), not once per poll.
        key = (next_cursor, arrived, *(c.id for c in calls))
        rendered = woken.get(key)
        if rendered is None:
            if not woken:
                asyncio.get_running_loop().call_soon(woken.clear)
            rendered = woken[key] = orjson.dumps(_calls_body(calls, next_cursor, not arrived))
        return Response(rendered, media_type="application/json")

    @api.get("/calls/count", response_model=CountOut, tags=["calls"], openapi_extra=_documents(FilterQuery))
    async def count_calls(request: Request) -> Response:
        return JSONOut({"count": journal.count(_filter(FilterQuery, request).to_filter())})

    @api.get("/calls/stream", tags=["calls"], response_class=StreamingResponse, openapi_extra=_documents(StreamQuery))
    async def stream_calls(request: Request) -> StreamingResponse:
        """Server-Sent Events: each new matching call as `event: call`; with `after`, earlier ones first."""
        q = _filter(StreamQuery, request)
        f, heartbeat = q.to_filter(), q.heartbeat
        sub = journal.subscribe(f)

        async def events() -> AsyncIterator[bytes]:
            try:
                last = 0
                yield b": mockhub call stream\n\n"
                if f.after is not None:
                    # The earlier calls, a batch at a time from the journal: a reader that never reads
                    # keeps one batch alive, not a list of every matching call.
                    async for batch in _batches(journal, f, None):
                        for old in batch:
                            last = old.seq
                            yield _sse(old)
                while True:
                    call = await sub.get(timeout=heartbeat)
                    if call is None:
                        if sub.overflowed:
                            yield b"event: overflow\ndata: {}\n\n"
                            return
                        yield b": ping\n\n"
                    elif call.seq > last:
                        yield _sse(call)
            finally:
                sub.close()

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )

    @api.get("/calls/export", tags=["calls"], response_class=Response, openapi_extra=_documents(ExportQuery))
    async def export_calls(request: Request) -> Response:
        """The calls in memory as JSON Lines (one `GET /calls/{id}` record a line) or a HAR 1.2 log (HTTP only)."""
        q = _filter(ExportQuery, request)
        # Streamed a batch at a time (never built whole), so a 100,000-call export does not stall the others.
        batches = _batches(journal, q.to_filter(), q.limit)
        if q.fmt == "har":
            disposition = {"content-disposition": 'attachment; filename="mockhub.har"'}
            return StreamingResponse(har_chunks(batches, version), media_type="application/json", headers=disposition)
        return StreamingResponse(
            jsonl_chunks(batches),
            media_type="application/x-ndjson",
            headers={"content-disposition": 'attachment; filename="mockhub.jsonl"'},
        )

    @api.get("/calls/{call_id}", response_model=CallOut, tags=["calls"])
    async def get_call(call_id: str) -> Response:
        return JSONOut(_get(journal, call_id).to_api())

    @api.get("/calls/{call_id}/raw", tags=["calls"], response_class=Response)
    async def get_raw(call_id: str) -> Response:
        """The call's body byte-exact: an email's message source, a webhook's payload."""
        call = _get(journal, call_id)
        info = services.get(call.service)
        content_type = (info.raw_content_type if info else None) or call.headers.get("content-type")
        # Recorded bytes are untrusted: opened in a browser they must never run on mockhub's origin.
        return Response(call.body, media_type=content_type or "application/octet-stream", headers=_UNTRUSTED)

    @api.get("/calls/{call_id}/attachments/{index}", tags=["calls"], response_class=Response)
    async def get_attachment(call_id: str, index: Annotated[int, FastApiPath(ge=0)]) -> Response:
        """A file the call carried (the `index`-th of `data.attachments`: an attachment, an upload), byte-exact."""
        call = _get(journal, call_id)
        reader = state.attachments.get(call.service)
        LIMITS.set(state.limits)  # this request's own context (copied into the thread)
        try:
            if reader is None:
                found = None
            elif len(call.body) > state.parse_thread_bytes:  # taking a big body apart stays off the event loop
                found = await asyncio.to_thread(reader, call, index)
            else:
                found = reader(call, index)
        except (ValueError, RecursionError, ParseLimitExceeded) as exc:
            # The client chose the bytes: a body that cannot be taken apart is the caller's answer, not a 500.
            raise ApiError(422, "unreadable_body", f"call {call_id}'s body cannot be taken apart: {exc}") from None
        if found is None:
            raise ApiError(404, "attachment_not_found", f"call {call_id} has no attachment {index}")
        headers = dict(_UNTRUSTED)
        name = _download_name(found.filename)
        if name:
            headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        return Response(found.content, media_type=found.content_type, headers=headers)

    @api.delete("/calls", response_model=DeletedOut, tags=["calls"], openapi_extra=_documents(FilterQuery))
    async def delete_calls(request: Request) -> Response:
        """Forget the matching calls (all without filters). Faults and stubs stay."""
        return JSONOut({"deleted": await store.clear_calls(_filter(FilterQuery, request).to_filter())})

    # -- faults ------------------------------------------------------------------------------------

    @api.post("/faults", response_model=Fault, status_code=201, tags=["faults"])
    async def add_fault(
        spec: FaultSpec,
        namespace: Annotated[str | None, Query(description="shorthand for match.namespace")] = None,
    ) -> Response:
        """Add a fault rule; matching calls fail as it says (docs/faults.md)."""
        _known(spec.service, spec.preset)
        if namespace is not None:
            if spec.match.scope() not in (None, namespace):
                raise ApiError(422, "invalid_request", f"namespace: ?namespace={namespace} contradicts match.namespace")
            spec = spec.model_copy(update={"match": spec.match.model_copy(update={"namespace": namespace})})
        try:
            return JSONOut((await store.add_fault(spec)).model(), 201)
        except TooManyRules as exc:
            raise ApiError(409, "too_many_rules", str(exc)) from None

    @api.get("/faults", response_model=FaultList, tags=["faults"])
    async def list_faults(namespace: str | None = None) -> Response:
        faults = [r.model() for r in rules.faults(namespace)]
        return JSONOut(FaultList(faults=faults, count=len(faults)))

    @api.get("/faults/{fault_id}", response_model=Fault, tags=["faults"])
    async def get_fault(fault_id: str) -> Response:
        rule = rules.fault(fault_id)
        if rule is None:
            raise ApiError(404, "fault_not_found", f"no fault rule {fault_id}")
        return JSONOut(rule.model())

    @api.delete("/faults/{fault_id}", response_model=DeletedOut, tags=["faults"])
    async def delete_fault(fault_id: str) -> Response:
        if not await store.remove_fault(fault_id):
            raise ApiError(404, "fault_not_found", f"no fault rule {fault_id}")
        return JSONOut({"deleted": 1})

    @api.delete("/faults", response_model=DeletedOut, tags=["faults"])
    async def clear_faults(namespace: str | None = None) -> Response:
        return JSONOut({"deleted": await store.clear_faults(namespace)})

    # -- stubs -------------------------------------------------------------------------------------

    @api.post("/stubs", response_model=Stub, status_code=201, tags=["stubs"])
    async def add_stub(spec: StubSpec) -> Response:
        _check_stub(spec)
        try:
            return JSONOut((await store.add_stub(spec)).model(), 201)
        except TooManyRules as exc:
            raise ApiError(409, "too_many_rules", str(exc)) from None

    @api.get("/stubs", response_model=StubList, tags=["stubs"])
    async def list_stubs(namespace: str | None = None) -> Response:
        stubs = [r.model() for r in rules.stubs(namespace)]
        return JSONOut(StubList(stubs=stubs, count=len(stubs)))

    @api.get("/stubs/{stub_id}", response_model=Stub, tags=["stubs"])
    async def get_stub(stub_id: str) -> Response:
        rule = rules.stub(stub_id)
        if rule is None:
            raise ApiError(404, "stub_not_found", f"no stub {stub_id}")
        return JSONOut(rule.model())

    @api.delete("/stubs/{stub_id}", response_model=DeletedOut, tags=["stubs"])
    async def delete_stub(stub_id: str) -> Response:
        if not await store.remove_stub(stub_id):
            raise ApiError(404, "stub_not_found", f"no stub {stub_id}")
        return JSONOut({"deleted": 1})

    @api.delete("/stubs", response_model=DeletedOut, tags=["stubs"])
    async def clear_stubs(namespace: str | None = None) -> Response:
        return JSONOut({"deleted": await store.clear_stubs(namespace)})

    # -- limits ------------------------------------------------------------------------------------

    @api.post("/limits", response_model=Limit, status_code=201, tags=["limits"])
    async def add_limit(
        spec: LimitSpec,
        namespace: Annotated[str | None, Query(description="shorthand for match.namespace")] = None,
    ) -> Response:
        """Add a rate limit; calls beyond it get the fake's `rate_limited` answer (docs/limits.md)."""
        _known(spec.service)
        if namespace is not None:
            if spec.match.scope() not in (None, namespace):
                raise ApiError(422, "invalid_request", f"namespace: ?namespace={namespace} contradicts match.namespace")
            spec = spec.model_copy(update={"match": spec.match.model_copy(update={"namespace": namespace})})
        try:
            return JSONOut(rules.add_limit(spec).model(), 201)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        except TooManyRules as exc:
            raise ApiError(409, "too_many_rules", str(exc)) from None

    @api.get("/limits", response_model=LimitList, tags=["limits"])
    async def list_limits(namespace: str | None = None) -> Response:
        limits = [r.model() for r in rules.limits.rules(namespace)]
        return JSONOut(LimitList(limits=limits, count=len(limits)))

    @api.get("/limits/{limit_id}", response_model=Limit, tags=["limits"])
    async def get_limit(limit_id: str) -> Response:
        rule = rules.limits.get(limit_id)
        if rule is None:
            raise ApiError(404, "limit_not_found", f"no limit rule {limit_id}")
        return JSONOut(rule.model())

    @api.delete("/limits/{limit_id}", response_model=DeletedOut, tags=["limits"])
    async def delete_limit(limit_id: str) -> Response:
        if not rules.limits.remove(limit_id):
            raise ApiError(404, "limit_not_found", f"no limit rule {limit_id}")
        return JSONOut({"deleted": 1})

    @api.delete("/limits", response_model=DeletedOut, tags=["limits"])
    async def clear_limits(namespace: str | None = None) -> Response:
        return JSONOut({"deleted": rules.limits.clear(namespace)})

    # -- usage -------------------------------------------------------------------------------------

    @api.get("/usage", response_model=UsageOut, tags=["usage"], openapi_extra=_documents(UsageQuery))
    async def get_usage(request: Request) -> Response:
        """LLM requests and tokens summed from the journal, per service and model, with an estimated cost."""
        q = _filter(UsageQuery, request)
        calls = journal.iter_matching(q.to_filter())
        return JSONOut(summarize(calls, state.usage_readers, state.prices, q.model))

    @api.get("/usage/prices", response_model=PriceList, tags=["usage"])
    async def get_prices() -> Response:
        """The price table in force (USD per million tokens): the fakes' own, `llm_prices`' and PUT's."""
        return JSONOut(PriceList(prices=state.prices.table()))

    @api.put("/usage/prices", response_model=PriceList, tags=["usage"])
    async def put_prices(table: PriceTable) -> Response:
        """Set your prices over the built-in ones (`{"openai": {"gpt-4o": {"input": 2.5, "output": 10}}}`).

        A second PUT replaces the first; DELETE drops them.
        """
        _known_all(table)
        return JSONOut(PriceList(prices=state.prices.replace(table)))

    @api.delete("/usage/prices", response_model=PriceList, tags=["usage"])
    async def delete_prices() -> Response:
        """Drop the prices PUT set: the built-in ones (and `llm_prices`') are in force again."""
        return JSONOut(PriceList(prices=state.prices.clear()))

    def _known_all(table: PriceTable) -> None:
        for service in table:
            _known(service, where="prices")

    # -- reset and health --------------------------------------------------------------------------

    @api.post("/reset", response_model=ResetOut, tags=["admin"])
    async def reset(namespace: str | None = None) -> Response:
        """Forget calls, faults, stubs and limits (only those of `namespace` when given)."""
        calls = await store.clear_calls(CallFilter(namespace=namespace) if namespace else None)
        if state.store is None:
            state.on_reset(namespace)
        else:
            await store.reset_state(namespace)
        rules.limits.clear(namespace)
        faults, stubs = await store.clear_faults(namespace), await store.clear_stubs(namespace)
        return JSONOut({"calls": calls, "faults": faults, "stubs": stubs})

    # The dispatcher (Hub.__call__) answers GET /health, /livez and /readyz itself, so they work
    # before this API is built; these routes document them in /openapi.json with the same answers.
    @api.get("/health", response_model=HealthOut, tags=["admin"])
    async def health() -> Response:
        return JSONOut(state.health())

    @api.get("/livez", tags=["admin"])
    async def livez() -> Response:
        return JSONOut({"status": "ok"})

    @api.get("/readyz", tags=["admin"])
    async def readyz() -> Response:
        info = state.health()
        if info["status"] != "ok":
            return JSONOut({"status": info["status"]}, 503)
        return JSONOut({"status": "ok"})

    return api


_UNTRUSTED = {"content-security-policy": "sandbox; default-src 'none'", "x-content-type-options": "nosniff"}


def _download_name(filename: str | None) -> str | None:
    """The last path component of a sender-chosen file name: a download never names a folder."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return None if name in ("", ".", "..") else name


def _get(journal: Journal, call_id: str) -> Call:
    call = journal.get(call_id)
    if call is None:
        raise ApiError(404, "call_not_found", f"no call {call_id} (never recorded, forgotten or evicted)")
    return call


def _sse(call: Call) -> bytes:
    return b"id: %d\nevent: call\ndata: %s\n\n" % (call.seq, orjson.dumps(call.to_api()))
