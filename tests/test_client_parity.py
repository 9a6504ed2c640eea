"""`MockHub` and `AsyncMockHub` stay twins: the same public names, the same parameters, async where the
sync one does I/O. And the options of `fault(...)` / `stub(...)` stay those of the rule models."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

import pytest

from mockhub.client import AsyncMockHub, AsyncRule, FaultOptions, LimitOptions, MatchOptions, MockHub, StubOptions
from mockhub.client.options import fault_spec, limit_spec, stub_spec
from mockhub.limits import LimitSpec
from mockhub.rules import FaultSpec, Match, StubSpec

# The documented differences: how each closes, and which context-manager protocol it speaks.
SYNC_ONLY = {"close", "__enter__", "__exit__"}
ASYNC_ONLY = {"aclose", "__aenter__", "__aexit__"}
# No I/O: plain methods on both.
LOCAL = {"namespaced", "address", "__init__", "__repr__"}
# Build a rule locally and return an AsyncRule (`await` it or `async with` it) on the async client.
RULE_BUILDERS = {"fault", "stub", "limit", "add_fault", "add_stub", "add_limit"}
# Parameters whose annotation names the client's own httpx type.
OWN_TYPES = {("__init__", "client"): ("httpx.Client | None", "httpx.AsyncClient | None")}


def public(cls: type) -> dict[str, Any]:
    names = {n for n in dir(cls) if not n.startswith("_")} | {"__init__", "__repr__"}
    names |= {n for n in ("__enter__", "__exit__", "__aenter__", "__aexit__") if hasattr(cls, n)}
    return {n: inspect.getattr_static(cls, n) for n in names}


SYNC, ASYNC = public(MockHub), public(AsyncMockHub)


def params(member: Any) -> list[tuple[str, Any, Any, Any]]:
    signature = inspect.signature(member)
    return [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values() if p.name != "self"]


def test_the_same_public_names() -> None:
    assert set(SYNC) - SYNC_ONLY == set(ASYNC) - ASYNC_ONLY
    assert set(SYNC) >= SYNC_ONLY and set(ASYNC) >= ASYNC_ONLY


@pytest.mark.parametrize("name", sorted(set(SYNC) - SYNC_ONLY))
def test_the_same_kind_and_parameters(name: str) -> None:
    sync, aio = SYNC[name], ASYNC[name]
    assert isinstance(sync, property) == isinstance(aio, property), f"{name}: a property on only one client"
    if isinstance(sync, property):
        return
    got_sync, got_async = params(sync), params(aio)
    for i, (pname, *_) in enumerate(got_sync):
        if (name, pname) in OWN_TYPES:
            assert (got_sync[i][3], got_async[i][3]) == OWN_TYPES[name, pname]
            got_sync[i] = got_async[i] = (pname, None, None, None)
    assert got_sync == got_async, f"{name}: the clients' parameters differ"


@pytest.mark.parametrize("name", sorted(set(ASYNC) - ASYNC_ONLY))
def test_async_where_the_sync_client_does_io(name: str) -> None:
    sync, aio = SYNC[name], ASYNC[name]
    if isinstance(sync, property):
        returns = inspect.signature(aio.fget).return_annotation
        if name == "smtp_port":  # asks /health: `await hub.smtp_port`
            assert returns == "Awaitable[int | None]"
        else:
            assert returns == inspect.signature(sync.fget).return_annotation
        return
    assert not (inspect.iscoroutinefunction(sync) or inspect.isasyncgenfunction(sync))
    is_async = inspect.iscoroutinefunction(aio) or inspect.isasyncgenfunction(aio)
    if name in LOCAL:
        assert not is_async
    elif name in RULE_BUILDERS:
        assert not is_async and inspect.signature(aio).return_annotation.startswith("AsyncRule[")
    else:
        assert is_async, f"AsyncMockHub.{name} does I/O and must be async"


def test_the_context_managers() -> None:
    assert inspect.iscoroutinefunction(AsyncMockHub.__aenter__) and inspect.iscoroutinefunction(AsyncMockHub.aclose)
    assert params(MockHub.__exit__) == params(AsyncMockHub.__aexit__)


def test_async_rules_are_awaitable_and_async_context_managers() -> None:
    assert hasattr(AsyncRule, "__await__") and hasattr(AsyncRule, "__aenter__") and hasattr(AsyncRule, "__aexit__")


# -- the options against the rule models ----------------------------------------------------------------


def test_match_options_are_the_match_fields() -> None:
    # `namespace` is the client's own (a namespaced client), not an option.
    assert set(MatchOptions.__annotations__) - {"match"} == set(Match.model_fields) - {"namespace"}


def test_fault_options_are_the_fault_spec_fields() -> None:
    own = set(FaultOptions.__annotations__) - set(MatchOptions.__annotations__)
    assert own == set(FaultSpec.model_fields) - {"service", "match"}
    hints = typing.get_type_hints(FaultOptions)
    for name in own:  # the same type (an option may also take None: "not given")
        assert bare(hints[name]) == bare(FaultSpec.model_fields[name].annotation), name


def test_limit_options_are_the_limit_spec_fields() -> None:
    own = set(LimitOptions.__annotations__) - set(MatchOptions.__annotations__)
    assert own == set(LimitSpec.model_fields) - {"service", "match"}
    hints = typing.get_type_hints(LimitOptions)
    for name in own:
        assert bare(hints[name]) == bare(LimitSpec.model_fields[name].annotation), name
    spec = limit_spec("openai", "ns-1", {"key": "api_key", "requests": 2, "per": "1s", "path": "/v1/*"})
    assert (spec.key, spec.requests, spec.per, spec.tokens) == ("api_key", 2, "1s", None)
    assert spec.match == Match(path="/v1/*", namespace="ns-1")
    assert limit_spec("slack", None, {"requests": 1}).per == "1m"


def bare(hint: Any) -> set[Any]:
    """The members of a union without None and without `Annotated` constraints."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return {typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in args} - {type(None)}


