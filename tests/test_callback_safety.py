"""Twilio status callbacks never reach mockhub's own inspection API, and their answers are read only so far."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from support import add_fault, add_stub, extra_hub, wait_calls
from twilio.rest import Client

from mockhub.server import ThreadedHub

ACCOUNT = "AC" + "0" * 31 + "1"
TO, FROM = "+15551234567", "+15550000000"


def twilio(url: str) -> Client:
    client = Client(ACCOUNT, "test-auth-token", environment={})
    client.api.base_url = url
    return client


@pytest.fixture
def hub() -> Iterator[ThreadedHub]:
    # The documented allowlist for local tests: it must not open the inspection API to callbacks.
    with extra_hub(callback_allow="localhost,127.0.0.1,::1", twilio_callback_delay_ms=0) as running:
        yield running


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/reset",
        "http://localhost:{port}/reset?namespace=",
        "http://127.0.0.1:{port}/faults",
        "http://127.0.0.1:{port}/ns/x/../reset",
        "http://127.0.0.1:{port}/webhooks/../reset",
        "http://[::1]:{port}/calls",
        "http://127.0.0.1:{smtp}/reset",
    ],
)
def test_a_callback_aimed_at_mockhubs_own_api_is_refused_and_recorded(hub: ThreadedHub, target: str) -> None:
    url = target.format(port=hub.hub.http_port, smtp=hub.smtp_port)
    with httpx.Client(base_url=hub.url, timeout=10) as api:
        fault = add_fault(api, "slack", action="error", preset="server_error", times=None)
        stub = add_stub(api, "openai", reply={"content": "kept"})
        assert api.post("/webhooks/before", json={"i": 1}).status_code == 200
        twilio(hub.url).messages.create(to=TO, from_=FROM, body="hi", status_callback=url)
        outbound = wait_calls(api, 2, service="twilio", direction="outbound")
        for call in outbound:
            assert call["response"] is None
            assert "mockhub's own listener" in call["data"]["error"], call["data"]
            assert "inspection API" in call["data"]["error"]
        # Nothing was wiped or added: the calls, the fault and the stub are all still there.
        assert api.get(f"/faults/{fault['id']}").status_code == 200
        assert api.get(f"/stubs/{stub['id']}").status_code == 200
        assert api.get("/faults").json()["count"] == 1
        assert api.get("/calls/count", params={"path": "/webhooks/before"}).json()["count"] == 1


def test_a_callback_to_a_fakes_route_on_mockhub_itself_is_delivered(hub: ThreadedHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as api:
        for url in (f"{hub.url}/webhooks/status", f"http://localhost:{hub.hub.http_port}/ns/cb/webhooks/status"):
            twilio(hub.url).messages.create(to=TO, from_=FROM, body="hi", status_callback=url)
        outbound = wait_calls(api, 4, service="twilio", direction="outbound")
        assert [c["response"]["status"] for c in outbound] == [200] * 4, outbound
        assert api.get("/calls/count", params={"path": "/webhooks/status"}).json()["count"] == 4


class EndlessAnswer:
    """A callback target that answers 200 and then sends bytes until the client hangs up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1600000000\r\n\r\n")
            chunk = b"x" * 65536
            try:
                while self.sent < 1_600_000_000:
                    conn.sendall(chunk)
                    self.sent += len(chunk)
            except OSError:
                pass
        self.done.set()


def test_a_huge_callback_answer_is_read_only_up_to_its_bound() -> None:
    target = EndlessAnswer()
    with extra_hub(twilio_callback_delay_ms=0, twilio_final_status="failed") as hub:
        with httpx.Client(base_url=hub.url, timeout=10) as api:
            url = f"http://127.0.0.1:{target.port}/cb"
            started = time.monotonic()
            # twilio_final_status=failed: one status step, so one callback.
            twilio(hub.url).messages.create(to=TO, from_=FROM, body="hi", status_callback=url)
            (call,) = wait_calls(api, 1, service="twilio", direction="outbound")
            assert time.monotonic() - started < 8
            assert call["response"]["status"] == 200
            assert len(call["response"]["body"]) == 64 * 1024
            assert call["data"]["answer_truncated"] is True
        assert target.done.wait(10), "mockhub never hung up on the endless answer"
    # Read up to the bound and hung up: what was sent is what sockets buffer, not 1.6 GB.
    assert target.sent < 64 * 1024 * 1024, target.sent
