"""Rate limits as rules: at most `requests` calls (and `tokens` tokens) per `per`, for each value of a key.

A limit rule matches calls like a fault or a stub (the same `Match`), and counts them per value of
its `key` (an API key, a channel, a sender: each fake declares the keys it can read from a call,
`Service.limit_keys`). The count is a sliding window: a request (or token) taken at time t is given
back at t + `per`. This is a token bucket whose tokens return exactly one period after they were
spent, which keeps the promise a rule reads as (never more than N in any period: 1,000 concurrent
requests against 100 per minute let exactly 100 through) and gives an exact `Retry-After`: the
time until enough of the window has expired for the refused call to pass.

The check and the take happen with no await in between (one event loop): two concurrent calls can
never both take the last request. A refused call takes nothing, so a client that waits the
`Retry-After` it was given passes on its next try. This module names no fake: the fakes register
their key readers and token counters (`LimitFacts`), and answer a refused call in their own shape.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mockhub.faults import Stage
from mockhub.filters import CallFilter, Match
from mockhub.journal import Call, format_time, new_id

__all__ = [
    "COMMON_KEYS",
    "KeyReader",
    "KeyState",
    "Limit",
    "LimitBook",
    "LimitFacts",
    "LimitRule",
    "LimitSpec",
    "Verdict",
    "Window",
    "period_seconds",
]

KeyReader = Callable[[Call], "str | Iterable[str] | None"]
"""Reads one key of a call: a value, several (each recipient counts on its own), or None (not known)."""

_PERIOD = re.compile(r"^([1-9][0-9]{0,6})(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# How many keys `GET /limits` shows per rule (the busiest first); a rule may see far more.
_SHOWN_KEYS = 100
# A rule forgets its empty windows when it holds this many keys (then twice as many as remain).
_SWEEP_KEYS = 10_000


def period_seconds(per: str) -> float:
    """`1s`, `1m`, `1h`, `1d` (any whole number of ms, s, m, h or d) in seconds; raises ValueError."""
    m = _PERIOD.match(per)
    if m is None:
        raise ValueError(f"per: {per!r} is not a period: a whole number and a unit, e.g. 1s, 1m, 1h, 1d (or 500ms)")
    return int(m.group(1)) * _UNIT[m.group(2)]


def _period(per: str) -> str:
    period_seconds(per)
    return per


@dataclass(frozen=True, slots=True)
class LimitFacts:
    """What a fake tells the limit book: the keys it can read from a call, and how it counts tokens."""

    keys: Mapping[str, KeyReader]
    # The tokens a call costs so far (the prompt before the answer; prompt + answer after), or None:
    # the fake counts no tokens and a `tokens` limit makes no sense for it.
    tokens: Callable[[Call], int] | None = None
    transport: str = "http"


def _namespace(call: Call) -> str:
    return call.namespace


COMMON_KEYS: dict[str, KeyReader] = {"namespace": _namespace}
"""Keys every fake provides (added to each fake's own)."""


class LimitSpec(BaseModel):
    """A limit rule as posted to `POST /limits` (docs/limits.md)."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(None, description="journal name of the fake; none = every service")
    match: Match = Field(default_factory=Match)
    key: str | None = Field(
        None,
        description="count separately per value of this key of a call (api_key, to, channel, from, model, "
        "namespace; `GET /services` lists each fake's `limit_keys`); none = one count for all matching calls",
    )
    requests: Annotated[int, Field(ge=1, le=10_000_000)] | None = Field(None, description="calls allowed per period")
    tokens: Annotated[int, Field(ge=1)] | None = Field(
        None, description="LLM tokens allowed per period (prompt and answer), for fakes that count tokens"
    )
    per: Annotated[str, AfterValidator(_period)] = Field("1m", description="the period: 1s, 1m, 1h, 1d (or 500ms)")
    stage: Stage | None = Field(
        None, description="a listener's session stage the limit counts (smtp; default: mail, one per message)"
    )
    code: Annotated[int, Field(ge=400, le=499)] | None = Field(
        None, description="smtp: the reply code beyond the limit (default 421, which closes the connection; 451)"
    )

    @model_validator(mode="after")
    def _counts_something(self) -> LimitSpec:
        if self.requests is None and self.tokens is None:
            raise ValueError("requests: a limit needs 'requests' or 'tokens' (or both)")
        return self


class KeyState(BaseModel):
    """One key's window: what it used in the last period and when it is whole again."""

    key: str
    requests: int
    tokens: int
    reset_s: float = Field(description="seconds until this key's window is empty again")


class Limit(LimitSpec):
    """A limit rule as the API shows it: the spec, its id, its counters and the busiest keys."""

    id: str
    created: str
    seen: int = Field(0, description="matching calls looked at")
    passed: int = Field(0, description="calls let through")
    limited: int = Field(0, description="calls refused beyond the limit")
    keys: list[KeyState] = Field(default_factory=list, description=f"the busiest keys (at most {_SHOWN_KEYS})")


class _Log:
    """One key's sliding window: (time, requests, tokens) entries, oldest first, and their sums."""

    __slots__ = ("entries", "requests", "tokens")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int, int]] = deque()
        self.requests = 0
        self.tokens = 0

    def expire(self, now: float, per: float) -> None:
        entries = self.entries
        while entries and entries[0][0] + per <= now:
            _, requests, tokens = entries.popleft()
            self.requests -= requests
            self.tokens -= tokens

    def take(self, now: float, requests: int, tokens: int) -> None:
        if requests or tokens:
            self.entries.append((now, requests, tokens))
            self.requests += requests
            self.tokens += tokens

    def wait(self, now: float, per: float, requests: int | None, tokens: int | None, cost: int) -> float | None:
        """Seconds until one more call costing `cost` tokens fits (0: now; None: never, it is too big)."""
        need_requests = self.requests + 1 - requests if requests is not None else 0
        need_tokens = self.tokens + cost - tokens if tokens is not None else 0
        if need_requests <= 0 and need_tokens <= 0:
            return 0.0
        if tokens is not None and cost > tokens:
            return None
        freed_requests = freed_tokens = 0
        for at, r, t in self.entries:
            freed_requests += r
            freed_tokens += t
            if freed_requests >= need_requests and freed_tokens >= need_tokens:
                return max(at + per - now, 0.0)
        return per  # unreachable while the sums hold; a full period is the safe answer

    def reset(self, now: float, per: float) -> float:
        """Seconds until the window is empty (the limit is whole again)."""
        return max(self.entries[-1][0] + per - now, 0.0) if self.entries else 0.0


