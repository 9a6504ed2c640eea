"""Processes for benchmarks: a server pinned to one core, load generators pinned to the other."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY = re.compile(r"ready: http://[^:]+:(\d+)(?:\s+smtp://[^:]+:(\d+))?")
SERVER_CPU = "0"
LOAD_CPU = "1"


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """Pin a process to one core (when taskset exists and the machine has two), so server and load don't share."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cpu, *argv]
    return argv


@contextmanager
def on_load_core() -> Iterator[None]:
    """Run this process's own clients (query timings, the long poll) off the server's core.

    Scoped, not process-wide: unpinned children (the head-to-head comparison) inherit affinity.
    """
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    http_port: int
    smtp_port: int | None
    started_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@contextmanager
def mockhub(*args: str, env: dict[str, str] | None = None, pin: bool = True) -> Iterator[Server]:
    """`mockhub serve` on free loopback ports, pinned to the server core unless `pin` is False."""
    argv = [sys.executable, "-m", "mockhub", "serve", "--host", "127.0.0.1", "--http-port", "0", "--smtp-port", "0"]
    argv = [*argv, *args]
    with _serve(pinned(SERVER_CPU, argv) if pin else argv, env) as server:
        yield server


@contextmanager
def starlette_baseline(pin: bool = True) -> Iterator[Server]:
    """A bare Starlette app doing what a webhook fake must (parse, keep, answer), for comparison."""
    argv = [sys.executable, "-m", "bench.baseline_starlette"]
    with _serve(pinned(SERVER_CPU, argv) if pin else argv, None) as server:
        yield server


@contextmanager
def _serve(argv: list[str], env: dict[str, str] | None) -> Iterator[Server]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, cwd=Path(__file__).parent.parent
    )
    assert proc.stderr is not None
    try:
        while True:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"server exited: {argv}")
            match = READY.search(line)
            if match:
                smtp = int(match.group(2)) if match.group(2) else None
                server = Server(proc, int(match.group(1)), smtp, time.perf_counter() - started)
                break
        # Ready means the listeners accept; confirm over HTTP like a user would.
        httpx.get(server.url + "/health").raise_for_status()
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, lua: str, seconds: int = 10, connections: int = 50, threads: int = 1, pin: bool = True) -> WrkResult:
    """Run wrk (Debian's package) on the load core with a Lua script that shapes the request."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        argv = [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            script.name,
            url,
        ]
        argv = pinned(LOAD_CPU, argv) if pin else argv
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for m in re.finditer(r"(?:Non-2xx or 3xx responses|Socket errors:.*?timeout)\s*:?\s*(\d+)", out):
        errors += int(m.group(1))
    return WrkResult(requests, seconds, rps, p50, p99, errors)


def post_lua(body: str, content_type: str = "application/json", headers: dict[str, str] | None = None) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = [==[{body}]==]", f'wrk.headers["Content-Type"] = "{content_type}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items()]
    return "\n".join(lines) + "\n"


WIREMOCK_VERSION = "3.13.2"
_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mockhub-bench"


def wiremock_jar() -> Path | None:
    """WireMock's standalone jar, from the npm registry's `wiremock` package (cached, never committed)."""
    jar = _CACHE / f"wiremock-standalone-{WIREMOCK_VERSION}.jar"
    if jar.exists():
        return jar
    if shutil.which("java") is None or shutil.which("npm") is None:
        return None
    _CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", f"wiremock@{WIREMOCK_VERSION}", "--silent"], cwd=tmp, check=True, capture_output=True
        )
        subprocess.run(["tar", "xzf", f"wiremock-{WIREMOCK_VERSION}.tgz"], cwd=tmp, check=True)
        shutil.copy(Path(tmp) / "package" / "build" / jar.name, jar)
    return jar


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def wiremock(jar: Path, pin: bool = False) -> Iterator[Server]:
    """WireMock standalone (request journal on, as by default) answering webhooks like mockhub's fake."""
    port = free_port()
    started = time.perf_counter()
    argv = ["java", "-jar", str(jar), "--port", str(port), "--disable-banner"]
    proc = subprocess.Popen(
        pinned(SERVER_CPU, argv) if pin else argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(proc, port, None, 0.0)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{server.url}/__admin/health").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("WireMock did not start") from None
                time.sleep(0.2)
        server.started_s = time.perf_counter() - started
        mapping = {
            "request": {"method": "POST", "urlPathPattern": "/webhooks/.*"},
            "response": {"status": 200, "jsonBody": {"ok": True}, "headers": {"Content-Type": "application/json"}},
        }
        httpx.post(f"{server.url}/__admin/mappings", json=mapping).raise_for_status()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
