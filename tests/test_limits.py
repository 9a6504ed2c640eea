"""Limits with clear errors; slow clients do not hold connections or starve others."""

from __future__ import annotations

import concurrent.futures
import socket
from collections.abc import Iterator

import httpx
import pytest
from support import extra_hub

from mockhub.server import ThreadedHub


@pytest.fixture(scope="module")
def strict() -> Iterator[ThreadedHub]:
    with extra_hub(
        header_timeout=0.5,
        body_timeout=0.5,
        max_header_count=20,
        max_header_bytes=4096,
        max_body_bytes=1000,
        max_connections=8,
    ) as hub:
        yield hub


def _raw(hub: ThreadedHub, data: bytes, read_timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", hub.hub.http_port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_a_trickling_head_gets_408_while_others_are_served(strict: ThreadedHub) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(_raw, strict, b"POST /webhooks/slow HTTP/1.1\r\nHost: x\r\n") for _ in range(3)]
        # Served while three slow clients hold their connections open.
        assert httpx.post(f"{strict.url}/webhooks/fast", json={}).status_code == 200
        for future in slow:
            assert future.result().startswith(b"HTTP/1.1 408 ")


def test_a_silent_connection_is_closed(strict: ThreadedHub) -> None:
    assert _raw(strict, b"").startswith(b"HTTP/1.1 408 ")


def test_too_many_headers_get_431(strict: ThreadedHub) -> None:
    headers = {f"x-h{i}": "v" for i in range(30)}
    r = httpx.post(f"{strict.url}/webhooks/x", json={}, headers=headers)
    assert r.status_code == 431
    assert "headers" in r.text
    assert httpx.get(f"{strict.url}/health").json()["status"] == "ok"


def test_a_huge_header_gets_431(strict: ThreadedHub) -> None:
    r = httpx.post(f"{strict.url}/webhooks/x", json={}, headers={"x-big": "a" * 8000})
    assert r.status_code == 431


def test_an_oversized_body_gets_413_and_is_recorded(strict: ThreadedHub) -> None:
    with httpx.Client(base_url=strict.url) as client:
        r = client.post("/webhooks/big", content=b"x" * 5000)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "too_large"
        call = client.get("/calls", params={"path": "/webhooks/big"}).json()["calls"][-1]
        assert call["response"]["status"] == 413
        assert call["data"] == {"error": "body_too_large"}


def test_a_trickling_body_gets_408_and_is_recorded(strict: ThreadedHub) -> None:
    head = b"POST /webhooks/slowbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"
    assert _raw(strict, head).startswith(b"HTTP/1.1 408 ")
    calls = httpx.get(f"{strict.url}/calls", params={"path": "/webhooks/slowbody"}).json()["calls"]
    assert calls[-1]["data"] == {"error": "body_timeout"}


def test_connections_beyond_the_limit_get_503(strict: ThreadedHub) -> None:
    with httpx.Client(base_url=strict.url) as client:
        client.post("/faults", json={"service": "webhook", "action": "delay", "delay_ms": 700, "times": None})
        try:

            def post(i: int) -> int:
                return httpx.post(f"{strict.url}/webhooks/crowd", json={"i": i}, timeout=10).status_code

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(post, range(16)))
        finally:
            client.delete("/faults")
        assert statuses.count(200) >= 1
        assert 503 in statuses
        assert client.get("/health").json()["status"] == "ok"