@dataclass(frozen=True, slots=True)
class Window:
    """One dimension of a limit as a call saw it: the limit, what is left, seconds until it is whole."""

    limit: int
    remaining: int
    reset: float
    per: float


class LimitRule:
    """A live limit rule: its compiled match, the key it counts by and a window per key value."""

    def __init__(
        self, spec: LimitSpec, reader: KeyReader | None, stage: str | None, rule_id: str | None = None
    ) -> None:
        self.spec = spec
        self.id = rule_id or new_id("l_")
        self.per = period_seconds(spec.per)
        self.filter = CallFilter(service=spec.service, **spec.match.filters())
        self.namespace = spec.match.scope()
        self.regex = re.compile(spec.match.regex) if spec.match.regex else None
        self.data = spec.match.data
        self.reader = reader
        self.stage = stage
        self.created = time.time()
        self.logs: dict[str, _Log] = {}
        self._sweep_at = _SWEEP_KEYS
        self.seen = 0
        self.passed = 0
        self.limited = 0

    def applies_to(self, call: Call) -> bool:
        if not self.filter.matches(call):
            return False
        if self.regex is not None and self.regex.search(call.search_text()) is None:
            return False
        if self.data:
            return all(call.data.get(key) == value for key, value in self.data.items())
        return True

    def values(self, call: Call) -> list[str]:
        """The key values `call` counts against (one per recipient for a key that has several).

        A call without the key (a message list has no `From`) is not counted by a rule per that key.
        """
        if self.reader is None:
            return [""]
        value = self.reader(call)
        if value is None:
            return []
        if isinstance(value, str):
            return [value] if value else []
        return list(dict.fromkeys(str(v) for v in value if v))

    def log(self, value: str, now: float) -> _Log:
        log = self.logs.get(value)
        if log is None:
            if len(self.logs) >= self._sweep_at:
                self._sweep(now)
            log = self.logs[value] = _Log()
        else:
            log.expire(now, self.per)
        return log

    def _sweep(self, now: float) -> None:
        # Keys seen once (a recipient, a user) must not pile up: forget the windows that emptied.
        for value, log in list(self.logs.items()):
            log.expire(now, self.per)
            if not log.entries:
                del self.logs[value]
        self._sweep_at = max(2 * len(self.logs), _SWEEP_KEYS)

    def model(self) -> Limit:
        now = time.monotonic()
        states = []
        for value, log in list(self.logs.items()):
            log.expire(now, self.per)
            if not log.entries:
                del self.logs[value]  # an idle key costs nothing
                continue
            states.append(
                KeyState(key=value, requests=log.requests, tokens=log.tokens, reset_s=log.reset(now, self.per))
            )
        states.sort(key=lambda s: (-s.requests, -s.tokens, s.key))
        return Limit(
            **self.spec.model_dump(),
            id=self.id,
            created=format_time(self.created),
            seen=self.seen,
            passed=self.passed,
            limited=self.limited,
            keys=states[:_SHOWN_KEYS],
        )


