"""Inbound simulation: `POST /simulate/{service}/{event}` delivers what a provider would send to an application.

An inbound SMS to a Twilio Messaging webhook, a Slack button click, an inbound email, a Telegram
update: each fake declares the events it can send (`Service.simulations()`, with a pydantic body
model and a builder that signs the request as the provider does); this module is the one generic
route that validates the body, delivers the request to the application's URL, records it as an
outbound call in the namespace (with the application's answer), lets the fake read the answer
(a TwiML reply becomes outbound SMS calls), and says what the application answered.

The target is the caller's to choose, so it passes the same checks as every outbound call
(`ServiceContext.outbound_refusal`: `--callback-allow`, never mockhub's own inspection API), and
the whole exchange is bounded (`timeout`, at most `MAX_ANSWER` bytes of the answer read): a target
that is down, slow or answers garbage gives a clear answer and blocks nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import inspect
import time
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import orjson
from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request

from mockhub.api import ApiError, JSONOut
from mockhub.journal import Call, new_id
from mockhub.outbound import MAX_RECORDED_ANSWER
from mockhub.services.base import Service, ServiceContext, Simulation, SimulationBody, SimulationContext

if TYPE_CHECKING:
    pass

__all__ = ["MAX_ANSWER", "SimulationResult", "Simulator", "simulate_router"]

# Bytes of the application's answer read and kept: the target is not the thing mockhub bounds elsewhere.
# What the application's answer is read up to: the one bound of every outbound exchange.
MAX_ANSWER = MAX_RECORDED_ANSWER


class AnswerOut(BaseModel):
    """What the application answered (as a call record's `response`)."""

    status: int
    headers: dict[str, str]
    body: str
    body_encoding: Literal["utf-8", "base64"] = Field(description="base64 when the body is not valid UTF-8")


class SimulationResult(BaseModel):
    """The answer of `POST /simulate/{service}/{event}`: what was delivered and what the application said."""

    service: str
    event: str
    namespace: str
    url: str
    delivered: bool = Field(description="the application answered (any HTTP status); false: unreachable, timed out")
    ok: bool = Field(description="delivered and answered 2xx")
    status: int | None = Field(description="the application's HTTP status")
    response: AnswerOut | None = Field(description="the application's answer: status, headers, body")
    truncated: bool = Field(False, description=f"the answer was longer than {MAX_ANSWER} bytes and was cut there")
    error: str | None = Field(description="why there is no answer (connection refused, timed out, not HTTP)")
    call_id: str = Field(description="the recorded outbound call (`GET /calls/{id}`)")
    caused: list[str] = Field(
        default_factory=list, description="calls the answer caused, e.g. outbound SMS from a TwiML reply"
    )
    duration_ms: float
    data: dict[str, Any] = Field(description="what was sent, as recorded in the call's `data`")


class SimulationInfo(BaseModel):
    service: str
    event: str
    aliases: list[str] = Field(description="other names the event answers to")
    description: str
    body: dict[str, Any] = Field(description="JSON schema of the event's body")


class SimulationList(BaseModel):
    simulations: list[SimulationInfo]
    count: int


def _text(body: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


class Simulator:
    """Delivers simulated events, through the fakes' one outbound sender (`ServiceContext.outbound`)."""

    def __init__(self, services: list[Service], ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.events: dict[str, dict[str, Simulation]] = {}
        # Every name an event answers to, normalised (lower case, `-` for `_`), by service.
        self._aliases: dict[str, dict[str, tuple[str, Simulation]]] = {}
        for service in services:
            events = service.simulations()
            if events:
                self.events[service.name] = events
                self._aliases[service.name] = {
                    name.lower().replace("_", "-"): (event, sim)
                    for event, sim in events.items()
                    for name in (event, *sim.aliases)
                }
        self._running: set[asyncio.Task[SimulationResult]] = set()

    def simulation(self, service: str, event: str) -> tuple[str, Simulation]:
        """The declared event (its own name, and it) by any of its names, or a 404 naming what exists."""
        events = self.events.get(service)
        if events is None:
            known = "; ".join(f"{name}: {', '.join(evs)}" for name, evs in sorted(self.events.items()))
            close = difflib.get_close_matches(service, self.events, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ApiError(404, "unknown_service", f"no simulations for service {service!r}{hint}; known: {known}")
        found = self._aliases[service].get(event.lower().replace("_", "-"))
        if found is None:
            close = difflib.get_close_matches(event, events, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ApiError(
                404,
                "unknown_event",
                f"service {service!r} simulates no event {event!r}{hint}; it simulates: {', '.join(events)}",
            )
        return found

    async def run(self, service: str, event: str, raw: bytes, namespace: str, base_url: str) -> SimulationResult:
        event, simulation = self.simulation(service, event)
        try:
            given = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ApiError(422, "invalid_request", "the body must be a JSON object")
        try:
            body = simulation.body.model_validate(given)
        except ValidationError as exc:
            errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None
        where = SimulationContext(namespace, base_url)
        try:
            sent = simulation.build(body, where)
        except ValueError as exc:  # what the model cannot say: a header value with a line break
            raise ApiError(422, "invalid_request", str(exc)) from None
        url: str | None = sent.url or body.url
        if not url:
            raise ApiError(422, "invalid_request", "url: Field required")
        parts = urlsplit(url)
        call = Call(
            id=new_id("c_"),
            service=service,
            method=sent.method,
            path=url,
            namespace=namespace,
            direction="outbound",
            host=parts.netloc,
            scheme=parts.scheme,
            headers=sent.headers,
            body=sent.body,
            data={**sent.data, "simulation": event, "url": url},
        )
        # Its own task: a caller that hangs up mid-delivery does not cancel it, so it is still recorded.
        task = asyncio.get_running_loop().create_task(self._deliver(event, simulation, body, where, call))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return await asyncio.shield(task)

    async def _deliver(
        self, event: str, simulation: Simulation, body: SimulationBody, where: SimulationContext, call: Call
    ) -> SimulationResult:
        """Check the target, send, record the delivery and what its answer caused, and say what happened."""
        url = call.path
        started = time.perf_counter()
        refusal: str | None = None
        truncated = False
        try:
            # One bound for everything, the target's name resolution (the own-listener check) included.
            async with asyncio.timeout(body.timeout):
                refusal = await self.ctx.outbound_refusal(url)
                if refusal is None:
                    call.response, truncated = await self.ctx.outbound.exchange(call, body.timeout)
        except TimeoutError:
            call.data["error"] = f"timed out: no complete answer within {body.timeout} s"
        except Exception as exc:  # an unreachable or broken target is recorded and answered, never raised
            call.data["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if refusal is not None:
            call.data["error"] = refusal
            await self.ctx.record(call)
            raise ApiError(403, "target_refused", f"{refusal} (recorded as call {call.id})")
        if truncated:
            call.data["answer_truncated"] = True
        call.duration_ms = (time.perf_counter() - started) * 1000
        caused: list[Call] = []
        if call.response is not None and simulation.answered is not None:
            try:
                answered = simulation.answered(body, where, call, call.response)
                caused = await answered if inspect.isawaitable(answered) else answered
            except Exception as exc:  # the answer is the application's: a fake must not fail on it
                call.data["answer_error"] = f"{type(exc).__name__}: {exc}"
        for follow in caused:
            follow.id = follow.id or new_id("c_")
            follow.data.setdefault("caused_by", call.id)
        if caused:
            call.data["caused"] = [c.id for c in caused]
        # Through the store when processes share one, so every replica lists the delivery.
        await self.ctx.record(call)
        for follow in caused:
            await self.ctx.record(follow)
        answer = None
        if call.response is not None:
            text, encoding = _text(call.response.body)
            answer = AnswerOut(
                status=call.response.status,
                headers=call.response.headers,
                body=text,
                body_encoding=encoding,
            )
        status = call.response.status if call.response is not None else None
        return SimulationResult(
            service=call.service,
            event=event,
            namespace=call.namespace,
            url=url,
            delivered=call.response is not None,
            ok=status is not None and 200 <= status < 300,
            status=status,
            response=answer,
            truncated=truncated,
            error=call.data.get("error"),
            call_id=call.id,
            caused=[c.id for c in caused],
            duration_ms=round(call.duration_ms, 3),
            data=call.data,
        )


def simulate_router(simulator: Simulator) -> APIRouter:
    """`GET /simulate` (what can be simulated) and `POST /simulate/{service}/{event}`."""
    router = APIRouter(tags=["simulate"])

    @router.get("/simulate", response_model=SimulationList)
    async def list_simulations(service: str | None = None) -> JSONOut:
        """Every inbound event the fakes can deliver, with the JSON schema of its body."""
        if service is not None and service not in simulator.events:
            simulator.simulation(service, "")
        items = [
            SimulationInfo(
                service=name,
                event=event,
                aliases=list(sim.aliases),
                description=sim.description,
                body=sim.body.model_json_schema(),
            )
            for name, events in simulator.events.items()
            if service in (None, name)
            for event, sim in events.items()
        ]
        return JSONOut(SimulationList(simulations=items, count=len(items)))

    @router.post(
        "/simulate/{service}/{event}",
        response_model=SimulationResult,
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}},
    )
    async def simulate(
        service: str,
        event: str,
        request: Request,
        namespace: str = Query("default", min_length=1, description="the namespace the delivery is recorded in"),
    ) -> JSONOut:
        """Deliver a provider's inbound event (signed as the provider signs it) to the application's `url`."""
        root = str(request.base_url).rstrip("/")
        base = root if namespace == "default" else f"{root}/ns/{quote(namespace, safe='')}"
        result = await simulator.run(service, event, await request.body(), namespace, base)
        return JSONOut(result)

    return router
