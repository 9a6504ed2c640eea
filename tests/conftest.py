"""Shared fixtures: one real mockhub per test session, on loopback ports, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import new_namespace

from mockhub.server import ThreadedHub


@pytest.fixture(scope="session")
def server() -> Iterator[ThreadedHub]:
    """A real mockhub (HTTP + SMTP) serving from a background thread on free loopback ports."""
    with ThreadedHub() as running:
        yield running


@pytest.fixture
def api(server: ThreadedHub) -> Iterator[httpx.Client]:
    """An HTTP client for the server (fakes and inspection API alike), after forgetting everything."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post("/reset").raise_for_status()
        yield client


@pytest.fixture
def base_url(server: ThreadedHub, api: httpx.Client) -> str:
    """The server's base URL, after a reset."""
    return server.url


@pytest.fixture
def ns() -> str:
    """A fresh namespace name, so a test's calls and rules are its own."""
    return new_namespace()
