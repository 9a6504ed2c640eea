"""The rule book: fault rules and stubs, and which one applies to a call.

Rules match on the same fields as the `/calls` filters (a `Match` becomes a `CallFilter`, both
defined in `mockhub.filters`), so "the calls a fault hits" and "the calls a query finds" can never
disagree. The fault kinds and their options are in `mockhub.faults`. The fakes ask the rule book;
the rule book knows nothing of the fakes.
"""

from __future__ import annotations

import heapq
import itertools
import random
import re
import time
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mockhub.faults import HTTP, KINDS, PRESETS, FaultAction, FaultSpec, Headers, Preset, Stage
from mockhub.filters import CallFilter, Match
from mockhub.journal import Call, format_time, new_id
from mockhub.settings import LlmJitter, LlmSeed, LlmTokensPerS, LlmTtftMs

__all__ = [
    "Fault",
    "FaultSpec",
    "Match",
    "Preset",
    "RuleBook",
    "Stub",
    "StubReply",
    "StubResponse",
    "StubSpec",
    "TooManyRules",
    "ToolCall",
    "check_reply_fields",
    "reply_field_problems",
]
# Re-exported: the fault vocabulary lives in mockhub.faults, the match in mockhub.filters.
__all__ += ["PRESETS", "FaultAction", "FaultSpec", "Preset", "Stage"]


_order = itertools.count()


class _Rule:
    """What faults and stubs share: a service, a compiled match, counters."""

    def __init__(self, service: str | None, match: Match) -> None:
        self.service = service
        self.namespace = match.scope()
        self.filter = CallFilter(service=service, **match.filters())
        self.regex = re.compile(match.regex) if match.regex else None
        self.data = match.data
        self.created = time.time()
        # Creation order, global across faults and stubs: "newest first" when several buckets merge.
        self.order = next(_order)
        self.id = ""

    def applies_to(self, call: Call) -> bool:
        if not self.filter.matches(call):
            return False
        if self.regex is not None and self.regex.search(call.search_text()) is None:
            return False
        if self.data:
            return all(call.data.get(key) == value for key, value in self.data.items())
        return True


# --------------------------------------------------------------------------------------------------
# Faults


class Fault(FaultSpec):
    """A fault rule as the API shows it: the spec plus its id and counters."""

    id: str
    created: str
    seen: int = Field(0, description="matching calls looked at while active (those let through by `after` too)")
    fired: int = Field(0, description="calls this rule failed")
    remaining: int | None = Field(None, description="failures left; null = until deleted")


class FaultRule(_Rule):
    def __init__(self, spec: FaultSpec, rule_id: str | None = None, seed: int | None = None) -> None:
        super().__init__(spec.service, spec.match)
        self.spec = spec
        self.id = rule_id or new_id("f_")
        self.seen = 0
        self.fired = 0
        # Each rule draws from its own generator: with a seed, which matching calls it fails depends
        # only on the seed and the order of those calls, not on other rules or earlier tests.
        rule_seed = spec.seed if spec.seed is not None else seed
        self.random = random.Random(rule_seed) if rule_seed is not None else random.Random()

    @property
    def remaining(self) -> int | None:
        return None if self.spec.times is None else max(self.spec.times - self.fired, 0)

    @property
    def exhausted(self) -> bool:
        return self.spec.times is not None and self.fired >= self.spec.times

    def stage_applies(self, stage: str | None) -> bool:
        # HTTP calls have no stage; a session's rules without one act on the message (the DATA stage).
        if stage is None:
            return self.spec.stage is None and HTTP in KINDS[self.spec.action].transports
        return (self.spec.stage or "data") == stage

    def summary(self) -> dict[str, Any]:
        """What a call hit by this rule records in its `fault` field."""
        return {"id": self.id, "action": self.spec.action, "preset": self.spec.preset}

    def model(self) -> Fault:
        return Fault(
            **self.spec.model_dump(),
            id=self.id,
            created=format_time(self.created),
            seen=self.seen,
            fired=self.fired,
            remaining=self.remaining,
        )


# --------------------------------------------------------------------------------------------------
# Stubs


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    id: str | None = None