@dataclass(slots=True)
class Verdict:
    """What the limits said about one call: refused (`rule` set) or let through, and the windows it saw."""

    rule: LimitRule | None
    retry_after: float
    reason: str
    key: str | None
    # The tokens counted when the call was let through (its prompt), so an answer's are charged on top.
    cost: int = 0
    # Every (rule, window) the call counted against, to read the headers from and charge answer tokens to.
    logs: list[tuple[LimitRule, _Log]] = field(default_factory=list)
    # A refused call: which of the rule's limits refused it (requests, tokens) and how much was used.
    dimension: str = ""
    used: int = 0

    @property
    def limited(self) -> bool:
        return self.rule is not None

    def charge(self, total: int) -> None:
        """The call cost `total` tokens in the end (an LLM's answer is known once made): count the rest."""
        tokens = total - self.cost
        if tokens <= 0 or self.rule is not None:
            return
        self.cost = total
        now = time.monotonic()
        for rule, log in self.logs:
            if rule.spec.tokens is not None:
                log.take(now, 0, tokens)

    def _window(self, dimension: str) -> Window | None:
        now = time.monotonic()
        best: Window | None = None
        for rule, log in self.logs:
            limit = rule.spec.requests if dimension == "requests" else rule.spec.tokens
            if limit is None:
                continue
            used = log.requests if dimension == "requests" else log.tokens
            window = Window(limit, max(limit - used, 0), log.reset(now, rule.per), rule.per)
            # The most restrictive one: least left, then the latest to be whole again.
            if best is None or (window.remaining, -window.reset) < (best.remaining, -best.reset):
                best = window
        return best

    def requests(self) -> Window | None:
        """The tightest request limit this call counted against (None: none)."""
        return self._window("requests")

    def tokens(self) -> Window | None:
        """The tightest token limit this call counted against (None: none)."""
        return self._window("tokens")

    def summary(self) -> dict[str, Any]:
        """What a refused call records in its `fault` field."""
        assert self.rule is not None
        return {
            "id": self.rule.id,
            "action": "limit",
            "preset": "rate_limited",
            "limit": True,
            "key": self.key,
            "retry_after": round(self.retry_after, 3),
            "reason": self.reason,
        }


def retry_seconds(wait: float) -> int:
    """A whole-second `Retry-After` a client may honour and then pass: never shorter than the wait."""
    return max(1, math.ceil(wait - 1e-9))


def retry_ms(wait: float) -> int:
    """`retry-after-ms`: the wait in whole milliseconds, rounded up (and at least 1)."""
    return max(1, math.ceil(wait * 1000))


