"""Small bounds of issue 23: SSE heartbeat, JSON bodies stored once, deeply nested email, one-line SMTP replies."""

from __future__ import annotations

import smtplib
from pathlib import Path

import httpx
import orjson
import pytest

from mockhub.recording import load_journal
from mockhub.server import ThreadedHub
from mockhub.services.smtp.mime import MAX_DEPTH
from mockhub.settings import Settings


@pytest.mark.parametrize("heartbeat", ["1e-6", "0", "0.049", "-1"])
def test_an_sse_heartbeat_below_the_minimum_is_refused(api: httpx.Client, heartbeat: str) -> None:
    r = api.get("/calls/stream", params={"heartbeat": heartbeat})
    assert r.status_code == 422, r.text
    assert "heartbeat" in r.json()["error"]["message"]
    assert "0.05" in r.json()["error"]["message"]


def test_the_minimum_heartbeat_streams(api: httpx.Client) -> None:
    with api.stream("GET", "/calls/stream", params={"heartbeat": "0.05"}) as r:
        assert r.status_code == 200
        seen = ""
        for text in r.iter_text():
            seen += text
            if seen.count(": ping") >= 2:
                break
    assert ": ping" in seen


def test_a_json_body_parsed_into_data_is_stored_once(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, record_dir=tmp_path)
    payload = {"event": "deploy", "marker": "M4RK3R", "nested": {"list": [1, 2, 3]}}
    with ThreadedHub(settings) as hub, httpx.Client(base_url=hub.url) as c:
        assert c.post("/webhooks/once", json=payload).status_code == 200
        # A body whose data is not the body itself (a form) keeps its `data`.
        assert c.post("/webhooks/form", data={"a": "1"}).status_code == 200
        live = c.get("/calls").json()["calls"]
    lines = [line for f in sorted(tmp_path.glob("*.jsonl")) for line in f.read_bytes().splitlines()]
    assert len(lines) == 2
    assert lines[0].count(b"M4RK3R") == 1, lines[0]
    first = orjson.loads(lines[0])
    assert "data" not in first and first["data_is_body"] is True
    assert orjson.loads(lines[1])["data"] == {"a": "1"}
    # Replay rebuilds `data`, and the API serves the same call as before the restart.
    calls, _ = load_journal(tmp_path)
    assert [c.data for c in calls] == [payload, {"a": "1"}]
    with ThreadedHub(Settings(host="127.0.0.1", http_port=0, smtp_port=0, replay=tmp_path)) as again:
        replayed = httpx.get(again.url + "/calls").json()["calls"]
    assert [c["data"] for c in replayed] == [c["data"] for c in live]
    assert [c["body"] for c in replayed] == [c["body"] for c in live]


def _nested(depth: int) -> bytes:
    head = "From: a@example.com\r\nTo: b@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    leaf = 'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.bin"\r\n\r\nDATA\r\n'
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return (head + opening + leaf + closing).encode()


@pytest.mark.parametrize("depth", [5000, 400, MAX_DEPTH + 5])
def test_a_deeply_nested_email_gets_a_clear_answer_not_a_500(
    server: ThreadedHub, api: httpx.Client, depth: int
) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], _nested(depth))
    (call,) = api.get("/calls", params={"service": "smtp", "method": "DATA"}).json()["calls"]
    data = call["data"]
    assert data["subject"] == "deep" and data["to"] == ["b@example.com"]
    assert "MimeTooDeep" in data["defects"]
    assert "nested too deep" in data["parse_error"]
    assert data["attachments"] == []
    r = api.get(f"/calls/{call['id']}/attachments/0")
    assert r.status_code in (404, 422), r.text
    assert r.json()["error"]["code"] in ("attachment_not_found", "unreadable_body")
    assert api.get("/health").json()["status"] == "ok"


def test_nesting_within_the_bound_is_read_in_full(server: ThreadedHub, api: httpx.Client) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], _nested(MAX_DEPTH - 1))
    (call,) = api.get("/calls", params={"service": "smtp", "method": "DATA"}).json()["calls"]
    assert [a["filename"] for a in call["data"]["attachments"]] == ["x.bin"]
    assert api.get(f"/calls/{call['id']}/attachments/0").content == b"DATA"


@pytest.mark.parametrize("message", ["ok\r\n250 2.0.0 forged", "a\nb", "nul\x00"])
def test_an_smtp_reply_text_is_one_line(api: httpx.Client, message: str) -> None:
    r = api.post(
        "/faults", json={"service": "smtp", "action": "smtp_reply", "stage": "rcpt", "code": 550, "message": message}
    )
    assert r.status_code == 422, r.text
    assert "one line" in r.json()["error"]["message"]
