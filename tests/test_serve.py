"""`mockhub serve` as a real process: free ports, settings from the environment, clean SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

READY = re.compile(r"ready: http://[^:]+:(\d+)\s+smtp://[^:]+:(\d+)")


def _start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockhub", "serve", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = READY.search(line)
        if match:
            return proc, int(match.group(1)), int(match.group(2))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"mockhub serve did not announce its ports: {proc.stderr.read()}")


def test_serve_on_free_ports_then_sigterm_exits_cleanly() -> None:
    proc, http_port, smtp_port = _start("--host", "127.0.0.1", "--http-port", "0", "--smtp-port", "0")
    try:
        assert http_port > 0 and smtp_port > 0
        health = httpx.get(f"http://127.0.0.1:{http_port}/health").json()
        assert (health["status"], health["http_port"], health["smtp_port"]) == ("ok", http_port, smtp_port)
        httpx.post(f"http://127.0.0.1:{http_port}/webhooks/x", json={}).raise_for_status()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_settings_come_from_the_environment() -> None:
    env = {"MOCKHUB_HOST": "127.0.0.1", "MOCKHUB_HTTP_PORT": "0", "MOCKHUB_SMTP_PORT": "0", "MOCKHUB_MAX_CALLS": "2"}
    proc, http_port, _ = _start(env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as client:
            for _ in range(3):
                client.post("/webhooks/x", json={}).raise_for_status()
            assert client.get("/health").json()["evicted"] == 1
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_flag_overrides_the_environment() -> None:
    env = {"MOCKHUB_HOST": "127.0.0.1", "MOCKHUB_HTTP_PORT": "1", "MOCKHUB_SMTP_PORT": "0"}
    proc, http_port, _ = _start("--http-port", "0", env=env)
    try:
        assert http_port not in (0, 1)
    finally:
        proc.terminate()
        proc.wait(15)


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "mockhub", "--version"], capture_output=True, text=True, check=True)
    assert re.fullmatch(r"\d+\.\d+\.\d+\n", out.stdout)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_evicted_calls_are_freed_in_a_served_process() -> None:
    """`mockhub serve` moves aged objects out of the GC's walk; evicted calls must still be freed."""
    proc, http_port, _ = _start("--host", "127.0.0.1", "--http-port", "0", "--smtp-port", "0", "--max-calls", "200")
    body = b"x" * 8192
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}") as client:
            for _ in range(500):
                client.post("/webhooks/warm", content=body).raise_for_status()
            before = _rss(proc.pid)
            for _ in range(6000):  # 48 MiB of bodies through a journal that keeps 200 calls
                client.post("/webhooks/churn", content=body).raise_for_status()
            grown = _rss(proc.pid) - before
            health = client.get("/health").json()
        assert health["calls"] == 200 and health["evicted"] == 6300
        assert grown < 16 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB while holding 200 calls"
    finally:
        proc.terminate()
        proc.wait(15)


def test_the_inspection_api_answers_from_the_moment_of_readiness() -> None:
    """The API is built in the background after the listeners are up; early requests wait for it."""
    proc, http_port, _ = _start("--host", "127.0.0.1", "--http-port", "0", "--smtp-port", "0")
    try:
        url = f"http://127.0.0.1:{http_port}"
        # Sent the instant "ready" is printed, before the API can have been built.
        assert httpx.get(f"{url}/calls", timeout=30).json() == {"calls": [], "count": 0}
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert "/calls" in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        proc.terminate()
        proc.wait(15)


def test_ready_json_is_one_line_on_stdout_with_every_bound_address() -> None:
    import json
    import smtplib

    flags = ["--host", "127.0.0.1", "--http-port", "0", "--smtp-port", "0", "--smtps-port", "0", "--ready-json"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockhub", "serve", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        ready = json.loads(proc.stdout.readline())
        assert set(ready) >= {"version", "host", "http_port", "smtp_port", "smtps_port", "urls"}
        assert ready["urls"]["http"] == f"http://127.0.0.1:{ready['http_port']}"
        assert httpx.get(f"{ready['urls']['http']}/health").json()["smtp_port"] == ready["smtp_port"]
        with smtplib.SMTP("127.0.0.1", ready["smtp_port"], timeout=5) as smtp:
            assert smtp.noop()[0] == 250
        # The human line stays on stderr.
        assert "ready: http://127.0.0.1:" in proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_a_port_in_use_is_one_clear_line_and_exit_code_2() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        for flags in (("--http-port", port, "--smtp-port", "0"), ("--http-port", "0", "--smtp-port", port)):
            done = subprocess.run(
                [sys.executable, "-m", "mockhub", "serve", "--host", "127.0.0.1", *flags],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 2, done.stderr
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("mockhub: error:"), done.stderr
            assert "in use" in lines[0] and "Traceback" not in done.stderr
