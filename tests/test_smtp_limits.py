"""SMTP limits: idle and trickling sessions time out with 421, others are served meanwhile,
a fault's own delay is not counted as idling, and sessions beyond the limit are refused with 421."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage

import httpx
import pytest
from support import extra_hub

from mockhub.server import ThreadedHub
from mockhub.settings import Settings

TIMEOUT = 10


def _message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.com"
    msg["Subject"] = subject
    msg.set_content("hello\n")
    return msg


def _read_reply(sock: socket.socket) -> bytes:
    """One (possibly multi-line) SMTP reply, or what came before the server closed."""
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.fixture(scope="module")
def impatient() -> Iterator[ThreadedHub]:
    with extra_hub(smtp_timeout=1.0) as hub:
        yield hub


@pytest.fixture(scope="module")
def crowded() -> Iterator[ThreadedHub]:
    with extra_hub(smtp_max_connections=3) as hub:
        yield hub


def test_idle_sessions_get_421_and_are_closed_while_others_are_served(impatient: ThreadedHub) -> None:
    def idle() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", impatient.smtp_port), timeout=TIMEOUT) as sock:
            assert _read_reply(sock).startswith(b"220 ")
            sock.sendall(b"EHLO idler\r\n")
            assert _read_reply(sock).startswith(b"250")
            started = time.monotonic()
            return _read_until_closed(sock), time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        idlers = [pool.submit(idle) for _ in range(4)]
        # Served while four sessions sit idle.
        with smtplib.SMTP("127.0.0.1", impatient.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.send_message(_message("served meanwhile"))
        for future in idlers:
            said, waited = future.result()
            assert said.startswith(b"421 4.4.2 "), said
            assert b"timeout" in said
            assert waited < TIMEOUT  # closed by the server, not by our own socket timeout

    calls = httpx.get(f"{impatient.url}/calls", params={"service": "smtp"}).json()["calls"]
    assert [c["data"]["subject"] for c in calls if c["method"] == "DATA"].count("served meanwhile") == 1


def test_a_trickling_message_is_cut_off_and_not_recorded_as_delivered(impatient: ThreadedHub) -> None:
    with socket.create_connection(("127.0.0.1", impatient.smtp_port), timeout=TIMEOUT) as sock:
        assert _read_reply(sock).startswith(b"220 ")
        sock.sendall(b"EHLO slow\r\nMAIL FROM:<slow@example.com>\r\nRCPT TO:<trickle@example.com>\r\nDATA\r\n")
        replies = b""
        while replies.count(b"\r\n") < 9:  # the EHLO lines, 250, 250, 354
            replies += sock.recv(65536)
        assert b"354 " in replies
        sock.sendall(b"Subject: trickle\r\n\r\n")
        closed_by_server = False
        for _ in range(40):  # each line resets nothing: the DATA transfer as a whole must fit the timeout
            time.sleep(0.1)
            try:
                sock.sendall(b"x\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed_by_server = True
                break
        said = _read_until_closed(sock)
        assert closed_by_server or said.startswith(b"421 ")
    calls = httpx.get(f"{impatient.url}/calls", params={"to": "trickle@example.com"}).json()["calls"]
    assert not [c for c in calls if c["response"] and c["response"]["status"] == 250]


def test_a_fault_delay_longer_than_the_idle_timeout_is_not_cut(impatient: ThreadedHub) -> None:
    with httpx.Client(base_url=impatient.url, timeout=TIMEOUT) as api:
        fault = {"service": "smtp", "stage": "mail", "action": "delay", "delay_ms": 2000}
        assert api.post("/faults", json=fault).status_code == 201
        try:
            with smtplib.SMTP("127.0.0.1", impatient.smtp_port, timeout=TIMEOUT) as smtp:
                smtp.send_message(_message("patient"))
        finally:
            api.delete("/faults")
        found = api.get("/calls", params={"subject": "patient", "method": "DATA"}).json()["calls"]
        assert len(found) == 1
        assert found[0]["response"]["status"] == 250


def test_the_idle_clock_restarts_when_a_fault_delay_ends() -> None:
    """After a delayed reply the client gets a whole idle timeout for its next command.

    With a 2 s idle timeout and a 3 s delay on MAIL, a timer that merely skipped ahead while
    mockhub was busy would run out 1 s after the MAIL reply; the client here speaks after 1.5 s.
    """
    settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, smtp_timeout=2.0)
    with ThreadedHub(settings) as hub, httpx.Client(base_url=hub.url, timeout=TIMEOUT) as api:
        fault = {"service": "smtp", "stage": "mail", "action": "delay", "delay_ms": 3000}
        assert api.post("/faults", json=fault).status_code == 201
        with socket.create_connection(("127.0.0.1", hub.smtp_port), timeout=TIMEOUT) as sock:
            assert _read_reply(sock).startswith(b"220 ")
            sock.sendall(b"HELO client\r\n")
            assert _read_reply(sock).startswith(b"250 ")
            sock.sendall(b"MAIL FROM:<a@example.com>\r\n")
            assert _read_reply(sock).startswith(b"250 ")
            time.sleep(1.5)
            sock.sendall(b"RCPT TO:<b@example.com>\r\n")
            assert _read_reply(sock).startswith(b"250 ")


def test_sessions_beyond_the_limit_get_421(crowded: ThreadedHub) -> None:
    held = []
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", crowded.smtp_port), timeout=TIMEOUT)
            held.append(sock)
            assert _read_reply(sock).startswith(b"220 ")
        with socket.create_connection(("127.0.0.1", crowded.smtp_port), timeout=TIMEOUT) as extra:
            said = _read_until_closed(extra)
        assert said.startswith(b"421 4.7.0 "), said
        assert b"too many connections" in said
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", crowded.smtp_port, timeout=TIMEOUT)
        assert refused.value.smtp_code == 421
    finally:
        for sock in held:
            sock.close()
    # Once the crowd has gone, mail flows again.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            with smtplib.SMTP("127.0.0.1", crowded.smtp_port, timeout=TIMEOUT) as smtp:
                smtp.send_message(_message("after the crowd"))
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert httpx.get(f"{crowded.url}/calls/count", params={"subject": "after the crowd"}).json()["count"] == 1
