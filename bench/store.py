"""`python -m bench --only store`: recorded webhook calls/s with the memory store, a shared store
(Valkey/Redis) with one process, and `--workers 2`; round trips to the store per call; where the
CPU time goes (mockhub's processes vs the store server's, in µs per call).

The store server is Debian's `valkey-server` or `redis-server`, started here on a free port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.harness import SERVER_CPU, free_port, pinned, post_lua, wrk

WEBHOOK_BODY = '{"severity":"critical","summary":"disk full on db-1","host":"db-1"}'
Results = dict[str, Any]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


@contextmanager
def _store_server() -> Iterator[tuple[str, int]]:
    binary = shutil.which("valkey-server") or shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench store: needs valkey-server or redis-server (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen([*argv, "--dir", folder], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            client = redis.Redis(port=port)
            for _ in range(200):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0", proc.pid
        finally:
            proc.terminate()
            proc.wait(10)


@contextmanager
def _serve(args: list[str], workers: int, pin: bool) -> Iterator[tuple[str, int]]:
    """`mockhub serve` with `args`; returns its URL once all `workers` processes announced they are ready."""
    port = free_port()
    argv = [sys.executable, "-m", "mockhub", "serve", "--host", "127.0.0.1", "--http-port", str(port)]
    argv += ["--smtp-port", str(free_port()), *args]
    if workers > 1:
        argv += ["--workers", str(workers)]
    proc = subprocess.Popen(pinned(SERVER_CPU, argv) if pin else argv, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        ready = 0
        while ready < workers:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"mockhub exited: {argv}")
            ready += " ready: " in line
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


# Commands mockhub runs only inside its Lua scripts (counted by the server, but no round trip of their own).
_IN_SCRIPTS = {"incr", "xadd", "xtrim", "hincrby", "hget"}


def _commands(store_url: str) -> dict[str, int]:
    """How many times the store server ran each command (INFO's own excluded)."""
    import redis

    stats = redis.Redis.from_url(store_url).info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info"}


def _run(url: str, pid: int, seconds: int, store: tuple[str, int] | None) -> Results:
    lua = post_lua(WEBHOOK_BODY)
    wrk(url + "/webhooks/warmup", lua, seconds=2)
    pids = [pid, *_children(pid)]
    before_seq = httpx.get(url + "/health").json()["last_seq"]
    cpu0 = sum(_cpu_seconds(p) for p in pids)
    store_cpu0 = _cpu_seconds(store[1]) if store else 0.0
    commands0 = _commands(store[0]) if store else {}
    result = wrk(url + "/webhooks/alerts", lua, seconds=seconds)
    recorded = httpx.get(url + "/health").json()["last_seq"] - before_seq
    out: Results = {
        "calls_per_s": round(result.rps),
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "errors": result.errors,
        "recorded": recorded,
        "wrk_requests": result.requests,
        "mockhub_cpu_us_per_call": round((sum(_cpu_seconds(p) for p in pids) - cpu0) * 1e6 / max(recorded, 1)),
    }
    if store:
        out["store_cpu_us_per_call"] = round((_cpu_seconds(store[1]) - store_cpu0) * 1e6 / max(recorded, 1))
        # Minus the two /health reads' catch-up (a handful of commands) this is the store's work per call.
        grown = {k: n - commands0.get(k, 0) for k, n in _commands(store[0]).items() if n > commands0.get(k, 0)}
        trips = {k: n for k, n in grown.items() if k not in _IN_SCRIPTS}
        out["store_commands_per_call"] = round(sum(grown.values()) / max(recorded, 1), 2)
        out["round_trips_per_call"] = round(sum(trips.values()) / max(recorded, 1), 2)
        # get: the rule book's version, evalsha: the append script, xread: the log reader's (batched) reads.
        out["round_trips_by_command"] = {k: round(n / max(recorded, 1), 3) for k, n in sorted(trips.items())}
    return out


def bench_store(seconds: int) -> Results:
    results: Results = {}
    with _serve([], 1, pin=True) as (url, pid):
        results["memory"] = _run(url, pid, seconds, None)
    with _store_server() as store:
        # The store server shares mockhub's core here: the same CPU budget as `memory`.
        subprocess.run(["taskset", "-p", "-c", SERVER_CPU, str(store[1])], capture_output=True, check=False)
        with _serve(["--store", store[0]], 1, pin=True) as (url, pid):
            results["redis_1_process"] = _run(url, pid, seconds, store)
        # Two workers and the store on both cores, wrk too: the machine's whole budget is shared.
        subprocess.run(["taskset", "-p", "-c", "0,1", str(store[1])], capture_output=True, check=False)
        with _serve(["--store", store[0]], 2, pin=False) as (url, pid):
            results["redis_workers_2"] = _run(url, pid, seconds, store)
    return results