class LimitBook:
    """Every limit rule, and the check the fakes' calls go through (`check`)."""

    def __init__(self) -> None:
        self._rules: dict[str, LimitRule] = {}
        # By (service, namespace) a rule is limited to (None: any), like the rule book's index.
        self._buckets: dict[tuple[str | None, str | None], dict[str, LimitRule]] = {}
        self.facts: dict[str, LimitFacts] = {}

    def register(self, service: str, facts: LimitFacts) -> None:
        """A fake's keys and token counter (the server registers each fake at start)."""
        self.facts[service] = facts

    def __len__(self) -> int:
        return len(self._rules)

    # -- the rules -----------------------------------------------------------------------------
    def validate(self, spec: LimitSpec) -> tuple[KeyReader | None, str | None]:
        """The key reader and the stage of `spec`; raises ValueError naming the field that does not fit."""
        facts = self.facts.get(spec.service) if spec.service is not None else None
        keys: Mapping[str, KeyReader] = facts.keys if facts is not None else COMMON_KEYS
        if spec.service is not None and facts is None and self.facts:
            raise ValueError(
                f"service: mockhub has no service {spec.service!r}; known: {', '.join(sorted(self.facts))}"
            )
        reader = None
        if spec.key is not None:
            reader = keys.get(spec.key)
            if reader is None:
                owner = f"service {spec.service!r}" if spec.service is not None else "a limit without a service"
                raise ValueError(f"key: {owner} has no key {spec.key!r}; valid keys: {', '.join(sorted(keys))}")
        if spec.tokens is not None:
            counting = sorted(name for name, f in self.facts.items() if f.tokens is not None)
            if spec.service is None or facts is None or facts.tokens is None:
                raise ValueError(f"tokens: only services that count tokens take a token limit: {', '.join(counting)}")
        transport = facts.transport if facts is not None else "http"
        if transport == "http":
            if spec.stage is not None or spec.code is not None:
                name = "stage" if spec.stage is not None else "code"
                listeners = sorted(n for n, f in self.facts.items() if f.transport != "http")
                raise ValueError(
                    f"{name}: only a limit on a session service ({', '.join(listeners) or 'smtp'}) takes a {name}"
                )
            return reader, None
        return reader, spec.stage or "mail"

    def add(self, spec: LimitSpec) -> LimitRule:
        reader, stage = self.validate(spec)
        rule = LimitRule(spec, reader, stage)
        self._rules[rule.id] = rule
        self._buckets.setdefault((spec.service, rule.namespace), {})[rule.id] = rule
        return rule

    def get(self, rule_id: str) -> LimitRule | None:
        return self._rules.get(rule_id)

    def rules(self, namespace: str | None = None) -> list[LimitRule]:
        return [r for r in self._rules.values() if namespace is None or r.namespace == namespace]

    def remove(self, rule_id: str) -> bool:
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return False
        key = (rule.spec.service, rule.namespace)
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.pop(rule_id, None)
            if not bucket:
                del self._buckets[key]
        return True

    def clear(self, namespace: str | None = None) -> int:
        doomed = self.rules(namespace)
        for rule in doomed:
            self.remove(rule.id)
        return len(doomed)

    def _candidates(self, service: str, namespace: str) -> Iterator[LimitRule]:
        get = self._buckets.get
        for bucket in (get((service, namespace)), get((service, None)), get((None, namespace)), get((None, None))):
            if bucket:
                yield from bucket.values()

    # -- the check -----------------------------------------------------------------------------
    def check(self, call: Call, stage: str | None = None) -> Verdict | None:
        """Count `call` against the limits that match it (at a session `stage`), or refuse it.

        None: no limit rule matches. Otherwise a `Verdict`: `rule` set when the call is refused
        (nothing taken; `retry_after` says when it would pass), else the windows it counted against.
        Check and take run without an await between them, so they are atomic in the event loop.
        """
        if not self._rules:
            return None
        matched = [r for r in self._candidates(call.service, call.namespace) if r.stage == stage and r.applies_to(call)]
        if not matched:
            return None
        now = time.monotonic()
        cost = 0
        if any(r.spec.tokens is not None for r in matched):
            facts = self.facts.get(call.service)
            if facts is not None and facts.tokens is not None:
                cost = max(int(facts.tokens(call)), 0)
        logs: list[tuple[LimitRule, _Log]] = []
        worst: tuple[float, LimitRule, str, str, str, int] | None = None
        for rule in matched:
            rule.seen += 1
            spec = rule.spec
            for value in rule.values(call):
                log = rule.log(value, now)
                logs.append((rule, log))
                wait = log.wait(now, rule.per, spec.requests, spec.tokens, cost)
                if wait == 0.0:
                    continue
                if wait is None:
                    dimension, used = "tokens", log.tokens
                    wait, reason = (
                        rule.per,
                        f"the call's {cost} tokens exceed the limit of {spec.tokens} per {spec.per}",
                    )
                elif spec.requests is not None and log.requests >= spec.requests:
                    dimension, used = "requests", log.requests
                    reason = f"{spec.requests} requests per {spec.per}"
                else:
                    dimension, used = "tokens", log.tokens
                    reason = f"{spec.tokens} tokens per {spec.per} ({log.tokens} used, {cost} asked)"
                if worst is None or wait > worst[0]:
                    worst = (wait, rule, value, reason, dimension, used)
        if worst is not None:
            wait, rule, value, reason, dimension, used = worst
            rule.limited += 1
            key = None if rule.reader is None else value
            reason = f"limited: {reason}" + (f" for {rule.spec.key} {value}" if key else "")
            return Verdict(rule, wait, reason, key, cost, logs, dimension, used)
        for _, log in logs:
            log.take(now, 1, cost)
        for rule in matched:
            rule.passed += 1
        return Verdict(None, 0.0, "", None, cost, logs)