def test_stub_options_are_the_stub_spec_fields_and_shortcuts() -> None:
    own = set(StubOptions.__annotations__) - set(MatchOptions.__annotations__)
    shortcuts = {"content", "tool_calls", "status", "json", "body", "headers"}
    assert own - shortcuts == set(StubSpec.model_fields) - {"service", "match"}


def test_options_keep_the_defaults_of_the_models() -> None:
    fault = fault_spec("slack", None, {"preset": "rate_limited"})
    assert (fault.times, fault.action, fault.probability, fault.headers) == (1, "error", 1.0, {})
    assert fault_spec("slack", None, {"status": 500, "times": None}).times is None
    assert fault_spec(None, "ns-1", {"status": 500, "headers": None, "path": "/x"}).match == Match(
        path="/x", namespace="ns-1"
    )
    stub = stub_spec("openai", None, {"content": "hi", "match": Match(path="/v1/*"), "contains": "x"})
    assert stub.reply is not None and stub.reply.content == "hi" and stub.times is None
    assert stub.match == Match(path="/v1/*", contains="x")
    raw = stub_spec("webhook", None, {"headers": {"a": "b"}})
    assert raw.response is not None and (raw.response.status, raw.response.headers) == (200, {"a": "b"})


def test_unknown_options_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        fault_spec("slack", None, {"preset": "rate_limited", "tmies": 2})  # type: ignore[typeddict-unknown-key]
    with pytest.raises(ValueError, match="extra"):
        stub_spec("slack", None, {"content": "x", "sequnce": []})  # type: ignore[typeddict-unknown-key]


def test_every_attribute_of_the_client_models_is_described() -> None:
    # docs/client-and-plugin.md's model tables are generated from these descriptions (docs/hooks.py).
    from mockhub.client.models import Call, CallResponse, FaultHit, StubHit

    for model in (Call, CallResponse, FaultHit, StubHit):
        assert [n for n, f in model.model_fields.items() if not f.description] == [], model.__name__
