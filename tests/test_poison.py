"""Issue 22: no single input poisons the journal, stalls the other clients, or locks out /health.

The rows of the issue's table, each against a real server: bodies whose parsed `data` no reader
could serialise (every fake fuzzed, then every read path), multipart and MIME bodies past the parse
limits, a backtracking `match.regex`, and the connection limit. The stall tests run mockhub in its
own process (as `mockhub serve`), so the probe measures the server's event loop, not this process.
"""

from __future__ import annotations

import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import given, settings
from serving import Served, serve
from support import extra_hub, own_fake_hub

from mockhub.client import MockHub
from mockhub.safedata import MAX_DATA_DEPTH, TRUNCATED
from mockhub.server import ThreadedHub
from mockhub.services.forms import MultipartError, _email_head, _simple_head

# -- row 1: nothing a client sends makes a later read fail ------------------------------------------


def _deep_object(depth: int, leaf: str = '"x"') -> str:
    return '{"a":' * depth + leaf + "}" * depth


def _deep_array(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


DEEP = _deep_object(300)  # past orjson's writer (254) and pydantic's reader (~200)
DEEPEST = _deep_array(1000)  # near orjson's reader limit (1024): it parses
# Fields fakes parse JSON out of: Slack's blocks, Telegram's reply_markup, Discord's payload_json...
JSON_FIELDS = ("blocks", "attachments", "payload", "payload_json", "reply_markup", "entities", "metadata")


def _poison_bodies() -> list[tuple[str, bytes]]:
    common = {"text": "poison", "channel": "#c", "chat_id": "1", "content": "poison", "to": "a@example.com"}
    as_json = {**common, **{k: "@" for k in JSON_FIELDS}}
    json_body = orjson.dumps(as_json).decode().replace('"@"', DEEP)
    form = urlencode({**common, **dict.fromkeys(JSON_FIELDS, DEEP)}).encode()
    boundary = "p0is0n"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in {**common, **dict.fromkeys(JSON_FIELDS, DEEP)}.items()
    ]
    multipart = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return [
        ("application/json", json_body.encode()),
        ("application/json", DEEP.encode()),
        ("application/json", ('{"messages": ' + DEEPEST + ', "text": "poison"}').encode()),
        ("application/json", b'{"n": 123456789012345678901234567890, "s": "\\ud800", "x": NaN, "i": Infinity}'),
        ("application/x-www-form-urlencoded", form),
        (f"multipart/form-data; boundary={boundary}", multipart),
    ]


_AUTH = [
    {
        "authorization": "Bearer tok-1",
        "x-api-key": "tok-1",
        "x-goog-api-key": "tok-1",
        "x-postmark-server-token": "tok-1",
    },
    {"authorization": "Basic YXBpOmtleS0x"},
]


def _sigv4(service: str) -> dict[str, str]:
    return {
        "authorization": f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc123",
        "x-amz-date": "20260101T000000Z",
    }


def _concrete(pattern: str) -> str:
    return re.sub(r"\{\w+\}", "x1", re.sub(r"\{\w+:path\}", "a/b", pattern))


