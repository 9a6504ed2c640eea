"""The journal: every call mockhub receives, in arrival order.

The journal is touched by one event loop only (docs/architecture.md), so it uses no locks. Appending is on
the hot path of every fake: it does constant work per call, whatever the journal's size, apart from
one predicate test per registered waiter or subscriber.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mockhub.filters import MESSAGES, CallFilter, features_of, message_facts, recipients_of, subjects_of, texts_of
from mockhub.safedata import safe_data

__all__ = [
    "SUMMARIES",
    "Call",
    "CallFilter",
    "Journal",
    "ResponseRecord",
    "SinkError",
    "Subscription",
    "encode_body",
    "new_id",
]

_random_bits = random.Random().getrandbits


def new_id(prefix: str) -> str:
    """A unique id that sorts by time: milliseconds (12 hex digits), then 80 random bits (20 hex digits).

    Cheap on purpose (it runs for every call): no system call, no pure-Python encoding.
    """
    return f"{prefix}{time.time_ns() // 1_000_000:012x}{_random_bits(80):020x}"


def encode_body(body: bytes) -> tuple[str, str]:
    """Render bytes for JSON: UTF-8 text as is, anything else byte-exact as base64."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


_second_cache: list[Any] = [-1, ""]


def format_time(epoch: float) -> str:
    """`datetime.fromtimestamp(epoch, UTC)` as `...T10:00:00.123456Z`, rounding the same way (half even).

    strftime costs ~10 µs and every record written or listed needs a time, so the part up to the
    second, which changes once a second, is cached.
    """
    sec = int(epoch)
    micro = round((epoch - sec) * 1_000_000)
    if micro >= 1_000_000:
        sec += 1
        micro -= 1_000_000
    if _second_cache[0] != sec:
        _second_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second_cache[0] = sec
    return f"{_second_cache[1]}.{micro:06d}Z"


