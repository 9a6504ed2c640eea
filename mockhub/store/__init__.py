"""The store: where the journal's calls and the rule book's counters live (docs/store.md).

`Store` is the interface the pipeline, the SMTP fake and the inspection API write through, and
its own default implementation, `memory`: the process's `Journal` and `RuleBook`, exactly as
without a store (no extra work on the hot path: the pipeline calls the journal directly when
`store.shared` is False). A shared store (`redis://`, `rediss://`, `unix://`: `mockhub.store.redis`)
keeps the journal as a log every process reads, numbers calls and counts rule hits server-side,
and makes any number of `mockhub serve` processes one mockhub.

Another engine is one more entry in `ENGINES` (URL scheme -> `module:Class`), a `Store` subclass:
the fakes never see which one runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mockhub.filters import CallFilter
from mockhub.journal import Call, Journal
from mockhub.rules import FaultRule, FaultSpec, RuleBook, StubHit, StubRule, StubSpec

__all__ = ["ENGINES", "StateChannel", "Store", "StoreError", "StoreUnavailable", "open_store"]


class StoreError(Exception):
    """The store URL is wrong, or its engine cannot be used (a clear message for `serve` to print)."""


class StoreUnavailable(Exception):
    """The shared store cannot be reached: the call is not acknowledged (the fakes answer 503)."""


class Store:
    """The in-memory store (`memory`, the default): this process's journal and rule book."""

    kind = "memory"
    # False: nothing is shared, and the hot paths call the journal and rule book directly.
    shared = False

    def __init__(self, journal: Journal, rules: RuleBook, url: str = "memory") -> None:
        self.journal = journal
        self.rules = rules
        self.url = url
        # Makes this process's fakes forget state of their own (set by the server).
        self.on_reset: Callable[[str | None], None] = lambda namespace: None

    async def start(self) -> None:
        """Connect and load what the store holds; raises StoreUnavailable when it cannot."""

    async def close(self) -> None:
        """Stop background work and close connections."""

    def status(self) -> str:
        """`/health`'s `store`: `memory`, `ok` or `unavailable`."""
        return "memory"

    async def sync(self, rules: bool = False) -> None:
        """Bring this process's view up to date before a read (calls; with `rules`, rule counters too)."""

    # -- calls ---------------------------------------------------------------------------------
    async def append(self, call: Call) -> Call:
        """Record `call` (numbered); returns once it is kept: only then may it be acknowledged."""
        return self.journal.append(call)

    def append_soon(self, call: Call) -> None:
        """Record a call no answer waits for (a refused SMTP command); errors are logged, not raised."""
        self.journal.append(call)

    async def resized(self, call: Call, old_size: int) -> None:
        """A recorded call was completed (a finished stream)."""
        self.journal.resized(call, old_size)

    async def clear_calls(self, call_filter: CallFilter | None) -> int:
        return self.journal.clear(call_filter)

    # -- the fakes' own state ------------------------------------------------------------------
    def channel(self, owner: str, apply: Callable[[dict[str, Any]], None]) -> StateChannel:
        """The channel through which the fake `owner` changes state of its own (see `StateChannel`)."""
        return StateChannel(apply)

    async def reset_state(self, namespace: str | None) -> None:
        """`POST /reset`: every process's fakes forget their own state (of `namespace`; all when None)."""
        self.on_reset(namespace)

    def counts(self) -> dict[str, Any]:
        """`/health`'s journal counts."""
        journal = self.journal
        return {
            "calls": len(journal),
            "evicted": journal.evicted,
            "last_seq": journal.last_seq,
            "body_bytes": journal.body_bytes,
            "held_bytes": journal.held_bytes,
        }

    # -- rules ---------------------------------------------------------------------------------
    async def fault_for(self, call: Call, stage: str | None = None) -> FaultRule | None:
        return self.rules.fault_for(call, stage)

    async def stub_for(self, call: Call, replies: bool = True) -> StubHit | None:
        return self.rules.stub_for(call, replies)

    async def add_fault(self, spec: FaultSpec) -> FaultRule:
        return self.rules.add_fault(spec)

    async def remove_fault(self, rule_id: str) -> bool:
        return self.rules.remove_fault(rule_id)

    async def clear_faults(self, namespace: str | None = None) -> int:
        return self.rules.clear_faults(namespace)

    async def add_stub(self, spec: StubSpec) -> StubRule:
        return self.rules.add_stub(spec)

    async def remove_stub(self, rule_id: str) -> bool:
        return self.rules.remove_stub(rule_id)

    async def clear_stubs(self, namespace: str | None = None) -> int:
        return self.rules.clear_stubs(namespace)


class StateChannel:
    """A fake's own state (Twilio's stored messages), kept alike in every process that shares a store.

    The fake keeps its state in its own structures and changes it only through `publish(event)`:
    the store applies each event, in one order, in every process (`apply(event)`, a JSON object).
    Before reading its state, a fake awaits `fresh()`: every event published anywhere before is
    applied then. In memory, `publish` applies at once and `fresh` has nothing to do.
    """

    def __init__(self, apply: Callable[[dict[str, Any]], None]) -> None:
        self.apply = apply

    async def publish(self, event: dict[str, Any]) -> None:
        self.apply(event)

    async def fresh(self) -> None:
        """Apply every event published before now, in any process."""


# URL scheme -> the engine's class, imported only when a URL names it (`redis` is an optional extra).
ENGINES: dict[str, str] = {
    "redis": "mockhub.store.redis:RedisStore",
    "rediss": "mockhub.store.redis:RedisStore",
    "unix": "mockhub.store.redis:RedisStore",
}


def open_store(url: str, journal: Journal, rules: RuleBook) -> Store:
    """The store a URL names (`memory`, `redis://host:port/db`, `rediss://...`, `unix:///path?db=0`)."""
    if url in ("", "memory", "memory://"):
        return Store(journal, rules)
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    target = ENGINES.get(scheme)
    if target is None:
        known = ", ".join(["memory", *(f"{s}://" for s in ENGINES)])
        raise StoreError(f"store: {url!r} is not a store URL (one of {known})")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StoreError(
            f"store: {url.partition('://')[0]}:// needs the `redis` package: pip install 'mockhub[store]' ({exc})"
        ) from None
    engine: type[Store] = getattr(module, class_name)
    return engine(journal, rules, url)
