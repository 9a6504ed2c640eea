"""Helpers for the memory and chaos tests: a real `mockhub serve` process, its RSS, big recordings, a probe."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

READY = re.compile(r"ready: http://[^:]+:(\d+)\s+smtp://[^:]+:(\d+)")


@dataclass
class Served:
    """A `mockhub serve` child process (so its memory is its own)."""

    proc: subprocess.Popen[str]
    http_port: int
    smtp_port: int
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def status(self, key: str = "VmRSS") -> int:
        """A /proc/PID/status figure in KiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/status")

    def rss_mib(self) -> float:
        return self.status("VmRSS") / 1024


@contextmanager
def serve(*args: str) -> Iterator[Served]:
    """`python -m mockhub serve` on free loopback ports with `args`; stopped (SIGTERM) at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockhub", "serve", "--host=127.0.0.1", "--http-port=0", "--smtp-port=0", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MOCKHUB_")},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    ports = None
    seen: list[str] = []
    while ports is None and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if found := READY.search(line):
            ports = int(found.group(1)), int(found.group(2))
    if ports is None:
        proc.kill()
        raise AssertionError("mockhub serve did not start: " + "".join(seen))
    served = Served(proc, *ports)

    def drain() -> None:  # a full stderr pipe would block the server
        assert proc.stderr is not None
        for line in proc.stderr:
            served.stderr.append(line)

    threading.Thread(target=drain, daemon=True).start()
    try:
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_recording(path: Path, count: int, service: str = "webhook", path_prefix: str = "/webhooks/bulk") -> Path:
    """A record file of `count` small webhook calls (what `--replay` loads): a big journal in seconds."""
    with path.open("wb") as out:
        for i in range(1, count + 1):
            body = b'{"event":"e%d","n":%d}' % (i, i)
            record = {
                "id": f"c_{i:012x}{0:020x}",
                "seq": i,
                "time": "2026-01-01T00:00:00.000000Z",
                "service": service,
                "namespace": "default",
                "direction": "inbound",
                "method": "POST",
                "path": f"{path_prefix}/{i % 7}",
                "query": {},
                "headers": {"content-type": "application/json", "host": "127.0.0.1"},
                "body": body.decode(),
                "body_encoding": "utf-8",
                "data": {"event": f"e{i}", "n": i},
                "response": {"status": 200, "headers": {}, "body": "ok", "body_encoding": "utf-8"},
                "fault": None,
                "stub": None,
                "duration_ms": 0.1,
            }
            out.write(orjson.dumps(record) + b"\n")
    return path


class Probe:
    """A client on its own connection asking `/livez` over and over: how long others wait meanwhile."""

    def __init__(self, url: str, interval: float = 0.002) -> None:
        self.url = url
        self.interval = interval
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    client.get(f"{self.url}/livez").raise_for_status()
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.latencies.append(time.perf_counter() - start)
                time.sleep(self.interval)

    def __enter__(self) -> Probe:
        self._thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000 if ordered else 0.0

    def max_ms(self) -> float:
        return max(self.latencies, default=0.0) * 1000