@dataclass(slots=True)
class ResponseRecord:
    """What mockhub answered."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass(slots=True, eq=False)
class Call:
    """One recorded call (docs/inspection-api.md shows its JSON)."""

    service: str
    method: str
    path: str
    namespace: str = "default"
    direction: str = "inbound"
    # Where the call was going: the Host (or proxy target), without the scheme's default port.
    host: str = ""
    scheme: str = "http"
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    data: dict[str, Any] = field(default_factory=dict)
    response: ResponseRecord | None = None
    fault: dict[str, Any] | None = None
    stub: dict[str, Any] | None = None
    duration_ms: float = 0.0
    time: float = field(default_factory=time.time)
    id: str = ""
    seq: int = 0
    # True when `data` was cut or cleaned to stay readable (mockhub.safedata); the body is untouched.
    data_truncated: bool = False
    # The `data` object `check_data` last passed (the pipeline checks it before the fake answers).
    _checked: dict[str, Any] | None = None
    # Caches for the filters; derived from body and data, filled on first use.
    _text: str | None = None
    _recipients: frozenset[str] | None = None
    _subjects: list[str] | None = None
    _features: frozenset[str] | None = None

    @property
    def size(self) -> int:
        """Bytes of body this call holds, for the journal's byte budget."""
        return len(self.body) + (len(self.response.body) if self.response else 0)

    def search_text(self) -> str:
        """The text `contains` searches: the body, plus decoded text fields (an email's MIME parts)."""
        if self._text is None:
            self._text = "\n".join([self.body.decode("utf-8", "replace"), *texts_of(self.service, self.data)])
        return self._text

    def recipients(self) -> frozenset[str]:
        """Every recipient named in `data`, normalised for the `to` filter."""
        if self._recipients is None:
            self._recipients = recipients_of(self.service, self.data)
        return self._recipients

    def subjects(self) -> list[str]:
        """The subjects the `subject` filter looks at (a message sent under several has several)."""
        if self._subjects is None:
            self._subjects = subjects_of(self.service, self.data)
        return self._subjects

    def features(self) -> frozenset[str]:
        """What the `has` filter sees: `link`, `code`, `attachment`."""
        if self._features is None:
            self._features = features_of(self.service, self.data)
        return self._features

    def summary(self) -> str:
        """One line telling what the call was, in its fake's words (the UI's list, the CLI, failure messages)."""
        summarize = SUMMARIES.get(self.service)
        try:
            return summarize(self) if summarize is not None else default_summary(self)
        except Exception:  # a summary must never break a read of the journal
            return default_summary(self)

    def invalidate(self) -> None:
        """Forget derived caches after `data` or `body` changed (a stream finished, say)."""
        self._text = None
        self._recipients = None
        self._subjects = None
        self._features = None

    def check_data(self, again: bool = False) -> None:
        """Make `data` safe for every reader (cut at `MAX_DATA_DEPTH`, flagged) when it is not as it is.

        Checked once per `data` object unless `again` (a finished stream rewrote it): what a handler
        adds in place after the pipeline's check is mockhub's own and shallow.
        """
        if self.data is self._checked and not again:
            return
        safe = safe_data(self.data)
        if safe is not None:
            self.data = safe
            self.data_truncated = True
            self.invalidate()
        self._checked = self.data

    def to_dict(self) -> dict[str, Any]:
        body, encoding = encode_body(self.body)
        response: dict[str, Any] | None = None
        if self.response is not None:
            rbody, rencoding = encode_body(self.response.body)
            response = {
                "status": self.response.status,
                "headers": self.response.headers,
                "body": rbody,
                "body_encoding": rencoding,
            }
        return {
            "id": self.id,
            "seq": self.seq,
            "time": format_time(self.time),
            "service": self.service,
            "namespace": self.namespace,
            "direction": self.direction,
            "method": self.method,
            "scheme": self.scheme,
            "host": self.host,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": body,
            "body_encoding": encoding,
            "data": self.data,
            "data_truncated": self.data_truncated,
            "response": response,
            "fault": self.fault,
            "stub": self.stub,
            "duration_ms": round(self.duration_ms, 3),
        }

    def to_api(self) -> dict[str, Any]:
        """`to_dict()` plus the fake's one-line `summary`: what the inspection API serves (not the record file)."""
        record = self.to_dict()
        record["summary"] = self.summary()
        return record


class _Waiter:
    """A long poll: the calls matching its filter so far, and how many it waits for."""

    __slots__ = ("filter", "future", "matched", "needed")

    def __init__(self, call_filter: CallFilter, matched: list[Call], needed: int, future: asyncio.Future[None]) -> None:
        self.filter = call_filter
        self.matched = matched
        self.needed = needed
        self.future = future


class Subscription:
    """A live feed of new calls matching a filter (for SSE). Iterate it; close it when done."""

    def __init__(self, journal: Journal, call_filter: CallFilter, maxsize: int) -> None:
        self.filter = call_filter
        self.queue: asyncio.Queue[Call | None] = asyncio.Queue(maxsize)
        self._journal = journal
        self.overflowed = False

    def offer(self, call: Call) -> None:
        try:
            self.queue.put_nowait(call)
        except asyncio.QueueFull:
            # A consumer that cannot keep up is cut off rather than letting memory grow without bound.
            self.overflowed = True
            self._journal.unsubscribe(self)

    async def get(self, timeout: float | None = None) -> Call | None:
        """The next call, or None on timeout (the caller sends a heartbeat) or when cut off."""
        if self.overflowed and self.queue.empty():
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._journal.unsubscribe(self)


Sink = Callable[[Call], None]


class SinkError(Exception):
    """A sink could not keep a call (the record file's disk is full): the call is not acknowledged.

    Raised out of `Journal.append`; the call is then neither stored nor numbered, and the caller
    answers an error (HTTP 500, SMTP 451) instead of an acknowledgement.
    """


SUMMARIES: dict[str, Callable[[Call], str]] = {}
"""service name -> its one-line summary of a call; filled by each fake's class (`Service.__init_subclass__`)."""


