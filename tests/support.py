"""Helpers the test files share: the inspection API over plain httpx, rules, ports, extra servers."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mockhub.server import ThreadedHub
from mockhub.settings import Settings


def calls(api: httpx.Client, service: str | None = None, **filters: Any) -> list[dict[str, Any]]:
    """`GET /calls` (of one service when given), as plain JSON: every page, following `next`."""
    params = filters if service is None else {"service": service, **filters}
    result: list[dict[str, Any]] = []
    while True:
        r = api.get("/calls", params=params)
        r.raise_for_status()
        body = r.json()
        result += body["calls"]
        if not body.get("next"):
            return result
        params = {**params, "cursor": body["next"]}


def wait_calls(api: httpx.Client, count: int, **filters: Any) -> list[dict[str, Any]]:
    """Long-poll `GET /calls` until `count` calls match (10 s at most)."""
    body = api.get("/calls", params={**filters, "wait": 10, "min": count}).json()
    assert not body.get("timed_out"), f"only {body['count']} calls arrived: {body['calls']}"
    result: list[dict[str, Any]] = body["calls"]
    return result


def add_rule(api: httpx.Client, kind: str, service: str | None, **spec: Any) -> dict[str, Any]:
    """`POST /faults` or `POST /stubs`; the rule must be created."""
    r = api.post(f"/{kind}", json={"service": service, **spec})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def add_fault(api: httpx.Client, service: str | None = None, **spec: Any) -> dict[str, Any]:
    return add_rule(api, "faults", service, **spec)


def add_stub(api: httpx.Client, service: str | None = None, **spec: Any) -> dict[str, Any]:
    return add_rule(api, "stubs", service, **spec)


def free_port() -> int:
    """A loopback TCP port nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def extra_hub(**settings: Any) -> Iterator[ThreadedHub]:
    """A second mockhub on free loopback ports with its own settings (credentials, limits...)."""
    with ThreadedHub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, **settings)) as running:
        yield running


def post(url: str, payload: object) -> httpx.Response:
    return httpx.post(url, json=payload, timeout=10)


def later(delay: float, fn: Callable[..., object], *args: object) -> threading.Thread:
    """Call `fn(*args)` from another thread after `delay` seconds (a late-arriving call)."""

    def run() -> None:
        time.sleep(delay)
        fn(*args)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def new_namespace(prefix: str = "t-") -> str:
    return prefix + secrets.token_hex(4)


@contextmanager
def own_fake_hub(folder: Path, module: str, source: str, class_name: str) -> Iterator[ThreadedHub]:
    """A mockhub serving a fake of one's own: `source` written to `folder/module.py`, loaded by `--fakes`."""
    import sys

    (folder / f"{module}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, fakes=f"{module}:{class_name}")
        with ThreadedHub(settings) as hub:
            yield hub
    finally:
        sys.path.remove(str(folder))


NODE_DIR = Path(__file__).parent / "node"
_node_lock = threading.Lock()


def run_node(source: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run a Node ES module (`source`) beside tests/node's packages and return its stdout.

    The packages in tests/node/package-lock.json are installed on first use and whenever the lock
    changes (`npm ci`), so the
    README's one test command needs no separate step. A non-zero exit fails with Node's stderr.
    """
    import fcntl
    import hashlib
    import os
    import subprocess

    # A file lock, not only a thread lock: pytest-xdist's workers are processes.
    with _node_lock, open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Installed again whenever the lock file changed (a merged branch added a package).
        wanted = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
        stamp = NODE_DIR / "node_modules" / ".mockhub-lock-sha256"
        if not stamp.exists() or stamp.read_text() != wanted:
            subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)
            stamp.write_text(wanted)
    script = NODE_DIR / f"script-{secrets.token_hex(4)}.mjs"
    script.write_text(source)
    try:
        done = subprocess.run(
            ["node", str(script)],
            cwd=NODE_DIR,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    finally:
        script.unlink()
    assert done.returncode == 0, f"node exited {done.returncode}:\n{done.stderr}"
    return done.stdout