class StubReply(BaseModel):
    """A service-level reply that the fake renders in its provider's format.

    `content`, `tool_calls` and `finish_reason` are common to the LLM fakes; a fake's own fields
    (a delivery status, an error code) are declared by the fake (`Service.stub_reply`, listed in
    `GET /services`) and checked against it when the stub is added.
    """

    model_config = ConfigDict(extra="allow")

    content: str | None = Field(None, description="LLM reply text")
    tool_calls: list[ToolCall] = Field(default_factory=list, description="LLM tool calls")
    finish_reason: str | None = Field(None, description="override the stop/finish reason")

    def extra(self, name: str) -> Any:
        """A fake's own field of this reply (None when not given)."""
        return (self.model_extra or {}).get(name)


class StubResponse(BaseModel):
    """A raw HTTP answer, for any HTTP fake."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Annotated[int, Field(ge=100, le=599)] = 200
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    headers: Headers = Field(default_factory=dict)


class StubSpec(BaseModel):
    """A stub as posted to `POST /stubs` (docs/stubs.md)."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = None
    match: Match = Field(default_factory=Match)
    reply: StubReply | None = None
    response: StubResponse | None = None
    sequence: list[StubReply] | None = Field(
        None, description="replies answered in turn; the last one repeats until `times` runs out"
    )
    times: Annotated[int, Field(ge=1)] | None = None
    chunk_delay_ms: Annotated[int, Field(ge=0, le=60_000)] = 0
    # LLM timing for every reply of the stub (a reply's own fields win; unset: the llm_* settings).
    ttft_ms: LlmTtftMs | None = None
    tokens_per_s: LlmTokensPerS | None = None
    jitter: LlmJitter | None = None
    seed: LlmSeed = None

    @model_validator(mode="after")
    def _has_answer(self) -> StubSpec:
        given = sum(x is not None for x in (self.reply, self.response, self.sequence))
        if given == 0 and self.timed:
            # Timing alone: the default answer, paced (an LLM fake's reply without content scripts nothing).
            self.reply = StubReply()
            given = 1
        if given != 1:
            raise ValueError("a stub needs exactly one of 'reply', 'response' or 'sequence'")
        if self.sequence is not None and not self.sequence:
            raise ValueError("'sequence' needs at least one reply")
        return self

    @property
    def timed(self) -> bool:
        """Whether the stub gives LLM timing of its own."""
        return any(v is not None for v in (self.ttft_ms, self.tokens_per_s, self.jitter, self.seed))


