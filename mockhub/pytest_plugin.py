"""The pytest plugin (entry point `pytest11`): the `mockhub` fixture.

- `mockhub_server` (session): a `MockHub` client of the server every test uses: the one at
  `--mockhub-url` / `MOCKHUB_URL` (a sidecar), else one started in-process on free loopback ports.
- `mockhub` (function): the same server seen through a fresh namespace, so tests running in parallel
  (`pytest -n auto`) never see each other's calls, faults or stubs. Its `urls`, `smtp_host`,
  `smtp_port` and `env()` point the application under test at that namespace.

This module is imported by every pytest run in an environment where mockhub is installed, so it
imports nothing heavy until a test asks for a fixture.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mockhub.client import MockHub

__all__ = ["mockhub", "mockhub_server"]

_HUB = pytest.StashKey["MockHub"]()
_CONNECT_TIMEOUT = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockhub", "mockhub (fake SMTP, Slack, Twilio, webhooks, OpenAI, Anthropic)")
    group.addoption(
        "--mockhub-url",
        dest="mockhub_url",
        default=None,
        metavar="URL",
        help="use the mockhub running at URL (a sidecar) instead of starting one in-process; "
        "default: $MOCKHUB_URL, else in-process on free ports",
    )


def _server_url(config: pytest.Config) -> str | None:
    url: str | None = config.getoption("mockhub_url", None) or os.environ.get("MOCKHUB_URL") or None
    return url.rstrip("/") if url else None


def pytest_report_header(config: pytest.Config) -> str | None:
    url = _server_url(config)
    return f"mockhub: {url}" if url else None


def _connect(url: str, timeout: float) -> MockHub:
    """A client of the server at `url`, once it reports ready (a sidecar may still be starting)."""
    from mockhub.client import MockHub

    hub = MockHub(url)
    deadline = time.monotonic() + timeout
    problem = "no answer"
    while True:
        try:
            health = hub.health()
            if health.status == "ok":
                return hub
            problem = f"status {health.status!r}"
        except Exception as exc:  # connection refused, DNS, a non-mockhub answer: retry until the deadline
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            hub.close()
            raise pytest.UsageError(f"mockhub at {url} is not ready after {timeout:g}s ({problem})")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def mockhub_server(pytestconfig: pytest.Config) -> Iterator[MockHub]:
    """The session's mockhub (all namespaces): the sidecar at `--mockhub-url`/`MOCKHUB_URL`, else in-process."""
    url = _server_url(pytestconfig)
    if url is not None:
        hub = _connect(url, _CONNECT_TIMEOUT)
        try:
            yield hub
        finally:
            hub.close()
        return

    from mockhub.client import MockHub
    from mockhub.server import ThreadedHub
    from mockhub.settings import Settings

    # MOCKHUB_* settings still apply (record dir, limits...); only where to listen is forced.
    running = ThreadedHub(Settings(host="127.0.0.1", http_port=0, smtp_port=0)).start()
    hub = MockHub(running.url, smtp_host="127.0.0.1", smtp_port=running.smtp_port)
    try:
        yield hub
    finally:
        hub.close()
        running.stop()


def _namespace(node_name: str) -> str:
    """Readable (the test's name, for the UI) and unique (a random tail, across xdist workers)."""
    stem = re.sub(r"[^a-z0-9_.-]+", "-", node_name.lower()).strip("-.")[:40].rstrip("-.") or "test"
    return f"{stem}-{secrets.token_hex(4)}"


@pytest.fixture
def mockhub(mockhub_server: MockHub, request: pytest.FixtureRequest) -> Iterator[MockHub]:
    """mockhub seen through a fresh namespace: its calls, its rules, its `urls` and `env()`."""
    hub = mockhub_server.namespaced(_namespace(request.node.name))
    request.node.stash[_HUB] = hub
    try:
        yield hub
    finally:
        del request.node.stash[_HUB]
        # Rules go (they could only ever match this namespace anyway); calls stay, for the web UI.
        try:
            hub.clear_faults()
            hub.clear_stubs()
        except Exception:  # the server is gone: nothing left to clean
            pass


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """When a test using `mockhub` fails, show the calls its namespace received."""
    report = yield
    if report.when == "call" and report.failed:
        hub = item.stash.get(_HUB, None)
        if hub is not None:
            try:
                from mockhub.client import describe

                calls = hub.calls(limit=200)
                lines = [describe(c, 140, show_namespace=False) for c in calls] or ["(none)"]
                report.sections.append((f"mockhub calls (namespace {hub.namespace})", "\n".join(lines)))
            except Exception as exc:  # never hide the real failure behind a reporting problem
                report.sections.append(("mockhub calls", f"could not list calls: {exc}"))
    return report
