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
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from mockhub.filters import MESSAGES, CallFilter, features_of, message_facts, recipients_of, subjects_of, texts_of
from mockhub.safedata import safe_data

__all__ = [
    "CALL_OVERHEAD",
    "SUBSCRIBER_MAX_BYTES",
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

CALL_OVERHEAD = 1024
"""Bytes a recorded call holds besides its bodies, headers and `data`: the Call and its dicts, the
id, the response record, the filters' caches. Measured with tracemalloc (tests/test_memory.py
checks the whole estimate against the server's RSS)."""

# What one parsed element of `data` (a JSON value, a form field) costs beyond its text: a str or int
# object header, a dict or list slot. A separator (`,` in JSON, `&` in a form) marks one element.
_ELEMENT_OVERHEAD = 64
_HEADER_OVERHEAD = 120  # a header's two str objects and its dict slot, beyond the name's and value's text
SUBSCRIBER_MAX_BYTES = 64 * 1024 * 1024
"""A live feed is cut off once this many bytes of calls (by `Call.size`; at most the journal's
budget) wait unread: a reader that far behind would be sent what memory cannot keep."""


def _seq(call: Call) -> int:
    return call.seq


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
    # What the journal counted for this call (`size` when stored), so eviction takes back the same.
    _held: int = 0
    _held_body: int = 0
    # Caches for the filters; derived from body and data, filled on first use.
    _text: str | None = None
    _recipients: frozenset[str] | None = None
    _subjects: list[str] | None = None
    _features: frozenset[str] | None = None

    @property
    def body_size(self) -> int:
        """Bytes of body (request and answer) this call holds."""
        return len(self.body) + (len(self.response.body) if self.response else 0)

    @property
    def size(self) -> int:
        """Bytes this call really holds, for the journal's byte budget (`max_journal_bytes`).

        The bodies, plus an estimate of the rest measured with tracemalloc: a fixed overhead, the
        headers, and `data`, which mirrors the body it was parsed from (its text once more, plus
        an object per element). Counting bodies only let RSS reach 2.2x the budget. Cheap on
        purpose: it runs twice per call (stored, evicted), and `bytes.count` is a C scan.
        """
        body = self.body
        held = len(body) + CALL_OVERHEAD
        if self.response is not None:
            held += len(self.response.body) + _headers_size(self.response.headers)
        held += _headers_size(self.headers)
        if self.data:
            held += len(body) + _ELEMENT_OVERHEAD * (_elements(body) + len(self.data))
        return held

    @property
    def held(self) -> int:
        """What the journal counted for this call when it stored it (its `size` then; 0 before)."""
        return self._held

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


_SAMPLE = 64 * 1024


def _elements(body: bytes) -> int:
    """About how many elements (`,` or `&` separated) a body holds: counted in its first 64 KiB,
    extrapolated beyond, so a 10 MiB body costs what a 64 KiB one does."""
    if len(body) <= _SAMPLE:
        return body.count(b",") + body.count(b"&")
    seen = body.count(b",", 0, _SAMPLE) + body.count(b"&", 0, _SAMPLE)
    return seen * len(body) // _SAMPLE


def _filter_key(f: CallFilter) -> tuple[Any, ...]:
    """What groups long polls: their filters' values, lists (`has`) as tuples so that they hash."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in f.values.items()))


def _headers_size(headers: dict[str, str]) -> int:
    return sum(len(k) + len(v) + _HEADER_OVERHEAD for k, v in headers.items())


class _Waiter:
    """A long poll: how many calls matched its filter so far, the ids of those it will answer, and how
    many it waits for.

    It keeps ids (the call's own id string: a pointer each), never calls, and at most `keep` of them:
    a long poll with a huge `min` must not keep every call it counted alive after the journal evicted
    it. Oldest first it keeps the first `keep`; newest first, the last `keep`.
    """

    __slots__ = ("count", "future", "ids", "keep", "needed")

    def __init__(
        self, count: int, ids: list[str] | deque[str], keep: int | None, needed: int, future: asyncio.Future[None]
    ) -> None:
        self.count = count
        self.ids = ids
        self.keep = keep
        self.needed = needed
        self.future = future


class Subscription:
    """A live feed of new calls matching a filter (for SSE). Iterate it; close it when done.

    The queue holds call ids, not calls, so a reader that stops reading keeps nothing alive that the
    journal evicted; it is cut off once `maxsize` calls or `max_bytes` bytes of them wait unread.
    """

    def __init__(self, journal: Journal, call_filter: CallFilter, maxsize: int, max_bytes: int | None = None) -> None:
        self.filter = call_filter
        self.queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue(maxsize)
        self._journal = journal
        self.max_bytes = max_bytes if max_bytes is not None else min(journal.max_bytes, SUBSCRIBER_MAX_BYTES)
        self.pending_bytes = 0
        self.overflowed = False

    def offer(self, call: Call) -> None:
        size = call._held
        if self.pending_bytes + size > self.max_bytes and not self.queue.empty():
            self._overflow()
            return
        try:
            self.queue.put_nowait((call.id, size))
        except asyncio.QueueFull:
            self._overflow()
            return
        self.pending_bytes += size

    def _overflow(self) -> None:
        # A consumer that cannot keep up is cut off rather than letting memory grow without bound.
        self.overflowed = True
        self._journal.unsubscribe(self)

    async def get(self, timeout: float | None = None) -> Call | None:
        """The next call still in the journal, or None on timeout (the caller sends a heartbeat) or when cut off."""
        while True:
            if self.overflowed and self.queue.empty():
                return None
            try:
                entry = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                return None
            if entry is None:
                return None
            call_id, size = entry
            self.pending_bytes -= size
            call = self._journal.get(call_id)
            if call is not None:  # forgotten or evicted while it waited: nothing left to send
                return call

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
        # Long polls grouped by filter: a new call is matched once per distinct filter, not once per waiter.
        self._waiters: dict[tuple[Any, ...], tuple[CallFilter, list[_Waiter]]] = {}
        self._subscribers: set[Subscription] = set()
        self._sinks: list[Sink] = []
        self._update_sinks: list[Sink] = []
        self._seq = 0
        self._bytes = 0  # what the calls hold (`Call.size`), held within max_bytes
        self._body_bytes = 0  # their bodies alone
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
        call._held, call._held_body = call.size, call.body_size
        self._bytes += call._held
        self._body_bytes += call._held_body
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
        self._bytes -= call._held
        self._body_bytes -= call._held_body
        self.evicted += 1

    def resized(self, call: Call, old_size: int = 0, old_body_size: int | None = None, sinks: bool = True) -> None:
        """Account for a call whose bodies grew after it was appended (a finished stream).

        What the call was counted for when stored is on the call itself (`held`), so `old_size` and
        `old_body_size` (its `size` and `body_size` before the change) are no longer needed.
        """
        call.check_data(again=True)
        if self._by_id.get(call.id) is call:  # an evicted or forgotten call no longer counts
            held, body = call.size, call.body_size
            self._bytes += held - call._held
            self._body_bytes += body - call._held_body
            call._held, call._held_body = held, body
        if sinks:
            for sink in self._update_sinks:
                sink(call)

    def _wake(self, call: Call) -> None:
        call_id = call.id
        for call_filter, waiters in self._waiters.values():
            if not call_filter.matches(call):
                continue
            for waiter in waiters:
                if waiter.future.done():
                    continue
                waiter.count += 1
                ids = waiter.ids
                if isinstance(ids, deque) or waiter.keep is None or len(ids) < waiter.keep:
                    ids.append(call_id)  # a deque (newest first) drops its oldest by itself
                if waiter.count >= waiter.needed:
                    waiter.future.set_result(None)

    def clear(self, call_filter: CallFilter | None = None) -> int:
        """Forget the calls matching `call_filter` (all when None); returns how many were forgotten."""
        if call_filter is None or call_filter.empty:
            removed = len(self._calls)
            self._calls.clear()
            self._by_id.clear()
            self._by_service.clear()
            self._by_namespace.clear()
            self._bytes = 0
            self._body_bytes = 0
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
        self._bytes = sum(c._held for c in remaining)
        self._body_bytes = sum(c._held_body for c in remaining)
        return len(doomed_ids)

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._calls)

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def body_bytes(self) -> int:
        """Bytes of request and answer bodies held."""
        return self._body_bytes

    @property
    def held_bytes(self) -> int:
        """What the held calls cost by `Call.size` (bodies, headers, data, overhead): what `max_bytes` bounds."""
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

    def iter_matching(self, f: CallFilter, newest_first: bool = False, before: int | None = None) -> Iterator[Call]:
        """The calls matching `f` (with `before`, only those with a smaller seq), lazily.

        Every view is in seq order, so `after` and `before` are found by bisection, not by a walk.
        """
        source = self._candidates(f)
        lo, hi = 0, len(source)
        if f.after is not None:
            lo = bisect_right(source, f.after, key=_seq)
        if before is not None:
            hi = bisect_left(source, before, key=_seq, lo=lo)
        if lo >= hi:
            return iter(())
        if newest_first:
            ordered = islice(reversed(source), len(source) - hi, len(source) - lo)
        else:
            ordered = islice(source, lo, hi)
        return (c for c in ordered if f.matches(c))

    def query(
        self, f: CallFilter, limit: int | None = None, newest_first: bool = False, before: int | None = None
    ) -> list[Call]:
        return list(islice(self.iter_matching(f, newest_first, before), limit))

    def page(
        self,
        f: CallFilter,
        limit: int,
        newest_first: bool = False,
        before: int | None = None,
        max_bytes: int | None = None,
    ) -> tuple[list[Call], bool]:
        """At most `limit` matching calls, and whether more follow them (the next page).

        With `max_bytes`, the page also ends before the call that would take it past that many
        bytes (by `Call.size`; a page holds one call at least): big calls make short pages.
        """
        calls: list[Call] = []
        held = 0
        for call in self.iter_matching(f, newest_first, before):
            if len(calls) >= limit or (max_bytes is not None and calls and held + call._held > max_bytes):
                return calls, True
            calls.append(call)
            held += call._held
        return calls, False

    def count(self, f: CallFilter) -> int:
        if f.empty:
            return len(self._calls)
        # A count by namespace or by service alone is the length of its index (the plugin's common case).
        if f.only("namespace"):
            return len(self._by_namespace.get(f.namespace or "", ()))
        if f.only("service"):
            return len(self._by_service.get(f.service or "", ()))
        return sum(1 for _ in self.iter_matching(f))

    async def wait(
        self, f: CallFilter, min_count: int, timeout: float, limit: int | None = None, newest_first: bool = False
    ) -> tuple[list[Call], bool]:
        """The calls matching `f` (oldest first) once at least `min_count` do, and True; or, when
        `timeout` runs out first, those there are and False. With `limit`, at most that many: the
        first ones, or with `newest_first` the newest ones, newest first (`wait_page` says whether
        there are more).
        """
        calls, arrived, _ = await self.wait_page(f, min_count, timeout, limit, newest_first)
        return calls, arrived

    async def wait_page(
        self, f: CallFilter, min_count: int, timeout: float, limit: int | None = None, newest_first: bool = False
    ) -> tuple[list[Call], bool, bool]:
        """`wait`, plus whether more calls matched than the page holds.

        The journal is scanned once, when the wait starts; later calls are tested as they are
        appended, once per distinct filter however many long polls share it, so waking up costs
        the same whatever the journal's size. A waiter keeps at most `limit` call ids, never calls.
        """
        ids: list[str] | deque[str] = deque(maxlen=limit) if newest_first and limit is not None else []
        count = 0
        for call in self.iter_matching(f):
            count += 1
            if limit is None or newest_first or len(ids) < limit:
                ids.append(call.id)
        if count < min_count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = _Waiter(count, ids, limit, min_count, future)
            key = _filter_key(f)
            group = self._waiters.setdefault(key, (f, []))[1]
            group.append(waiter)
            try:
                await asyncio.wait_for(future, timeout)
                arrived = True
            except TimeoutError:
                arrived = False
            finally:
                group.remove(waiter)
                if not group and key in self._waiters and self._waiters[key][1] is group:
                    del self._waiters[key]
            count = waiter.count
        else:
            arrived = True
        # Calls forgotten (DELETE /calls) or evicted while waiting are not answered.
        by_id = self._by_id
        calls = [c for cid in ids if (c := by_id.get(cid)) is not None]
        if newest_first:
            calls.reverse()
        return calls, arrived, count > len(calls)

    def subscribe(self, f: CallFilter, maxsize: int = 10_000, max_bytes: int | None = None) -> Subscription:
        """A live feed of the calls matching `f`, cut off past `maxsize` calls or `max_bytes` bytes
        (by `Call.size`; default: SUBSCRIBER_MAX_BYTES or the journal's `max_bytes`, the smaller) unread."""
        sub = Subscription(self, f, maxsize, max_bytes)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
