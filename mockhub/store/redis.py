"""The shared store on Valkey / Redis (>= 7), through the `redis` package's asyncio client.

Every process that names the same store is one mockhub:

- **The journal is a log.** A call is written by one Lua script that takes the next `seq` (`INCR`)
  and appends the call to a stream (`XADD`) in the same atomic step, so the stream's order is the
  `seq` order. Each process keeps its `Journal` as a replica of that stream, fed in stream order
  by a blocking `XREAD` (which is also what wakes its long polls and SSE subscribers for calls taken
  elsewhere) and caught up by `XRANGE` before every inspection read (so a read sees every call
  acknowledged before it, whichever process took it). Filters, paging and eviction (count and bytes)
  are the journal's own, applied to the same sequence in every process.
- **Deleting calls is an entry in the log** (`DELETE /calls`, `POST /reset`), applied by every
  process at the same place in the sequence; a full clear also trims the stream before it.
- **Rules** live in a hash (id -> spec) with a version counter checked once per call; their counters
  (`seen`, `fired`, `hits`) are hashes changed only by Lua scripts, so `times`, `after`, `sequence`
  and seeded `probability` are exact across processes.
- **Failure**: an operation that cannot reach the store raises `StoreUnavailable` (the fakes answer
  503, not an acknowledgement) and marks the store `unavailable` until a later operation succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mockhub.filters import CallFilter
from mockhub.journal import Call, new_id
from mockhub.journal import Journal as _Journal
from mockhub.recording import call_from_dict
from mockhub.rules import FaultRule, FaultSpec, RuleBook, StubHit, StubRule, StubSpec
from mockhub.store import StateChannel, Store, StoreError, StoreUnavailable

__all__ = ["RedisStore"]

log = logging.getLogger("mockhub.store")

# Any failure of the store (unreachable, timed out, or refusing: out of memory, read-only replica)
# means the call cannot be kept: not acknowledged.
_LOST = (RedisConnectionError, RedisTimeoutError, RedisError, OSError)

# KEYS: seq, log. ARGV: the call's record, the stream's length bound, its id. Returns the call's seq.
_APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 's', seq, 'i', ARGV[3], 'c', ARGV[1])
return seq
"""

# KEYS: log. ARGV: the filter (JSON, '' for all). A full clear drops the entries before it.
_CLEAR = """
local id = redis.call('XADD', KEYS[1], '*', 'op', 'clear', 'f', ARGV[1])
if ARGV[1] == '' then redis.call('XTRIM', KEYS[1], 'MINID', id) end
return id
"""

# KEYS: the rule's counters. ARGV: after, times (-1: none), probability, seed.
# Returns -1 exhausted (not counted), 0 let through (seen), 1 fired, 2 fired and now exhausted.
_FAULT_TAKE = """
local times = tonumber(ARGV[2])
if times >= 0 then
  local fired = tonumber(redis.call('HGET', KEYS[1], 'fired') or '0')
  if fired >= times then return -1 end
end
local seen = redis.call('HINCRBY', KEYS[1], 'seen', 1)
local after = tonumber(ARGV[1])
if seen <= after then return 0 end
local p = tonumber(ARGV[3])
if p < 1 then
  -- The n-th draw of this rule: a hash of its seed and n, the same on every process.
  local h = redis.sha1hex(ARGV[4] .. ':' .. (seen - after))
  if tonumber(string.sub(h, 1, 13), 16) / 4503599627370496 >= p then return 0 end
end
local fired = redis.call('HINCRBY', KEYS[1], 'fired', 1)
if times >= 0 and fired >= times then return 2 end
return 1
"""

# KEYS: the stub's counters. ARGV: times (-1: none). Returns the hit's index, or -1 when exhausted.
_STUB_TAKE = """
local times = tonumber(ARGV[1])
local hits = redis.call('HINCRBY', KEYS[1], 'hits', 1)
if times >= 0 and hits > times then
  redis.call('HINCRBY', KEYS[1], 'hits', -1)
  return -1
end
return hits - 1
"""

# KEYS: rules, rules:ns, version. ARGV: kind ('fault'/'stub'), namespace ('' any, '*' every rule),
# counters key prefix. Returns how many rules were removed.
_CLEAR_RULES = """
local removed = 0
local kinds = redis.call('HGETALL', KEYS[2])
for i = 1, #kinds, 2 do
  local id, tag = kinds[i], kinds[i + 1]
  local kind, ns = string.match(tag, '^(%a+):(.*)$')
  if kind == ARGV[1] and (ARGV[2] == '*' or ns == ARGV[2]) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', ARGV[3] .. id)
    removed = removed + 1
  end
end
if removed > 0 then redis.call('INCR', KEYS[3]) end
return removed
"""