def default_summary(call: Call) -> str:
    """`to: text` from the common `data` fields, else the body on one line."""
    data = call.data
    for key in ("text", "body", "summary", "reply", "subject", "content"):
        value = data.get(key)
        if isinstance(value, str) and value:
            recipient = data.get("to") or data.get("channel")
            return f"{recipient}: {value}" if isinstance(recipient, str) else value
    body = call.body[:300].decode("utf-8", "replace")
    return " ".join(body.split())


class Journal:
    """Ordered, bounded, queryable store of calls, with waiters and subscribers."""

    def __init__(self, max_calls: int = 100_000, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self._calls: deque[Call] = deque()
        self._by_id: dict[str, Call] = {}
        # Per-service and per-namespace views keep the common filtered queries from scanning everything.
        self._by_service: dict[str, deque[Call]] = {}
        self._by_namespace: dict[str, deque[Call]] = {}
        self._waiters: list[_Waiter] = []
        self._subscribers: set[Subscription] = set()
        self._sinks: list[Sink] = []
        self._update_sinks: list[Sink] = []
        self._seq = 0
        self._bytes = 0
        self.evicted = 0

    # -- writing -------------------------------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        """Call `sink(call)` synchronously on every append, before the fake answers."""
        self._sinks.append(sink)

    def add_update_sink(self, sink: Sink) -> None:
        """Call `sink(call)` when a call recorded earlier is completed (a stream that finished)."""
        self._update_sinks.append(sink)

    def append(self, call: Call) -> Call:
        call.check_data()  # before any sink or reader sees it: nothing a client sends poisons a read
        self._seq += 1
        call.seq = self._seq
        if not call.id:
            call.id = new_id("c_")
        if call.service in MESSAGES:
            # A message's links and codes, read once here so every reader (filters, API, record file) has them.
            message_facts(call.service, call.data)
        try:
            for sink in self._sinks:
                sink(call)
        except SinkError:
            self._seq -= 1  # never acknowledged: the next call takes its number
            raise
        self._store(call)
        self._publish(call)
        return call

    def accept(self, call: Call) -> None:
        """Store a call numbered elsewhere (a shared store's log, in seq order): waiters and subscribers
        wake as for `append`; sinks do not run (the process that took the call ran its own)."""
        self._seq = max(self._seq, call.seq)
        self._store(call)
        self._publish(call)

    def _publish(self, call: Call) -> None:
        if self._waiters:
            self._wake(call)
        if self._subscribers:
            for sub in tuple(self._subscribers):
                if sub.filter.matches(call):
                    sub.offer(call)

    def restore(self, calls: Iterable[Call]) -> int:
        """Load calls recorded earlier (replay), keeping their seq; new calls continue after them."""
        loaded = 0
        for call in sorted(calls, key=lambda c: c.seq):
            if call.seq <= self._seq:
                call.seq = self._seq + 1
            self._seq = call.seq
            if not call.id:
                call.id = new_id("c_")
            if call.service in MESSAGES:
                message_facts(call.service, call.data)  # a record written before links and codes were read
            self._store(call)
            loaded += 1
        return loaded

    def _store(self, call: Call) -> None:
        self._calls.append(call)
        self._by_id[call.id] = call
        self._index(call)
        self._bytes += call.size
        while len(self._calls) > self.max_calls or (self._bytes > self.max_bytes and len(self._calls) > 1):
            self._evict_oldest()

    def _index(self, call: Call) -> None:
        by_service = self._by_service.get(call.service)
        if by_service is None:
            by_service = self._by_service[call.service] = deque()
        by_service.append(call)
        by_namespace = self._by_namespace.get(call.namespace)
        if by_namespace is None:
            by_namespace = self._by_namespace[call.namespace] = deque()
        by_namespace.append(call)

    def _evict_oldest(self) -> None:
        call = self._calls.popleft()
        del self._by_id[call.id]
        # The oldest call overall is also the oldest in its own views.
        self._by_service[call.service].popleft()
        self._by_namespace[call.namespace].popleft()
        self._bytes -= call.size
        self.evicted += 1

    def resized(self, call: Call, old_size: int, sinks: bool = True) -> None:
        """Account for a call whose bodies grew after it was appended (a finished stream)."""
        call.check_data(again=True)
        self._bytes += call.size - old_size
        if sinks:
            for sink in self._update_sinks:
                sink(call)

    def _wake(self, call: Call) -> None:
        still: list[_Waiter] = []
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if waiter.filter.matches(call):
                waiter.matched.append(call)
                if len(waiter.matched) >= waiter.needed:
                    waiter.future.set_result(None)
                    continue
            still.append(waiter)
        self._waiters = still

    def clear(self, call_filter: CallFilter | None = None) -> int:
        """Forget the calls matching `call_filter` (all when None); returns how many were forgotten."""
        if call_filter is None or call_filter.empty:
            removed = len(self._calls)
            self._calls.clear()
            self._by_id.clear()
            self._by_service.clear()
            self._by_namespace.clear()
            self._bytes = 0
            return removed
        doomed_ids = {c.id for c in self._candidates(call_filter) if call_filter.matches(c)}
        if not doomed_ids:
            return 0
        remaining = [c for c in self._calls if c.id not in doomed_ids]
        self._calls = deque(remaining)
        self._by_service.clear()
        self._by_namespace.clear()
        for call in remaining:
            self._index(call)
        for cid in doomed_ids:
            del self._by_id[cid]
        self._bytes = sum(c.size for c in remaining)
        return len(doomed_ids)

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._calls)

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def body_bytes(self) -> int:
        return self._bytes

    def get(self, call_id: str) -> Call | None:
        return self._by_id.get(call_id)

    def _candidates(self, f: CallFilter) -> deque[Call]:
        """The smallest stored view that can hold every call matching `f`."""
        best = self._calls
        if f.service is not None:
            best = min(best, self._by_service.get(f.service, deque()), key=len)
        if f.namespace is not None:
            best = min(best, self._by_namespace.get(f.namespace, deque()), key=len)
        return best

    def iter_matching(self, f: CallFilter, newest_first: bool = False) -> Iterator[Call]:
        source = self._candidates(f)
        if f.after is not None and not newest_first:
            # Calls after a seq are at the right end: walk back to the first one, then forward.
            tail: list[Call] = []
            for call in reversed(source):
                if call.seq <= f.after:
                    break
                tail.append(call)
            tail.reverse()
            return (c for c in tail if f.matches(c))
        ordered: Iterable[Call] = reversed(source) if newest_first else source
        return (c for c in ordered if f.matches(c))

    def query(self, f: CallFilter, limit: int | None = None, newest_first: bool = False) -> list[Call]:
        result: list[Call] = []
        for call in self.iter_matching(f, newest_first):
            result.append(call)
            if limit is not None and len(result) >= limit:
                break
        return result

    def count(self, f: CallFilter) -> int:
        if f.empty:
            return len(self._calls)
        # A count by namespace or by service alone is the length of its index (the plugin's common case).
        if f.only("namespace"):
            return len(self._by_namespace.get(f.namespace or "", ()))
        if f.only("service"):
            return len(self._by_service.get(f.service or "", ()))
        return sum(1 for _ in self.iter_matching(f))

    async def wait(self, f: CallFilter, min_count: int, timeout: float) -> tuple[list[Call], bool]:
        """The calls matching `f` (oldest first) once at least `min_count` do, and True; or, when
        `timeout` runs out first, those there are and False.

        The journal is scanned once, when the wait starts; later calls are tested one at a time as
        they are appended, so waking up costs the same whatever the journal's size.
        """
        matched = self.query(f)
        if len(matched) >= min_count:
            return matched, True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(f, matched, min_count, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
            arrived = True
        except TimeoutError:
            arrived = False
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        # Calls forgotten (DELETE /calls) or evicted while waiting are not answered.
        by_id = self._by_id
        return [c for c in waiter.matched if by_id.get(c.id) is c], arrived

    def subscribe(self, f: CallFilter, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, f, maxsize)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
