"""The inspection API reads at most `max_api_body_bytes` of a request body: 413 beyond, found while reading."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from support import extra_hub

from mockhub.server import ThreadedHub

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small() -> Iterator[ThreadedHub]:
    with extra_hub(max_api_body_bytes=LIMIT) as hub:
        yield hub


@pytest.mark.parametrize("path", ["/stubs", "/faults", "/reset", "/calls"])
def test_a_body_over_the_limit_gets_413_in_mockhubs_shape(small: ThreadedHub, path: str) -> None:
    r = httpx.post(small.url + path, content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert str(LIMIT) in error["message"] and "max_api_body_bytes" in error["message"]
    assert r.headers["connection"] == "close"


def test_a_chunked_body_is_refused_while_it_arrives(small: ThreadedHub) -> None:
    """No Content-Length to go by: the limit is found while reading, long before the body ends."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(300 * 16):  # 300 MiB, were it all read
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    try:
        r = httpx.post(small.url + "/stubs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text
    except httpx.WriteError:
        pass  # the server answered and hung up mid-body: a client may see either
    # Refused after the limit plus what the sockets buffer, not after 300 MiB.
    assert sent < 64 * 1024 * 1024, sent
    assert httpx.get(small.url + "/health").status_code == 200


def test_a_declared_huge_body_is_refused_before_a_byte_of_it(small: ThreadedHub) -> None:
    with socket.create_connection(("127.0.0.1", small.hub.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /faults HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 314572800\r\n\r\n"
        )
        answer = b""
        started = time.monotonic()
        while b"\r\n\r\n" not in answer and time.monotonic() - started < 10:
            answer += sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer


def test_bodies_within_the_limit_work_and_the_default_is_a_few_mib(small: ThreadedHub, api: httpx.Client) -> None:
    body = {"service": "webhook", "response": {"status": 200, "body": "y" * (LIMIT - 200)}}
    r = httpx.post(small.url + "/stubs", json=body)
    assert r.status_code == 201, r.text
    # The default server takes a 4 MiB stub (a big fixture answer) and refuses 9 MiB.
    assert api.post("/stubs", json={"response": {"body": "z" * (4 << 20)}}).status_code == 201
    r = api.post("/stubs", json={"response": {"body": "z" * (9 << 20)}})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    # The fakes keep their own (larger) limit: max_body_bytes.
    assert api.post("/webhooks/big", content=b"a" * (9 << 20)).status_code == 200
