"""The keyword options of `fault(...)` and `stub(...)`, spelled once for both clients (and checked against
the rule models of `mockhub.rules` by the tests), and how they become a `FaultSpec` / `StubSpec`.

`hub.fault("slack", preset="rate_limited", times=2, path="/api/chat.postMessage")`: every option except
the match shortcuts (and the stub's reply/response shortcuts) is a field of the spec, validated by it;
defaults are the spec's own (a fault fails `times=1` call; `times=None`: until deleted).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, TypedDict

from mockhub.faults import Stage
from mockhub.rules import FaultAction, FaultSpec, Match, Preset, StubReply, StubResponse, StubSpec

__all__ = ["FaultOptions", "MatchOptions", "StubOptions", "fault_spec", "stub_spec"]


class MatchOptions(TypedDict, total=False):
    """Which calls a rule applies to: a whole `Match`, and/or its fields as shortcuts (they win)."""

    match: Match | Mapping[str, Any] | None
    method: str | None
    path: str | None
    host: str | None
    contains: str | None
    regex: str | None
    to: str | None
    subject: str | None
    data: dict[str, Any] | None


class FaultOptions(MatchOptions, total=False):
    """The options of `fault(...)`: the fields of `FaultSpec` (docs/faults.md) plus the match shortcuts."""

    preset: Preset | None
    action: FaultAction
    status: int | None
    body: str | dict[str, Any] | list[Any] | None
    headers: dict[str, str] | None
    delay_ms: int | None
    jitter_ms: int
    times: int | None
    after: int
    probability: float
    after_chunks: int
    stage: Stage | None
    code: int | None
    message: str | None
    seed: int | None


class StubOptions(MatchOptions, total=False):
    """The options of `stub(...)`: the fields of `StubSpec` (docs/stubs.md), the match shortcuts, and
    shortcuts for its answer: `content` / `tool_calls` (a `reply`), `status` / `json` / `body` / `headers`
    (a raw HTTP `response`)."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    reply: StubReply | dict[str, Any] | None
    response: StubResponse | dict[str, Any] | None
    sequence: list[StubReply | dict[str, Any]] | None
    status: int | None
    json: Any
    body: str | None
    headers: dict[str, str] | None
    times: int | None
    chunk_delay_ms: int
    ttft_ms: int | None
    tokens_per_s: float | None
    jitter: float | None
    seed: int | None


MATCH_SHORTCUTS = tuple(k for k in MatchOptions.__annotations__ if k != "match")
REPLY_SHORTCUTS = ("content", "tool_calls")
RESPONSE_SHORTCUTS = ("status", "json", "body", "headers")


def _admits_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None):
        return True
    union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    return union and type(None) in typing.get_args(annotation)


def _given(model: type[FaultSpec] | type[StubSpec], options: dict[str, Any]) -> dict[str, Any]:
    """`options` without the Nones that only mean "not given" (a field that takes no None, e.g. headers)."""
    fields = model.model_fields
    return {k: v for k, v in options.items() if v is not None or (k in fields and _admits_none(fields[k].annotation))}


def _match(namespace: str | None, options: dict[str, Any]) -> Match:
    base: Match | Mapping[str, Any] | None = options.pop("match", None)
    # A plain dict is the JSON form the docs show (`match={"to": ...}`): validated as a Match.
    if base is not None and not isinstance(base, Match):
        base = Match.model_validate(base)
    fields = base.model_dump(exclude_none=True) if base is not None else {}
    for key in MATCH_SHORTCUTS:
        if (value := options.pop(key, None)) is not None:
            fields[key] = value
    if namespace is not None:
        fields.setdefault("namespace", namespace)
    return Match(**fields)


def fault_spec(service: str | None, namespace: str | None, options: FaultOptions) -> FaultSpec:
    """The `FaultSpec` of `fault(service, **options)` from a client bound to `namespace`."""
    rest: dict[str, Any] = dict(options)
    match = _match(namespace, rest)
    return FaultSpec.model_validate({**_given(FaultSpec, rest), "service": service, "match": match})


def stub_spec(service: str | None, namespace: str | None, options: StubOptions) -> StubSpec:
    """The `StubSpec` of `stub(service, **options)` from a client bound to `namespace`."""
    rest: dict[str, Any] = dict(options)
    match = _match(namespace, rest)
    content, tool_calls = rest.pop("content", None), rest.pop("tool_calls", None)
    if content is not None or tool_calls is not None:
        if rest.get("reply") is not None:
            raise ValueError("give either `reply` or its shortcuts `content` / `tool_calls`, not both")
        rest["reply"] = StubReply.model_validate({"content": content, "tool_calls": tool_calls or []})
    status, json, body, headers = (rest.pop(k, None) for k in RESPONSE_SHORTCUTS)
    if status is not None or json is not None or body is not None or headers is not None:
        if rest.get("response") is not None:
            raise ValueError("give either `response` or its shortcuts `status` / `json` / `body` / `headers`")
        raw: dict[str, Any] = {"status": status or 200, "headers": headers or {}}
        if json is not None:
            raw["json"] = json
        if body is not None:
            raw["body"] = body
        rest["response"] = StubResponse.model_validate(raw)
    return StubSpec.model_validate({**_given(StubSpec, rest), "service": service, "match": match})