def _targets(api: httpx.Client) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, auth headers) for every route of every HTTP fake in the catalogue that takes a body."""
    targets: list[tuple[str, str, dict[str, str]]] = []
    for info in api.get("/services").json()["services"]:
        for spec in info["routes"]:
            methods, pattern = spec.split(" ", 1)
            verbs = methods.split()
            if "*" not in verbs and "POST" not in verbs:
                continue
            path = _concrete(pattern)
            auths = [*_AUTH, _sigv4("ses"), _sigv4("sns")] if path == "/" else _AUTH
            targets.extend(("POST", path, auth) for auth in auths)
    return targets


def _read_everything(url: str) -> list[dict[str, Any]]:
    """Every read path of the inspection API, over all the calls; returns `/calls`."""
    with httpx.Client(base_url=url, timeout=60) as api:
        # Page by page (`next`): a page ends early past its byte bound, and these calls are big.
        listed: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 1000}
        while True:
            r = api.get("/calls", params=params)
            assert r.status_code == 200, r.text[:300]
            page = r.json()
            listed.extend(page["calls"])
            if not page.get("next"):
                break
            params["cursor"] = page["next"]
        for call in listed:
            one = api.get(f"/calls/{call['id']}")
            assert one.status_code == 200, one.text[:300]
            assert api.get(f"/calls/{call['id']}/raw").status_code == 200
        har = api.get("/calls/export", params={"format": "har"})
        assert har.status_code == 200
        assert len(har.json()["log"]["entries"]) == sum(1 for c in listed if c["service"] != "smtp")
        jsonl = api.get("/calls/export", params={"format": "jsonl"})
        assert jsonl.status_code == 200
        lines = [orjson.loads(line) for line in jsonl.content.splitlines() if line]
        assert {line["id"] for line in lines} == {c["id"] for c in listed}
        # SSE from the start: every call arrives as a frame that parses.
        seen: set[str] = set()
        with api.stream("GET", "/calls/stream", params={"after": 0, "heartbeat": 1}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seen.add(orjson.loads(line[6:])["id"])
                    if len(seen) == len(listed):
                        break
        assert seen == {c["id"] for c in listed}
    # The Python client parses with pydantic, whose reader stops at ~200 levels.
    client = MockHub(url)
    assert len(client.calls(limit=100_000)) == len(listed)
    return listed


def test_poison_bodies_to_every_fake_leave_every_read_working(tmp_path: Path) -> None:
    bodies = _poison_bodies()
    record_dir = tmp_path / "rec"
    sent: dict[str, bytes] = {}
    with extra_hub(record_dir=record_dir) as hub, httpx.Client(base_url=hub.url, timeout=30) as api:
        targets = _targets(api)
        assert len({path for _, path, _ in targets}) >= 40, "the catalogue's routes are all fuzzed"
        for i, (method, path, auth) in enumerate(targets):
            for j, (content_type, body) in enumerate(bodies):
                # Each request in a namespace of its own: its record says which body it carried.
                ns = f"p-{i}-{j}"
                headers = {"content-type": content_type, "x-mockhub-namespace": ns, **auth}
                r = api.request(method, path, content=body, headers=headers)
                assert r.status_code < 500 or r.status_code in (502, 503), (path, content_type, r.text[:300])
                sent[ns] = body
        assert api.get("/health").json()["status"] == "ok"
        listed = _read_everything(hub.url)
        assert len(listed) >= len(sent) * 0.9, "nearly every request is recorded (a fake's own 404s may not be)"
        for call in listed:
            assert api.get(f"/calls/{call['id']}/raw").content == sent[call["namespace"]]
        truncated = [c for c in listed if c["data_truncated"]]
        assert {"webhook", "slack", "openai"} <= {c["service"] for c in truncated}, "deep JSON kept: cut, flagged"
        for call in truncated:
            assert TRUNCATED in orjson.dumps(call["data"]).decode()
    # The record file replays: every line is readable, and so is the journal it rebuilds.
    (record,) = record_dir.glob("*.jsonl")
    with extra_hub(replay=record) as again:
        assert len(_read_everything(again.url)) == len(listed)


_STDLIB_FAKE = '''
import json
from mockhub.services.base import Request, Reply, Service, json_reply, route


class OddService(Service):
    """A fake of one's own that parses with the stdlib: NaN, lone surrogates, huge integers, int keys."""

    name = "odd"

    def routes(self):
        return [route("POST", "/odd/v1/in", self.answer, self.parse)]

    def parse(self, request: Request):
        parsed = json.loads(request.body)
        return {"parsed": parsed, 7: "an int key", "huge": 10**400, "set": {1, 2}}

    async def answer(self, request: Request) -> Reply:
        return json_reply({"ok": True})
