"""The cost of a call with many rules: 100,000 stubs and 20,000 faults spread over services and namespaces.

    python bench/rules.py [--stubs 100000] [--faults 20000] [--calls 300]

The rules are loaded from stub files at start (`--stubs`), as a big suite's would be; none of them
matches the measured calls, so each call considers every rule that could apply to it and answers
normally. Each call is a webhook POST timed from the client (median and p90): one in a namespace
of its own (no rule names it), one in a namespace that 1/1000 of the rules name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import mockhub, on_load_core

SERVICES = ("webhook", "openai", "slack", "twilio", "sendgrid", "mailgun", "anthropic", "discord")
NAMESPACES = 1000


def write_rules(folder: Path, stubs: int, faults: int) -> None:
    stub_entries: list[dict[str, object]] = []
    fault_entries: list[dict[str, object]] = []
    for i in range(stubs):
        stub_entries.append(
            {
                "service": SERVICES[i % len(SERVICES)],
                "match": {"namespace": f"ns-{i % NAMESPACES}", "path": f"/never/{i}"},
                "response": {"status": 200, "json": {"i": i}},
            }
        )
    for i in range(faults):
        fault_entries.append(
            {
                "service": SERVICES[i % len(SERVICES)],
                "match": {"namespace": f"ns-{i % NAMESPACES}", "path": f"/never/{i}"},
                "action": "error",
                "status": 503,
                "times": None,
            }
        )
    (folder / "rules.json").write_text(json.dumps({"stubs": stub_entries, "faults": fault_entries}))


def timed_calls(url: str, count: int) -> dict[str, float]:
    samples: list[float] = []
    with on_load_core(), httpx.Client(base_url=url, timeout=60) as client:
        for i in range(count + 20):
            started = time.perf_counter()
            r = client.post(url, json={"i": i})
            elapsed = (time.perf_counter() - started) * 1000
            assert r.status_code == 200, r.text
            if i >= 20:  # warm-up
                samples.append(elapsed)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3), "p90_ms": round(samples[int(len(samples) * 0.9)], 3)}


def run(stubs: int, faults: int, calls: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_rules(folder, stubs, faults)
        started = time.perf_counter()
        env = {"MOCKHUB_MAX_RULES": str(stubs + faults + 10)}
        with mockhub("--stubs", str(folder), env=env) as server:
            loaded_s = time.perf_counter() - started
            lonely = timed_calls(f"{server.url}/ns/bench-alone/webhooks/x", calls)
            crowded = timed_calls(f"{server.url}/ns/ns-0/webhooks/x", calls)
            rss = server.rss_bytes()
    return {
        "stubs": stubs,
        "faults": faults,
        "start_s": round(loaded_s, 2),
        "rss_mib": round(rss / 1024 / 1024, 1),
        "call_own_namespace": lonely,
        "call_namespace_with_rules": crowded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stubs", type=int, default=100_000)
    parser.add_argument("--faults", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [
        run(0, 0, args.calls),
        run(args.stubs, 0, args.calls),
        run(0, args.faults, args.calls),
        run(args.stubs, args.faults, args.calls),
    ]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