def reply_field_problems(stub: Mapping[str, Any], own_fields: Mapping[str, type[BaseModel] | None]) -> list[str]:
    """What is wrong with the fake-specific fields of a stub's replies, as pydantic words it.

    `stub` is a stub as posted (a raw stub-file entry, or a `StubSpec` dumped). A fake declares its
    own reply fields (`Service.stub_reply`); without a `service`, a field any fake declares is
    allowed. Messages have pydantic's shape (`reply.mood: Extra inputs are not permitted`), so the
    API and stub files report them alike.
    """
    service = stub.get("service") if isinstance(stub.get("service"), str) else None
    replies: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(stub.get("reply"), Mapping):
        replies.append(("reply", stub["reply"]))
    if isinstance(stub.get("sequence"), list):
        replies += [(f"sequence.{i}", r) for i, r in enumerate(stub["sequence"]) if isinstance(r, Mapping)]
    models = {name: m for name, m in own_fields.items() if m is not None}
    chosen = [models[service]] if service in models else [] if service else list(models.values())
    allowed = {name for model in chosen for name in model.model_fields} | set(StubReply.model_fields)
    problems: list[str] = []
    for where, fields in replies:
        problems.extend(f"{where}.{name}: Extra inputs are not permitted" for name in sorted(set(fields) - allowed))
        for model in chosen:
            given = {k: v for k, v in fields.items() if k in model.model_fields}
            try:
                model.model_validate(given)
            except ValidationError as exc:
                for err in exc.errors():
                    problems.append(f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    return problems


def check_reply_fields(spec: StubSpec, own_fields: Mapping[str, type[BaseModel] | None]) -> None:
    """Raise ValueError when a reply of `spec` names a field its fake does not declare, or a bad value."""
    problems = reply_field_problems(spec.model_dump(by_alias=True), own_fields)
    if problems:
        raise ValueError("; ".join(problems))


class Stub(StubSpec):
    id: str
    created: str
    hits: int = 0


class StubRule(_Rule):
    def __init__(self, spec: StubSpec, rule_id: str | None = None) -> None:
        super().__init__(spec.service, spec.match)
        self.spec = spec
        self.id = rule_id or new_id("s_")
        self.hits = 0

    @property
    def exhausted(self) -> bool:
        return self.spec.times is not None and self.hits >= self.spec.times

    def take(self) -> StubHit:
        index = self.hits
        self.hits += 1
        spec = self.spec
        reply = spec.reply
        if spec.sequence is not None:
            reply = spec.sequence[min(index, len(spec.sequence) - 1)]
        return StubHit(self, reply, spec.response, index)

    def model(self) -> Stub:
        return Stub(
            **self.spec.model_dump(by_alias=True), id=self.id, created=format_time(self.created), hits=self.hits
        )


class StubHit:
    """The answer a stub gives to one call."""

    __slots__ = ("index", "reply", "response", "rule")

    def __init__(self, rule: StubRule, reply: StubReply | None, response: StubResponse | None, index: int) -> None:
        self.rule = rule
        self.reply = reply
        self.response = response
        self.index = index

    @property
    def chunk_delay_ms(self) -> int:
        return self.rule.spec.chunk_delay_ms

    def summary(self) -> dict[str, Any]:
        return {"id": self.rule.id, "index": self.index}


# --------------------------------------------------------------------------------------------------


class TooManyRules(Exception):
    """Adding a rule would exceed `max_rules` (MOCKHUB_MAX_RULES)."""


_R = TypeVar("_R", bound=_Rule)


def _newest(rule: _Rule) -> int:
    return rule.order


class _Index(Generic[_R]):
    """Rules by the (service, namespace) they are limited to (None: any), each bucket oldest first.

    A call (service S, namespace N) can only be matched by the rules of four buckets: (S, N),
    (S, any), (any, N) and (any, any). Looking only there keeps the cost of a call near constant
    however many rules other services and namespaces hold (a suite's thousands of namespaces).
    """

    def __init__(self) -> None:
        self._buckets: dict[tuple[str | None, str | None], dict[str, _R]] = {}

    def add(self, rule: _R) -> None:
        self._buckets.setdefault((rule.service, rule.namespace), {})[rule.id] = rule

    def discard(self, rule: _R) -> None:
        key = (rule.service, rule.namespace)
        bucket = self._buckets.get(key)
        if bucket is not None and bucket.pop(rule.id, None) is not None and not bucket:
            del self._buckets[key]

    def clear(self) -> None:
        self._buckets.clear()

    def candidates(self, service: str, namespace: str) -> Iterator[_R]:
        """The rules that could match a call of `service` in `namespace`, newest first."""
        get = self._buckets.get
        found = [
            b for b in (get((service, namespace)), get((service, None)), get((None, namespace)), get((None, None))) if b
        ]
        if not found:
            return iter(())
        if len(found) == 1:
            return reversed(found[0].values())
        return heapq.merge(*(reversed(b.values()) for b in found), key=_newest, reverse=True)


class RuleBook:
    """Every fault rule and stub, newest first when several match.

    `_faults` / `_stubs` hold every rule (what the API lists); the indexes hold the live ones (an
    exhausted rule leaves its index, and stays listed with its counters).
    """

    def __init__(self, seed: int | None = None, max_rules: int | None = None) -> None:
        self._faults: dict[str, FaultRule] = {}
        self._stubs: dict[str, StubRule] = {}
        # The default seed of probabilistic faults (MOCKHUB_SEED); each rule seeds its own generator.
        self.seed = seed
        self.max_rules = max_rules
        self._live_faults: _Index[FaultRule] = _Index()
        self._live_stubs: _Index[StubRule] = _Index()

    def _room(self) -> None:
        if self.max_rules is not None and len(self._faults) + len(self._stubs) >= self.max_rules:
            raise TooManyRules(
                f"mockhub already holds {self.max_rules} faults and stubs, its max_rules (MOCKHUB_MAX_RULES): "
                "delete some (DELETE /faults, DELETE /stubs, POST /reset) or raise the bound"
            )

    # -- faults --------------------------------------------------------------------------------
    def add_fault(self, spec: FaultSpec, rule_id: str | None = None) -> FaultRule:
        self._room()
        rule = FaultRule(spec, rule_id, seed=self.seed)
        self._faults[rule.id] = rule
        self._live_faults.add(rule)
        return rule

    def fault(self, rule_id: str) -> FaultRule | None:
        return self._faults.get(rule_id)

    def faults(self, namespace: str | None = None) -> list[FaultRule]:
        return [r for r in self._faults.values() if namespace is None or r.namespace == namespace]

    def remove_fault(self, rule_id: str) -> bool:
        rule = self._faults.pop(rule_id, None)
        if rule is None:
            return False
        self._live_faults.discard(rule)
        return True

    def clear_faults(self, namespace: str | None = None) -> int:
        if namespace is None:
            removed = len(self._faults)
            self._faults.clear()
            self._live_faults.clear()
            return removed
        doomed = self.faults(namespace)
        for rule in doomed:
            del self._faults[rule.id]
            self._live_faults.discard(rule)
        return len(doomed)

    def fault_for(self, call: Call, stage: str | None = None) -> FaultRule | None:
        """The fault to apply to `call` (at a session `stage`), counting it as seen/fired; or None."""
        if not self._faults:
            return None
        for rule in self._live_faults.candidates(call.service, call.namespace):
            if not rule.stage_applies(stage) or not rule.applies_to(call):
                continue
            spec = rule.spec
            rule.seen += 1
            if rule.seen <= spec.after:
                continue
            if spec.probability < 1.0 and rule.random.random() >= spec.probability:
                continue
            rule.fired += 1
            if rule.exhausted:
                self._live_faults.discard(rule)
            return rule
        return None

    # -- stubs ---------------------------------------------------------------------------------
    def add_stub(self, spec: StubSpec, rule_id: str | None = None) -> StubRule:
        self._room()
        rule = StubRule(spec, rule_id)
        self._stubs[rule.id] = rule
        self._live_stubs.add(rule)
        return rule

    def stub(self, rule_id: str) -> StubRule | None:
        return self._stubs.get(rule_id)

    def stubs(self, namespace: str | None = None) -> list[StubRule]:
        return [r for r in self._stubs.values() if namespace is None or r.namespace == namespace]

    def remove_stub(self, rule_id: str) -> bool:
        rule = self._stubs.pop(rule_id, None)
        if rule is None:
            return False
        self._live_stubs.discard(rule)
        return True

    def clear_stubs(self, namespace: str | None = None) -> int:
        if namespace is None:
            removed = len(self._stubs)
            self._stubs.clear()
            self._live_stubs.clear()
            return removed
        doomed = self.stubs(namespace)
        for rule in doomed:
            del self._stubs[rule.id]
            self._live_stubs.discard(rule)
        return len(doomed)

    def stub_for(self, call: Call, replies: bool = True) -> StubHit | None:
        """The stub answering `call`, counted as a hit; `replies=False` considers raw `response` stubs only."""
        if not self._stubs:
            return None
        for rule in self._live_stubs.candidates(call.service, call.namespace):
            if not replies and rule.spec.response is None:
                continue
            if rule.applies_to(call):
                hit = rule.take()
                if rule.exhausted:
                    self._live_stubs.discard(rule)
                return hit
        return None

    def reset(self, namespace: str | None = None) -> None:
        self.clear_faults(namespace)
        self.clear_stubs(namespace)

    # -- for a shared store, which counts hits itself (atomically, server-side) ----------------
    def fault_candidates(self, call: Call, stage: str | None = None) -> Iterator[FaultRule]:
        """The live fault rules matching `call` at `stage`, newest first, not counted."""
        if not self._faults:
            return
        for rule in self._live_faults.candidates(call.service, call.namespace):
            if rule.stage_applies(stage) and rule.applies_to(call):
                yield rule

    def stub_candidates(self, call: Call, replies: bool = True) -> Iterator[StubRule]:
        """The live stubs matching `call`, newest first, not counted."""
        if not self._stubs:
            return
        for rule in self._live_stubs.candidates(call.service, call.namespace):
            if (replies or rule.spec.response is not None) and rule.applies_to(call):
                yield rule

    def retire(self, rule: FaultRule | StubRule) -> None:
        """Take an exhausted rule out of the live index (it stays listed with its counters)."""
        if isinstance(rule, FaultRule):
            self._live_faults.discard(rule)
        else:
            self._live_stubs.discard(rule)