'''


def test_data_no_reader_can_serialise_is_cleaned_and_flagged(tmp_path: Path) -> None:
    body = b'{"s": "lone \\ud800 surrogate", "nan": NaN, "inf": -Infinity, "big": 1' + b"0" * 30 + b"}"
    with own_fake_hub(tmp_path, "odd_fake", _STDLIB_FAKE, "OddService") as hub:
        r = httpx.post(f"{hub.url}/odd/v1/in", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        (call,) = _read_everything(hub.url)
        assert call["data_truncated"] is True
        data = call["data"]
        assert data["parsed"]["s"] == "lone \ufffd surrogate"
        assert data["parsed"]["nan"] is None and data["parsed"]["inf"] is None
        assert data["parsed"]["big"] == 10**30 or data["parsed"]["big"] == str(10**30)
        assert data["7"] == "an int key"
        assert data["huge"] == str(10**400)
        assert httpx.get(f"{hub.url}/calls/{call['id']}/raw").content == body


def test_data_is_cut_at_the_documented_depth_and_kept_whole_below_it(server: ThreadedHub, api: httpx.Client) -> None:
    shallow = _deep_object(MAX_DATA_DEPTH - 1)
    api.post("/webhooks/shallow", content=shallow, headers={"content-type": "application/json"})
    api.post("/webhooks/deep", content=DEEP, headers={"content-type": "application/json"})
    calls = {c["path"]: c for c in api.get("/calls", params={"service": "webhook"}).json()["calls"]}
    kept = calls["/webhooks/shallow"]
    assert kept["data_truncated"] is False
    assert kept["data"] == orjson.loads(shallow)
    cut = calls["/webhooks/deep"]
    assert cut["data_truncated"] is True
    node, depth = cut["data"], 1
    while isinstance(node, dict):
        node, depth = node["a"], depth + 1
    assert node == TRUNCATED and depth == MAX_DATA_DEPTH + 1
    assert api.get(f"/calls/{cut['id']}/raw").content == DEEP.encode()
    assert api.get("/calls", params={"text": "zzz-not-there"}).status_code == 200


# -- rows 2-4: expensive parsing off the event loop, or bounded -----------------------------------------

PROBE_P99_MS = 250  # the goal is 100 ms; generous, for a shared 2-core machine


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """`mockhub serve` in its own process."""
    with serve() as running:
        yield running


@pytest.fixture
def fresh(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=120) as api:
        api.post("/reset")
        yield api


def probe_while(url: str, action: Callable[[], Any]) -> tuple[Any, float]:
    """Run `action` while a probe GETs /health every 10 ms on its own connection; its p99 in ms.

    Latency counts from when each probe was due, so a stalled server delays every probe planned
    during the stall, not only the one in flight (no coordinated omission).
    """
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            due = time.perf_counter()
            while not stop.is_set():
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                client.get("/health")
                done = time.perf_counter()
                while due <= done:
                    latencies.append(done - due)
                    due += 0.01

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(0.2)
    try:
        result = action()
    finally:
        time.sleep(0.1)
        stop.set()
        thread.join(60)
    latencies.sort()
    return result, latencies[int(len(latencies) * 0.99)] * 1000


def _multipart(parts: int, size: int = 1) -> tuple[bytes, str]:
    boundary = "XyZb0undary"
    value = "v" * size
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n{value}\r\n' for i in range(parts)
    )
    return (body + f"--{boundary}--\r\n").encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/api/chat.postMessage", {"authorization": "Bearer xoxb-1"}),
        ("/v3/example.com/messages", {"authorization": "Basic YXBpOmtleS0x"}),
        ("/webhooks/parts", {}),
    ],
)
def test_a_multipart_body_of_20000_parts_is_refused_without_stalling_others(
    served: Served, fresh: httpx.Client, path: str, auth: dict[str, str]
) -> None:
    body, content_type = _multipart(20_000)
    r, p99 = probe_while(
        served.url, lambda: fresh.post(path, content=body, headers={"content-type": content_type, **auth})
    )
    assert r.status_code == 413, r.text  # in the fake's own error shape
    assert p99 < PROBE_P99_MS, f"probe p99 {p99:.0f} ms while a 20,000-part body was parsed"
    (call,) = fresh.get("/calls").json()["calls"]
    assert call["data"]["error"] == "too_many_parts"
    assert "more than 1000 parts" in call["data"]["parse_error"]
    assert fresh.get(f"/calls/{call['id']}/raw").content == body
    r = fresh.get(f"/calls/{call['id']}/attachments/0")
    assert r.status_code == 422 and r.json()["error"]["code"] == "unreadable_body", r.text


def test_a_large_multipart_within_the_limits_is_parsed_off_the_event_loop(served: Served, fresh: httpx.Client) -> None:
    body, content_type = _multipart(1000, size=2000)  # 2 MB, 1,000 parts: allowed, and parsed in a thread
    r, p99 = probe_while(
        served.url, lambda: fresh.post("/webhooks/big", content=body, headers={"content-type": content_type})
    )
    assert r.status_code == 200, r.text
    print(f"probe p99 {p99:.0f} ms")
    assert p99 < PROBE_P99_MS, f"probe p99 {p99:.0f} ms"
    (call,) = fresh.get("/calls").json()["calls"]
    assert len(call["data"]) == 1000 and call["data"]["f999"] == "v" * 2000


def _nested_mime(depth: int) -> bytes:
    head = "From: a@example.com\r\nTo: b@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    leaf = 'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.bin"\r\n\r\nDATA\r\n'
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return (head + opening + leaf + closing).encode()


def test_mime_nested_5000_deep_neither_stalls_others_nor_breaks_its_attachments(
    served: Served, fresh: httpx.Client
) -> None:
    message = _nested_mime(5000)

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", served.smtp_port, timeout=60) as smtp:
            smtp.sendmail("a@example.com", ["b@example.com"], message)

    _, p99 = probe_while(served.url, send)
    assert p99 < PROBE_P99_MS, f"probe p99 {p99:.0f} ms while a message nested 5,000 deep was parsed"
    (call,) = fresh.get("/calls", params={"method": "DATA"}).json()["calls"]
    assert call["data"]["subject"] == "deep" and "MimeTooDeep" in call["data"]["defects"]
    r = fresh.get(f"/calls/{call['id']}/attachments/0")
    assert r.status_code in (404, 422), r.text
    assert fresh.get(f"/calls/{call['id']}/raw").content.replace(b"\r\n", b"\n") == message.replace(b"\r\n", b"\n")


def test_a_backtracking_regex_fault_does_not_stall_others(served: Served, fresh: httpx.Client) -> None:
    r = fresh.post(
        "/faults", json={"service": "webhook", "action": "error", "status": 503, "match": {"regex": "(a+)+$"}}
    )
    assert r.status_code == 201, r.text

    def hit() -> list[int]:
        return [fresh.post("/webhooks/re", content=body).status_code for body in (b"a" * 26 + b"!", b"a" * 5000)]

    statuses, p99 = probe_while(served.url, hit)
    assert statuses == [200, 503]  # the pattern still means what it says
    assert p99 < PROBE_P99_MS, f"probe p99 {p99:.0f} ms while a backtracking pattern was matched"


@pytest.mark.parametrize("pattern", [r"(a)\1", r"foo(?=bar)", r"(?<!x)y", "(unclosed"])
def test_a_regex_the_linear_engine_cannot_run_is_a_422_at_creation(api: httpx.Client, pattern: str) -> None:
    for kind, extra in (("faults", {"action": "error", "status": 500}), ("stubs", {"reply": {"text": "x"}})):
        r = api.post(f"/{kind}", json={"service": "webhook", "match": {"regex": pattern}, **extra})
        assert r.status_code == 422, r.text
        assert "match.regex" in r.text


def test_the_parse_limits_are_settings(tmp_path: Path) -> None:
    with extra_hub(max_parts=5, max_part_headers=3) as hub, httpx.Client(base_url=hub.url) as api:
        body, content_type = _multipart(5)
        assert api.post("/webhooks/ok", content=body, headers={"content-type": content_type}).status_code == 200
        body, content_type = _multipart(6)
        r = api.post("/webhooks/no", content=body, headers={"content-type": content_type})
        assert r.status_code == 413 and "more than 5 parts" in r.json()["error"]["message"]
        many = (
            b"--b\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(4))
            + b'Content-Disposition: form-data; name="a"\r\n\r\nv\r\n--b--\r\n'
        )
        r = api.post("/webhooks/headers", content=many, headers={"content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413 and "header lines" in r.text
        errors = [c["data"].get("error") for c in api.get("/calls").json()["calls"]]
        assert errors == [None, "too_many_parts", "too_many_headers"]  # oldest first


# -- row 9: health stays reachable at the connection limit ----------------------------------------------


def test_health_answers_with_every_connection_taken() -> None:
    limit = 20
    with extra_hub(max_connections=limit) as hub:
        held = [socket.create_connection(("127.0.0.1", hub.hub.http_port)) for _ in range(limit)]
        try:
            time.sleep(0.2)
            assert httpx.get(f"{hub.url}/webhooks/x").status_code == 503  # the limit still holds for the rest
            r = httpx.get(f"{hub.url}/health")
            assert r.status_code == 200, r.text
            info = r.json()
            assert info["max_connections"] == limit
            assert info["connections"] >= limit
            assert httpx.get(f"{hub.url}/livez").status_code == 200
            assert httpx.get(f"{hub.url}/readyz").status_code == 200
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 5
        while httpx.get(f"{hub.url}/health").json()["connections"] > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{hub.url}/health").json()["connections"] <= 1


# -- the multipart fast path reads part heads exactly as the stdlib parser does --------------------------

_value = st.text(alphabet=' abcAB01._-;="\t/\\*:', max_size=12)
_header = st.one_of(
    st.builds(
        lambda n, f: f"Content-Disposition: form-data; name={n}" + (f"; filename={f}" if f else ""), _value, _value
    ),
    st.builds(lambda t: f"Content-Type: {t}", _value),
    st.builds(
        lambda k, v: f"{k}: {v}", st.sampled_from(["content-disposition", "CONTENT-TYPE", "X-A", " Bad"]), _value
    ),
    st.sampled_from(['Content-Disposition: form-data; name="a"; filename="b c.txt"', " folded", "no colon"]),
)


@given(lines=st.lists(_header, min_size=1, max_size=4))
@settings(max_examples=400, deadline=None)
def test_the_fast_part_head_reader_agrees_with_the_stdlib(lines: list[str]) -> None:
    head = ("\r\n" + "\r\n".join(lines)).encode()
    fast = _simple_head(head)
    try:
        slow: tuple[str, str | None, str] | None = _email_head(head)
    except MultipartError:
        slow = None
    assert fast is None or fast == slow, (head, fast, slow)
