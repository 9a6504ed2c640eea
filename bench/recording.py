"""Recording cost and journal memory: prints figures (never asserted in tests).

    python bench/recording.py [N]

1. memory per call: tracemalloc around appending N small webhook calls to a Journal (as the recorder
   builds them: fresh header dict, JSON body, parsed data, response record);
2. the per-call cost of the JSONL sink: Journal.append with no sink, with the sink, with --fsync.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mockhub

from mockhub.journal import Call, Journal, ResponseRecord
from mockhub.recording import JsonlSink

_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"user-agent", b"python-httpx/0.27.0"),
    (b"accept", b"*/*"),
    (b"content-type", b"application/json"),
    (b"content-length", b"58"),
]


def make_call(i: int) -> Call:
    # Decoded per call, as the recorder does, so nothing is shared between calls that would not be.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in _HEADERS}
    body = b'{"severity": "critical", "summary": "disk full on db-%05d"}' % (i % 100_000)
    call = Call(service="webhook", method="POST", path="/webhooks/alerts", headers=headers, body=body)
    call.data = orjson.loads(body)
    call.response = ResponseRecord(200, {"content-type": "application/json"}, b'{"ok":true}')
    call.duration_ms = 0.05
    return call


def memory_per_call(n: int) -> float:
    calls = [make_call(i) for i in range(1000)]  # warm caches and interned names
    del calls
    gc.collect()
    journal = Journal(max_calls=n + 1)
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    for i in range(n):
        journal.append(make_call(i))
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / n


def append_rate(n: int, sink: JsonlSink | None, clock: Callable[[], float] = time.process_time) -> float:
    """Microseconds per append. CPU time by default, so a busy machine skews the figure less."""
    journal = Journal(max_calls=10_000)
    if sink is not None:
        journal.add_sink(sink.write)
    calls = [make_call(i) for i in range(n)]
    started = clock()
    for call in calls:
        journal.append(call)
    return (clock() - started) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    per_call = memory_per_call(n)
    print(f"memory: {per_call:,.0f} bytes per small webhook call ({n:,} calls, {per_call * n / 2**20:,.1f} MiB)")
    with tempfile.TemporaryDirectory() as tmp:
        bare = append_rate(n, None)
        recorder = JsonlSink(Path(tmp, "plain"))
        recorded = append_rate(n, recorder)
        recorder.close()
        size = recorder.path.stat().st_size / n
        synced = JsonlSink(Path(tmp, "fsync"), fsync=True)
        fsynced = append_rate(min(n, 2_000), synced, time.perf_counter)  # waiting for the disk is no CPU
        synced.close()
    print("CPU time per Journal.append (fsync: wall time):")
    print(f"append, no sink:  {bare:6.2f} us/call ({1e6 / bare:,.0f} calls/s)")
    print(f"append + JSONL:   {recorded:6.2f} us/call ({1e6 / recorded:,.0f} calls/s), {size:,.0f} bytes/line")
    print(f"append + fsync:   {fsynced:6.2f} us/call ({1e6 / fsynced:,.0f} calls/s)")


if __name__ == "__main__":
    main()