_BATCH = 1000


def _cursor_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


class RedisStore(Store):
    """`redis://host:port/db`, `rediss://...` (TLS) or `unix:///path/to/socket?db=0`."""

    kind = "redis"
    shared = True

    def __init__(self, journal: _Journal, rules: RuleBook, url: str, prefix: str = "mockhub:") -> None:
        super().__init__(journal, rules, url)
        try:
            self._redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=0)
            # The blocking reader has a connection of its own: an XREAD BLOCK holds it.
            self._reader_redis = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=None)
        except ValueError as exc:
            raise StoreError(f"store: {url!r}: {exc}") from None
        p = prefix
        self._k_seq, self._k_log = f"{p}seq", f"{p}log"
        self._k_rules, self._k_rules_ns, self._k_ver = f"{p}rules", f"{p}rules:ns", f"{p}rules:version"
        self._k_counter = f"{p}rule:"
        # Room for the clear entries among the calls, so a process joining late still loads max_calls calls.
        self._maxlen = str(journal.max_calls + 1000)
        self._append = self._redis.register_script(_APPEND)
        self._clear = self._redis.register_script(_CLEAR)
        self._fault_take = self._redis.register_script(_FAULT_TAKE)
        self._stub_take = self._redis.register_script(_STUB_TAKE)
        self._clear_rules = self._redis.register_script(_CLEAR_RULES)
        self._cursor = "0-0"
        self._cursor_t = (0, 0)
        # Calls this process is writing, by id: its own entries are applied as these objects.
        self._mine: dict[str, Call] = {}
        # What applying a clear entry removed here, by entry id (the process that asked reads it).
        self._cleared: dict[str, int] = {}
        self._version: bytes | None = None
        # Rule id -> the seed string its probability draws use.
        self._seeds: dict[str, str] = {}
        # The fakes' own state: owner -> how to apply an event.
        self._channels: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._up = False
        self._reader: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # -- connection state ----------------------------------------------------------------------
    def status(self) -> str:
        return "ok" if self._up else "unavailable"

    def _lost(self, exc: BaseException) -> StoreUnavailable:
        if self._up:
            log.warning("store %s unavailable: %s", self._where(), exc)
        self._up = False
        return StoreUnavailable(f"the store {self._where()} is unavailable: {exc}")

    def _ok(self) -> None:
        if not self._up:
            log.warning("store %s available", self._where())
        self._up = True

    def _where(self) -> str:
        # Never print a password the URL may carry.
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"

    async def start(self) -> None:
        try:
            info = await self._redis.info("server")
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreUnavailable(f"the store {self._where()} is unreachable: {exc}") from None
        except RedisError as exc:
            raise StoreUnavailable(f"the store {self._where()} refused mockhub: {exc}") from None
        version = str(info.get("valkey_version") or info.get("redis_version") or "0")
        if int(version.split(".")[0] or 0) < 7:
            raise StoreUnavailable(
                f"the store {self._where()} runs version {version}: mockhub needs Valkey or Redis 7+"
            )
        self._up = True
        try:
            await self._adopt_preloaded()
            await self._catch_up()
            await self._load_rules(await self._redis.get(self._k_ver))
        except _LOST as exc:
            raise StoreUnavailable(f"the store {self._where()} went away during start-up: {exc}") from None
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await task
        for client in (self._redis, self._reader_redis):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _adopt_preloaded(self) -> None:
        """What this process loaded before connecting goes into the store, once for every process.

        Stub and fault files (`--stubs`): each rule is stored under an id made from its content, so N
        processes started with the same folder add each rule once. A replayed recording (`--replay`)
        is appended only to a store whose journal is still empty (the first process to start).
        """
        preloaded: list[tuple[str, FaultRule | StubRule]] = [
            *(("fault", r) for r in self.rules.faults()),
            *(("stub", r) for r in self.rules.stubs()),
        ]
        for kind, rule in preloaded:
            spec = rule.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
            digest = hashlib.sha1(orjson.dumps([kind, spec], option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
            rule_id = f"{'f' if kind == 'fault' else 's'}_file{digest}"
            seed = getattr(rule.spec, "seed", None)
            seed = seed if seed is not None else self.rules.seed
            doc = {"kind": kind, "id": rule_id, "spec": spec, "created": rule.created, "seed": str(seed or rule_id)}
            if await self._redis.hsetnx(self._k_rules, rule_id, orjson.dumps(doc)):
                await self._redis.hset(self._k_rules_ns, rule_id, f"{kind}:{rule.namespace or ''}")
                await self._redis.incr(self._k_ver)
        replayed = self.journal.query(CallFilter())
        if replayed:
            self.journal.clear()
            self.journal._seq = 0  # numbering is the store's from here on
            if await self._redis.set(f"{self._k_seq}:replayed", "1", nx=True) and not await self._redis.get(
                self._k_seq
            ):
                for call in replayed:
                    await self._append(keys=[self._k_seq, self._k_log], args=[_encode(call), self._maxlen, call.id])
            else:
                log.warning("replay: the shared store already holds a journal; the recording was not replayed")

    # -- the log -------------------------------------------------------------------------------
    async def _read_forever(self) -> None:
        """Apply the log as it grows (a blocking read: no polling); retry while the store is away."""
        while True:
            try:
                found: Any = await self._reader_redis.xread({self._k_log: self._cursor}, count=_BATCH, block=5000)
                self._ok()
                for _, entries in found:
                    self._apply(entries)
            except asyncio.CancelledError:
                raise
            except _LOST as exc:
                self._lost(exc)
                await asyncio.sleep(0.2)
            except Exception:  # a bad entry must not stop the replica
                log.exception("store: applying the log failed")
                await asyncio.sleep(0.2)

    async def _catch_up(self) -> None:
        while True:
            entries: Any = await self._redis.xrange(self._k_log, f"({self._cursor}", "+", count=_BATCH)
            self._apply(entries)
            if len(entries) < _BATCH:
                return

    def _apply(self, entries: Any) -> None:
        """Apply log entries in order, skipping those already applied (two readers may overlap)."""
        journal = self.journal
        for entry_id, fields in entries:
            key = _cursor_key(entry_id)
            if key <= self._cursor_t:
                continue
            self._cursor_t = key
            self._cursor = entry_id.decode()
            op = fields.get(b"op")
            if op is None:
                # This process's own calls are applied as they are, without decoding them again.
                mine = self._mine.pop(fields[b"i"].decode(), None) if b"i" in fields else None
                call = mine or _decode(orjson.loads(fields[b"c"]))
                call.seq = int(fields[b"s"])
                if call.seq <= journal.last_seq:
                    # Numbering started again: the store lost its data (restarted without persistence,
                    # flushed). Its journal is the truth: forget what it no longer holds.
                    log.warning("store %s: the journal was lost by the store; starting again", self._where())
                    journal.clear()
                    journal._seq = 0
                journal.accept(call)
            elif op == b"clear":
                raw = fields.get(b"f", b"")
                call_filter = CallFilter(**orjson.loads(raw)) if raw else None
                self._cleared[self._cursor] = journal.clear(call_filter)
                if len(self._cleared) > 1000:  # answers nobody collected (the asker went away)
                    self._cleared.pop(next(iter(self._cleared)))
            elif op == b"state":
                apply = self._channels.get(fields[b"o"].decode())
                if apply is not None:
                    try:
                        apply(orjson.loads(fields[b"e"]))
                    except Exception:  # one bad event must not stop the replica
                        log.exception("store: a state event of %s failed", fields[b"o"].decode())
            elif op == b"reset":
                self.on_reset(fields[b"n"].decode() if b"n" in fields else None)
            elif op == b"update":
                record = orjson.loads(fields[b"c"])
                found = journal.get(record["id"])
                if found is not None and found.seq:
                    _refresh(journal, found, _decode(record))

    async def sync(self, rules: bool = False) -> None:
        try:
            await self._catch_up()
            await self._check_rules()
            if rules:
                await self._load_counters()
            self._ok()
        except _LOST as exc:
            raise self._lost(exc) from None

    async def append(self, call: Call) -> Call:
        if not call.id:
            call.id = new_id("c_")
        self._mine[call.id] = call
        try:
            seq = await self._append(keys=[self._k_seq, self._k_log], args=[_encode(call), self._maxlen, call.id])
        except _LOST as exc:
            self._mine.pop(call.id, None)
            raise self._lost(exc) from None
        self._ok()
        call.seq = int(seq)
        # This process's own sinks (the JSONL record folder is per process) see the call now, numbered.
        for sink in self.journal._sinks:
            sink(call)
        return call

    def append_soon(self, call: Call) -> None:
        task = asyncio.get_running_loop().create_task(self._append_logged(call))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _append_logged(self, call: Call) -> None:
        try:
            await self.append(call)
        except Exception as exc:
            log.warning("store: a %s call was not recorded: %s", call.service, exc)

    async def resized(self, call: Call, old_size: int) -> None:
        if call.seq and self.journal.get(call.id) is call:
            self.journal.resized(call, old_size)
        else:
            for sink in self.journal._update_sinks:
                sink(call)
        try:
            await self._redis.xadd(self._k_log, {"op": "update", "c": _encode(call)})
        except _LOST as exc:
            raise self._lost(exc) from None

    async def clear_calls(self, call_filter: CallFilter | None) -> int:
        raw = b"" if call_filter is None or call_filter.empty else orjson.dumps(call_filter.values)
        try:
            entry = await self._clear(keys=[self._k_log], args=[raw])
            await self._catch_up()
        except _LOST as exc:
            raise self._lost(exc) from None
        return self._cleared.pop(entry.decode() if isinstance(entry, bytes) else str(entry), 0)

    # -- the fakes' own state ------------------------------------------------------------------
    def channel(self, owner: str, apply: Callable[[dict[str, Any]], None]) -> StateChannel:
        self._channels[owner] = apply
        return _RedisChannel(self, owner, apply)

    async def publish(self, owner: str, event: dict[str, Any]) -> None:
        """Put a state event in the log, then apply the log up to it here (before the fake answers)."""
        try:
            await self._redis.xadd(self._k_log, {"op": "state", "o": owner, "e": orjson.dumps(event)})
            await self._catch_up()
        except _LOST as exc:
            raise self._lost(exc) from None

    async def reset_state(self, namespace: str | None) -> None:
        fields = {"op": "reset"} if namespace is None else {"op": "reset", "n": namespace}
        try:
            await self._redis.xadd(self._k_log, fields)  # type: ignore[arg-type]
            await self._catch_up()
        except _LOST as exc:
            raise self._lost(exc) from None

    async def fresh(self) -> None:
        try:
            await self._catch_up()
        except _LOST as exc:
            raise self._lost(exc) from None

    # -- rules ---------------------------------------------------------------------------------
    async def _check_rules(self) -> None:
        version = await self._redis.get(self._k_ver)
        if version != self._version:
            await self._load_rules(version)

    async def _load_rules(self, version: Any) -> None:
        """Rebuild the local rule book from the store (ids kept, oldest first so `newest first` agrees)."""
        docs = await self._redis.hgetall(self._k_rules)
        parsed = sorted((orjson.loads(doc) for doc in docs.values()), key=lambda d: (d["created"], d["id"]))
        rules = self.rules
        limit, rules.max_rules = rules.max_rules, None
        try:
            rules.reset()
            self._seeds.clear()
            for doc in parsed:
                added: FaultRule | StubRule
                if doc["kind"] == "fault":
                    added = rules.add_fault(FaultSpec.model_validate(doc["spec"]), doc["id"])
                    self._seeds[doc["id"]] = doc["seed"]
                else:
                    added = rules.add_stub(StubSpec.model_validate(doc["spec"]), doc["id"])
                added.created = doc["created"]
        finally:
            rules.max_rules = limit
        self._version = version
        await self._load_counters()

    async def _load_counters(self) -> None:
        rules: list[FaultRule | StubRule] = [*self.rules.faults(), *self.rules.stubs()]
        if not rules:
            return
        pipe = self._redis.pipeline(transaction=False)
        for rule in rules:
            pipe.hgetall(self._k_counter + rule.id)
        for rule, counters in zip(rules, await pipe.execute(), strict=True):
            if isinstance(rule, FaultRule):
                rule.seen = int(counters.get(b"seen", 0))
                rule.fired = int(counters.get(b"fired", 0))
            else:
                rule.hits = int(counters.get(b"hits", 0))
            if rule.exhausted:
                self.rules.retire(rule)

    async def _save_rule(self, rule: FaultRule | StubRule, kind: str, seed: str = "") -> None:
        spec = rule.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        doc = {"kind": kind, "id": rule.id, "spec": spec, "created": rule.created, "seed": seed}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._k_rules, rule.id, orjson.dumps(doc))
        pipe.hset(self._k_rules_ns, rule.id, f"{kind}:{rule.namespace or ''}")
        pipe.incr(self._k_ver)
        version = (await pipe.execute())[-1]
        self._adopt(version)

    def _adopt(self, version: int) -> None:
        # Our change was the only one since the version we hold: nothing else to load.
        if self._version is not None and int(self._version) + 1 == int(version):
            self._version = str(version).encode()
        elif self._version is None and int(version) == 1:
            self._version = b"1"

    async def _remove_rule(self, rule_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(self._k_rules, rule_id)
        pipe.hdel(self._k_rules_ns, rule_id)
        pipe.delete(self._k_counter + rule_id)
        pipe.incr(self._k_ver)
        self._adopt((await pipe.execute())[-1])

    async def _guard(self, work: Any) -> Any:
        try:
            result = await work
        except _LOST as exc:
            raise self._lost(exc) from None
        self._ok()
        return result

    async def fault_for(self, call: Call, stage: str | None = None) -> FaultRule | None:
        try:
            await self._check_rules()
            # A list: another coroutine may reload the rule book while this one awaits the store.
            for rule in list(self.rules.fault_candidates(call, stage)):
                spec = rule.spec
                times = -1 if spec.times is None else spec.times
                args: list[str | int] = [spec.after, times, repr(spec.probability), self._seeds.get(rule.id, rule.id)]
                outcome = int(await self._fault_take(keys=[self._k_counter + rule.id], args=args))
                if outcome == -1:
                    self.rules.retire(rule)
                    continue
                rule.seen += 1
                if outcome == 0:
                    continue
                rule.fired += 1
                if outcome == 2:
                    self.rules.retire(rule)
                return rule
        except _LOST as exc:
            raise self._lost(exc) from None
        self._ok()
        return None

    async def stub_for(self, call: Call, replies: bool = True) -> StubHit | None:
        # The rule version was checked by fault_for, which every call asks first.
        try:
            for rule in list(self.rules.stub_candidates(call, replies)):
                spec = rule.spec
                index = int(await self._stub_take(keys=[self._k_counter + rule.id], args=[spec.times or -1]))
                if index < 0:
                    self.rules.retire(rule)
                    continue
                rule.hits = index + 1
                if rule.exhausted:
                    self.rules.retire(rule)
                reply = spec.reply
                if spec.sequence is not None:
                    reply = spec.sequence[min(index, len(spec.sequence) - 1)]
                return StubHit(rule, reply, spec.response, index)
        except _LOST as exc:
            raise self._lost(exc) from None
        return None

    async def add_fault(self, spec: FaultSpec) -> FaultRule:
        await self._guard(self._check_rules())
        rule = self.rules.add_fault(spec)
        seed = spec.seed if spec.seed is not None else self.rules.seed
        seed_text = str(seed) if seed is not None else f"{random.getrandbits(64):x}"
        self._seeds[rule.id] = seed_text
        try:
            await self._guard(self._save_rule(rule, "fault", seed_text))
        except StoreUnavailable:
            self.rules.remove_fault(rule.id)
            raise
        return rule

    async def remove_fault(self, rule_id: str) -> bool:
        await self._guard(self._check_rules())
        if not self.rules.remove_fault(rule_id):
            return False
        await self._guard(self._remove_rule(rule_id))
        return True

    async def clear_faults(self, namespace: str | None = None) -> int:
        return await self._clear_kind("fault", namespace)

    async def add_stub(self, spec: StubSpec) -> StubRule:
        await self._guard(self._check_rules())
        rule = self.rules.add_stub(spec)
        try:
            await self._guard(self._save_rule(rule, "stub"))
        except StoreUnavailable:
            self.rules.remove_stub(rule.id)
            raise
        return rule

    async def remove_stub(self, rule_id: str) -> bool:
        await self._guard(self._check_rules())
        if not self.rules.remove_stub(rule_id):
            return False
        await self._guard(self._remove_rule(rule_id))
        return True

    async def clear_stubs(self, namespace: str | None = None) -> int:
        return await self._clear_kind("stub", namespace)

    async def _clear_kind(self, kind: str, namespace: str | None) -> int:
        keys = [self._k_rules, self._k_rules_ns, self._k_ver]
        removed = await self._guard(
            self._clear_rules(keys=keys, args=[kind, "*" if namespace is None else namespace, self._k_counter])
        )
        await self._guard(self._check_rules())
        return int(removed)


def _encode(call: Call) -> bytes:
    record = call.to_dict()
    record["t"] = call.time
    return orjson.dumps(record)


def _decode(record: dict[str, Any]) -> Call:
    call = call_from_dict({**record, "seq": record.get("seq") or 0})
    call.time = float(record.get("t", call.time))
    return call


def _refresh(journal: _Journal, call: Call, newer: Call) -> None:
    """A call taken elsewhere was completed there (a finished stream): take its final form."""
    old = call.size
    call.body, call.response, call.data = newer.body, newer.response, newer.data
    call.fault, call.duration_ms = newer.fault, newer.duration_ms
    call.invalidate()
    journal.resized(call, old, sinks=False)


class _RedisChannel(StateChannel):
    def __init__(self, store: RedisStore, owner: str, apply: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(apply)
        self._store = store
        self._owner = owner

    async def publish(self, event: dict[str, Any]) -> None:
        await self._store.publish(self._owner, event)

    async def fresh(self) -> None:
        await self._store.fresh()
