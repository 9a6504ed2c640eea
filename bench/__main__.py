"""`python -m bench`: measure mockhub on this machine and print a table and JSON.

Server on core 0, load on core 1 (taskset). Needs `wrk` (apt-get install -y wrk).
`--quick` shortens every run (for a smoke check, not for figures worth quoting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.harness import (
    LOAD_CPU,
    Server,
    mockhub,
    on_load_core,
    pinned,
    post_lua,
    starlette_baseline,
    wiremock,
    wiremock_jar,
    wrk,
)

WEBHOOK_BODY = '{"severity":"critical","summary":"disk full on db-1","host":"db-1"}'
Results = dict[str, Any]


def _saturate(server: Server, path: str, lua: str, seconds: int) -> Results:
    before = httpx.get(server.url + "/health").json().get("last_seq")  # None for the baseline app
    result = wrk(server.url + path, lua, seconds=seconds)
    out: Results = {
        "calls_per_s": round(result.rps),
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "errors": result.errors,
    }
    health = httpx.get(server.url + "/health").json()
    if "last_seq" in health and before is not None:
        # Every answered call must be in the journal: recorded == requests wrk completed (± in flight).
        out["recorded"] = health["last_seq"] - before
        out["wrk_requests"] = result.requests
    return out


def bench_webhooks(seconds: int) -> Results:
    lua = post_lua(WEBHOOK_BODY)
    results: Results = {}
    with mockhub() as server:
        wrk(server.url + "/webhooks/warmup", lua, seconds=2)
        results["mockhub_webhook"] = _saturate(server, "/webhooks/alerts", lua, seconds)
        fixed = subprocess.run(
            pinned(
                LOAD_CPU,
                [sys.executable, "-m", "bench.fixed_rate", server.url + "/webhooks/steady", "1000", str(seconds)],
            ),
            capture_output=True,
            text=True,
            check=True,
        )
        results["mockhub_webhook_at_1000_per_s"] = json.loads(fixed.stdout)
    with starlette_baseline() as server:
        wrk(server.url + "/webhooks/warmup", lua, seconds=2)
        results["starlette_baseline_webhook"] = _saturate(server, "/webhooks/alerts", lua, seconds)
    return results


def bench_compare(seconds: int, warmup_rounds: int) -> Results:
    """mockhub, a bare Starlette app and WireMock recording webhooks, head to head, two ways.

    `one_core_each`: every server pinned to the server core, wrk to the other: the same CPU budget
    for each. `unpinned`: no pinning at all, so WireMock's threads (Jetty, JIT, GC) spread over both
    cores, sharing them with wrk, while a Python event loop can only ever use one. Each server is
    warmed up first; WireMock for `warmup_rounds` runs of `seconds`, as its throughput climbs for
    tens of seconds while the JVM compiles.
    """
    lua = post_lua(WEBHOOK_BODY)
    results: Results = {}

    def measure(server: Server, rounds: int, pin: bool) -> Results:
        for _ in range(rounds):
            wrk(server.url + "/webhooks/warmup", lua, seconds=seconds, pin=pin)
        result = wrk(server.url + "/webhooks/alerts", lua, seconds=seconds, pin=pin)
        return {
            "calls_per_s": round(result.rps),
            "p50_ms": round(result.p50_ms, 2),
            "p99_ms": round(result.p99_ms, 2),
            "errors": result.errors,
        }

    jar = wiremock_jar()
    for label, pin in (("one_core_each", True), ("unpinned", False)):
        entry: Results = {}
        with mockhub(pin=pin) as server:
            entry["mockhub"] = measure(server, 1, pin)
        with starlette_baseline(pin=pin) as server:
            entry["starlette_baseline"] = measure(server, 1, pin)
        if jar is None:
            entry["wiremock"] = "n/a (needs java and npm)"
        else:
            with wiremock(jar, pin=pin) as server:
                entry["wiremock"] = measure(server, warmup_rounds, pin)
                count = httpx.post(f"{server.url}/__admin/requests/count", json={"method": "POST"}).json()["count"]
                entry["wiremock"]["journal_count"] = count
        results[label] = entry
    return results


def _fake_present(server: Server, path: str, body: str, headers: dict[str, str]) -> bool:
    r = httpx.post(server.url + path, content=body, headers={"content-type": "application/json", **headers})
    return r.status_code < 400


def bench_fakes(seconds: int) -> Results:
    scenarios = {
        "slack_webhook": ("/services/T000/B000/XXXX", '{"text":"disk full on db-1"}', {}),
        "openai_chat": (
            "/v1/chat/completions",
            '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"summarise: disk full"}]}',
            {"Authorization": "Bearer sk-bench"},
        ),
        "openai_chat_stream": (
            "/v1/chat/completions",
            '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"summarise: disk full"}]}',
            {"Authorization": "Bearer sk-bench"},
        ),
        "anthropic_messages": (
            "/v1/messages",
            '{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"summarise"}]}',
            {"x-api-key": "bench", "anthropic-version": "2023-06-01"},
        ),
    }
    results: Results = {}
    with mockhub() as server:
        for name, (path, body, headers) in scenarios.items():
            if not _fake_present(server, path, body, headers):
                results[name] = "n/a (fake not present)"
                continue
            results[name] = _saturate(server, path, post_lua(body, headers=headers), seconds)
    return results


def bench_intercept(seconds: int) -> Results:
    """Webhook calls over keep-alive connections: plain HTTP, through a CONNECT tunnel (TLS), and over HTTPS.

    One closed-loop generator (`bench/proxy_load.py`, 16 connections) for all three, so the rows
    compare the transports; `wrk` cannot speak CONNECT.
    """
    import tempfile

    results: Results = {}
    with mockhub("--https-port", "0") as server, tempfile.NamedTemporaryFile(suffix=".pem") as ca:
        health = httpx.get(server.url + "/health").json()
        ca.write(httpx.get(server.url + "/tls/ca.pem").content)
        ca.flush()
        ports = {"plain": server.http_port, "connect": server.http_port, "https": health["https_port"]}
        for mode in ("plain", "connect", "https"):
            argv = [sys.executable, "-m", "bench.proxy_load", mode, str(ports[mode]), ca.name]
            subprocess.run(pinned(LOAD_CPU, [*argv, "1"]), capture_output=True, check=True)  # warm-up
            before = httpx.get(server.url + "/health").json()["last_seq"]
            done = subprocess.run(pinned(LOAD_CPU, [*argv, str(seconds)]), capture_output=True, text=True, check=True)
            entry: Results = json.loads(done.stdout)
            entry["recorded"] = httpx.get(server.url + "/health").json()["last_seq"] - before
            results[{"plain": "plain_http", "connect": "proxy_connect_tls", "https": "https_listener"}[mode]] = entry
    return results


def bench_smtp(messages: int) -> Results:
    with mockhub() as server:
        out = subprocess.run(
            pinned(LOAD_CPU, [sys.executable, "-m", "bench.smtp_load", str(server.smtp_port), str(messages)]),
            capture_output=True,
            text=True,
            check=True,
        )
        results: Results = json.loads(out.stdout)
        results["recorded"] = httpx.get(server.url + "/calls/count", params={"service": "smtp"}).json()["count"]
    return results


def _fill(server: Server, total: int) -> None:
    """Post webhooks spread over 100 namespaces until the journal holds `total` calls."""
    lua = (
        post_lua(WEBHOOK_BODY)
        + """
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/ns/ns-" .. (n % 100) .. "/webhooks/fill/" .. n)
end
"""
    )
    while True:
        have = httpx.get(server.url + "/health").json()["calls"]
        if have >= total:
            return
        wrk(server.url + "/", lua, seconds=max(1, min(10, (total - have) // 8000 + 1)))


def _timed(fn: Callable[[], object], repeat: int = 30) -> dict[str, float]:
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": round(statistics.median(samples), 2), "p90_ms": round(samples[int(len(samples) * 0.9)], 2)}


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return await reader.readexactly(length)


async def _wakeup_async(port: int, tries: int) -> list[float]:
    """Long poll on one connection, POST on another, both from one event loop (no threads, no GIL)."""
    samples = []
    poll_r, poll_w = await asyncio.open_connection("127.0.0.1", port)
    post_r, post_w = await asyncio.open_connection("127.0.0.1", port)
    for i in range(tries):
        poll_w.write(f"GET /calls?path=/webhooks/wake/{i}&wait=10 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await asyncio.sleep(0.05)  # let the long poll register
        body = b"{}"
        request = f"POST /webhooks/wake/{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        sent = time.perf_counter()
        post_w.write(request.encode() + body)
        await _read_response(poll_r)
        samples.append((time.perf_counter() - sent) * 1000)
        await _read_response(post_r)
    poll_w.close()
    post_w.close()
    return samples


def _wakeup(port: int, tries: int = 30) -> dict[str, float]:
    """From sending a POST to receiving the answer of the long poll it completes."""
    samples = sorted(asyncio.run(_wakeup_async(port, tries)))
    return {"median_ms": round(statistics.median(samples), 2), "p90_ms": round(samples[int(len(samples) * 0.9)], 2)}


def bench_journal(sizes: list[int]) -> Results:
    results: Results = {}
    with (
        mockhub("--max-calls", str(max(sizes) + 1000)) as server,
        httpx.Client(base_url=server.url) as client,
        on_load_core(),
    ):
        client.get("/calls", params={"limit": 1})  # the inspection API is built lazily: count it in the baseline
        rss0 = server.rss_bytes()
        for size in sizes:
            _fill(server, size)
            health = client.get("/health").json()
            last = health["last_seq"]
            queries: dict[str, Callable[[], object]] = {
                "namespace_limit_100": lambda: client.get("/calls", params={"namespace": "ns-7", "limit": 100}),
                "count_namespace": lambda: client.get("/calls/count", params={"namespace": "ns-7"}),
                "recent_after_seq": lambda last=last: client.get("/calls", params={"after": last - 10}),
                "namespace_and_path_glob": lambda: client.get(
                    "/calls", params={"namespace": "ns-7", "path": "/webhooks/fill/1*", "limit": 50}
                ),
                "full_scan_contains_no_match": lambda: client.get("/calls", params={"contains": "needle-not-there"}),
            }
            entry: Results = {"calls": health["calls"]}
            for name, query in queries.items():
                entry[name] = _timed(query, repeat=20)
            entry["long_poll_wakeup"] = _wakeup(server.http_port)
            rss = server.rss_bytes()
            entry["rss_mb"] = round(rss / 2**20, 1)
            entry["bytes_per_call"] = round((rss - rss0) / max(1, health["calls"]))
            entry["body_bytes_per_call"] = round(health["body_bytes"] / max(1, health["calls"]))
            results[f"at_{size}"] = entry
    return results


def bench_startup(runs: int = 5) -> Results:
    ready, healthy = [], []
    for _ in range(runs):
        started = time.perf_counter()
        with mockhub() as server:
            healthy.append((time.perf_counter() - started) * 1000)
            ready.append(server.started_s * 1000)
    return {
        "start_to_ready_ms": round(statistics.median(ready)),
        "start_to_first_health_ms": round(statistics.median(healthy)),
    }


def bench_llm(concurrent: int = 20) -> Results:
    """A streamed OpenAI answer of 100 tokens at `ttft_ms: 200, tokens_per_s: 50`: about 0.2 + 99/50 = 2.2 s.

    Measured with the openai SDK: time to the first content chunk, to the end, the tokens the usage
    reported; then `concurrent` such streams at once (the pacing sleeps: they overlap, not queue),
    and a plain answer, which waits what its stream would take.
    """
    import openai

    content = " ".join(["word"] * 100)  # 100 tokens in cl100k_base and in the approximation
    timing = {"ttft_ms": 200, "tokens_per_s": 50}
    results: Results = {}
    with mockhub() as server:
        stub = {"service": "openai", "reply": {"content": content, **timing}}
        httpx.post(server.url + "/stubs", json=stub).raise_for_status()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-bench", max_retries=0)
        ask: Any = [{"role": "user", "content": "go"}]
        client.chat.completions.create(model="gpt-4o", messages=ask)  # warm up (tokenizer, connections)

        started = time.perf_counter()
        first: float | None = None
        tokens = 0
        stream = client.chat.completions.create(
            model="gpt-4o", messages=ask, stream=True, stream_options={"include_usage": True}
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first is None:
                first = time.perf_counter() - started
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        total = time.perf_counter() - started
        results["stream_100_tokens"] = {
            **timing,
            "completion_tokens": tokens,
            "ttft_s": round(first or 0.0, 3),
            "total_s": round(total, 3),
            "expected_s": 2.18,
        }

        async def many() -> list[float]:
            aclient = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="sk-bench", max_retries=0)

            async def one() -> float:
                begun = time.perf_counter()
                async for _ in await aclient.chat.completions.create(model="gpt-4o", messages=ask, stream=True):
                    pass
                return time.perf_counter() - begun

            return await asyncio.gather(*(one() for _ in range(concurrent)))

        started = time.perf_counter()
        each = asyncio.run(many())
        results[f"streams_at_once_{concurrent}"] = {
            "wall_s": round(time.perf_counter() - started, 3),
            "slowest_s": round(max(each), 3),
            "median_s": round(statistics.median(each), 3),
        }

        started = time.perf_counter()
        client.chat.completions.create(model="gpt-4o", messages=ask)
        results["plain_100_tokens"] = {"total_s": round(time.perf_counter() - started, 3), "expected_s": 2.18}
    return results


def _table(results: Results, prefix: str = "") -> list[str]:
    rows = []
    for key, value in results.items():
        if isinstance(value, dict):
            rows.extend(_table(value, f"{prefix}{key}."))
        else:
            rows.append(f"{prefix}{key:<40} {value}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke check, not figures to quote")
    parser.add_argument(
        "--only",
        nargs="*",
        # `store` needs valkey-server or redis-server, so it runs only when asked for.
        choices=["webhooks", "compare", "fakes", "intercept", "smtp", "journal", "startup", "llm", "store"],
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    seconds = 3 if args.quick else 10
    sizes = [10_000] if args.quick else [10_000, 100_000]
    todo = args.only or ["webhooks", "compare", "fakes", "intercept", "smtp", "journal", "startup", "llm"]
    results: Results = {}
    for name in todo:
        print(f"... {name}", file=sys.stderr, flush=True)
        if name == "webhooks":
            results[name] = bench_webhooks(seconds)
        elif name == "compare":
            results[name] = bench_compare(seconds, warmup_rounds=1 if args.quick else 6)
        elif name == "fakes":
            results[name] = bench_fakes(seconds)
        elif name == "intercept":
            results[name] = bench_intercept(seconds)
        elif name == "smtp":
            results[name] = bench_smtp(500 if args.quick else 5000)
        elif name == "journal":
            results[name] = bench_journal(sizes)
        elif name == "startup":
            results[name] = bench_startup()
        elif name == "llm":
            results[name] = bench_llm(5 if args.quick else 20)
        elif name == "store":
            from bench.store import bench_store

            results[name] = bench_store(seconds)
    print("\n".join(_table(results)))
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
