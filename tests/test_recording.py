"""Recordings: the durable JSONL journal, replay, HAR export, stub/fault files, memory bounds."""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockhub.journal import Call, Journal, ResponseRecord, format_time
from mockhub.recording import JsonlSink, RecordingError, call_from_dict, load_journal, load_rule_files
from mockhub.server import ThreadedHub
from mockhub.services import SERVICES
from mockhub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _settings(**kw: Any) -> Settings:
    return Settings(host="127.0.0.1", http_port=0, smtp_port=0, **kw)


@pytest.fixture
def hub_factory() -> Iterator[Any]:
    """Start ThreadedHubs with given settings; every one is stopped at the end of the test."""
    started: list[ThreadedHub] = []

    def start(**kw: Any) -> ThreadedHub:
        hub = ThreadedHub(_settings(**kw)).start()
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


def _lines(directory: Path) -> list[dict[str, Any]]:
    """The record lines, with `data` put back where a line stores a JSON body once (`data_is_body`)."""
    out = []
    for file in sorted(directory.glob("*.jsonl")):
        for line in file.read_bytes().splitlines():
            if line.strip():
                record = orjson.loads(line)
                if record.get("data_is_body"):
                    record["data"] = call_from_dict(record, directory).data
                out.append(record)
    return out


# -- durability ------------------------------------------------------------------------------------


def _start_process(record_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mockhub",
            "serve",
            "--host",
            "127.0.0.1",
            "--http-port",
            "0",
            "--smtp-port",
            "0",
            "--record-dir",
            str(record_dir),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    found: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            m = re.search(r"mockhub \S+ ready: (http://\S+)", raw.decode())
            if m:
                found.append(m.group(1).replace("0.0.0.0", "127.0.0.1"))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(20)
    if not found:
        proc.kill()
        raise AssertionError("mockhub serve did not announce itself")
    return proc, found[0]


def test_kill_9_mid_stream_loses_no_acknowledged_call(tmp_path: Path) -> None:
    proc, url = _start_process(tmp_path)
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            n = 0
            while not stop.is_set():
                marker = f"w{worker}-n{n}"
                n += 1
                try:
                    r = client.post(f"/webhooks/kill/{worker}", json={"marker": marker, "pad": "x" * 200})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        acked.append(marker)

    workers = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # while the senders are still sending
        proc.wait(10)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300
    recorded = {line["data"]["marker"] for line in _lines(tmp_path)}
    missing = [m for m in acked if m not in recorded]
    assert not missing, f"{len(missing)} acknowledged calls missing from the record file, e.g. {missing[:5]}"
    # The crash left a file replay can read.
    calls, _ = load_journal(tmp_path)
    assert len(calls) == len(recorded) >= len(acked)


# -- replay ------------------------------------------------------------------------------------------


def _drive_mixed_traffic(hub: ThreadedHub) -> None:
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        assert c.post("/webhooks/json", json={"summary": "disk full", "n": 1}).status_code == 200
        assert c.post("/webhooks/form?x=1&x=2", data={"a": "b", "to": "ops@example.com"}).status_code == 200
        binary = bytes(range(256)) * 4  # not UTF-8: kept byte-exact as base64
        c.post("/webhooks/bin", content=binary, headers={"content-type": "application/octet-stream"})
        c.post("/ns/team-a/webhooks/big", content=b"B" * 5000, headers={"content-type": "text/plain"})
        c.post("/faults", json={"service": "webhook", "match": {"path": "/webhooks/flaky"}, "preset": "server_error"})
        assert c.post("/webhooks/flaky", json={}).status_code == 500
        c.post("/faults", json={"service": "webhook", "match": {"path": "/webhooks/reset"}, "action": "reset"})
        with pytest.raises(httpx.TransportError):
            c.post("/webhooks/reset", json={})
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "ops@example.com", "Disk full"
    msg.set_content("db-1 is full")
    with smtplib.SMTP("127.0.0.1", hub.smtp_port) as smtp:
        smtp.send_message(msg)


def test_replay_round_trip_is_equal_and_seq_continues(tmp_path: Path, hub_factory: Any) -> None:
    record = tmp_path / "rec"
    first = hub_factory(record_dir=record, record_inline_max_bytes=1024)
    _drive_mixed_traffic(first)
    before = httpx.get(f"{first.url}/calls", params={"wait": 5, "min": 7}).json()["calls"]
    assert len(before) == 7
    assert (record / "bodies").is_dir()  # the 5000-byte body was stored beside the file
    assert any("body_file" in line for line in _lines(record))
    first.stop()

    second = hub_factory(replay=record)
    after = httpx.get(f"{second.url}/calls").json()["calls"]
    assert after == before
    assert {c["service"] for c in after} == {"webhook", "smtp"}
    assert any(c["body_encoding"] == "base64" for c in after)
    assert any(c["response"] is None and c["fault"]["action"] == "reset" for c in after)
    # Replayed calls are queryable like live ones, and new calls continue the seq.
    assert httpx.get(f"{second.url}/calls", params={"to": "ops@example.com", "service": "smtp"}).json()["count"] == 1
    httpx.post(f"{second.url}/webhooks/new", json={"x": 1})
    newest = httpx.get(f"{second.url}/calls", params={"order": "desc", "limit": 1}).json()["calls"][0]
    assert newest["seq"] == before[-1]["seq"] + 1
    raw = httpx.get(f"{second.url}/calls/{after[2]['id']}/raw")
    assert raw.content == bytes(range(256)) * 4

    # An export is itself a replayable journal.
    export = tmp_path / "export.jsonl"
    export.write_bytes(httpx.get(f"{second.url}/calls/export", params={"format": "jsonl"}).content)
    calls, dropped = load_journal(export)
    assert dropped == 0
    assert [c.to_api() for c in calls][: len(before)] == before


def test_stream_update_lines_are_folded_on_replay(tmp_path: Path) -> None:
    journal = Journal()
    recorder = JsonlSink(tmp_path)
    journal.add_sink(recorder.write)
    journal.add_update_sink(recorder.update)
    call = Call(service="openai", method="POST", path="/v1/chat/completions", body=b'{"stream": true}')
    call.response = ResponseRecord(200, {"content-type": "text/event-stream"}, b"")
    journal.append(call)  # recorded when the stream starts, as the recorder does
    old = call.size
    call.response.body = b"data: hello\n\ndata: [DONE]\n\n"
    call.data["reply"] = "hello"
    journal.resized(call, old)  # the stream finished
    recorder.close()
    lines = _lines(tmp_path)
    assert [("update" in line) for line in lines] == [False, True]
    assert lines[0]["response"]["body"] == ""
    (loaded,), _ = load_journal(tmp_path)
    assert loaded.to_dict() == call.to_dict()


def test_torn_last_line_is_ignored_and_bad_lines_skipped(tmp_path: Path) -> None:
    good = Call(service="webhook", method="POST", path="/webhooks/a", id="c_1", seq=1)
    line = orjson.dumps(good.to_dict())
    file = tmp_path / "calls.jsonl"
    file.write_bytes(line + b"\n" + line[:40])  # a crash in the middle of writing the second line
    calls, _ = load_journal(file)
    assert [c.id for c in calls] == ["c_1"]
    # A bad line never makes the whole recording unreadable: it is skipped, and said so.
    skipped: list[str] = []
    file.write_bytes(line + b"\n{oops\n" + line + b"\n")
    assert [c.id for c in load_journal(file, skipped=skipped)[0]] == ["c_1"]
    assert len(skipped) == 1 and re.search(r"calls\.jsonl:2: not valid JSON", skipped[0])
    skipped.clear()
    file.write_bytes(b'{"id": "c_2"}\n')
    assert load_journal(file, skipped=skipped)[0] == []
    assert re.search(r"calls\.jsonl:1: not a mockhub call record: KeyError\('service'\)", skipped[0])
    with pytest.raises(RecordingError, match="no such file or folder"):
        load_journal(tmp_path / "nope.jsonl")


def test_rotation_by_size_and_folder_replay(tmp_path: Path, hub_factory: Any) -> None:
    hub = hub_factory(record_dir=tmp_path, record_rotate_bytes=4096)
    with httpx.Client(base_url=hub.url) as c:
        for i in range(40):
            c.post("/webhooks/rot", json={"i": i, "pad": "p" * 300})
    hub.stop()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) >= 3
    assert all(f.stat().st_size < 4096 + 2048 for f in files)
    calls, _ = load_journal(tmp_path)
    assert [c.data["i"] for c in calls] == list(range(40))
    assert [c.seq for c in calls] == list(range(1, 41))


# -- HAR ---------------------------------------------------------------------------------------------


def _check_name_values(items: Any, where: str) -> None:
    assert isinstance(items, list), where
    for item in items:
        assert isinstance(item["name"], str) and isinstance(item["value"], str), where


def _check_custom_fields(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = {k for k in obj if k not in allowed and not k.startswith("_")}
    assert not extra, f"{where}: fields outside HAR 1.2 without a leading underscore: {extra}"


def validate_har_12(har: dict[str, Any]) -> None:
    """The HAR 1.2 structure (http://www.softwareishard.com/blog/har-12-spec/): required fields and types."""
    assert set(har) == {"log"}
    log = har["log"]
    _check_custom_fields(log, {"version", "creator", "browser", "pages", "entries", "comment"}, "log")
    assert log["version"] == "1.2"
    assert isinstance(log["creator"]["name"], str) and isinstance(log["creator"]["version"], str)
    assert isinstance(log["entries"], list)
    for i, e in enumerate(log["entries"]):
        where = f"entries[{i}]"
        _check_custom_fields(
            e,
            {"pageref", "startedDateTime", "time", "request", "response", "cache", "timings"}
            | {"serverIPAddress", "connection", "comment"},
            where,
        )
        datetime.fromisoformat(e["startedDateTime"])  # ISO 8601 with a time zone
        assert e["startedDateTime"].endswith("Z")
        assert isinstance(e["time"], int | float) and e["time"] >= 0
        req = e["request"]
        _check_custom_fields(
            req,
            {"method", "url", "httpVersion", "cookies", "headers", "queryString", "postData", "headersSize"}
            | {"bodySize", "comment"},
            where,
        )
        assert isinstance(req["method"], str)
        assert re.match(r"https?://[^/]+/", req["url"]), req["url"]
        assert isinstance(req["httpVersion"], str)
        assert isinstance(req["cookies"], list)
        _check_name_values(req["headers"], where)
        _check_name_values(req["queryString"], where)
        assert isinstance(req["headersSize"], int) and isinstance(req["bodySize"], int)
        if "postData" in req:
            assert isinstance(req["postData"]["mimeType"], str)
            assert isinstance(req["postData"]["text"], str)
        res = e["response"]
        _check_custom_fields(
            res,
            {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL", "headersSize"}
            | {"bodySize", "comment"},
            where,
        )
        assert isinstance(res["status"], int) and isinstance(res["statusText"], str)
        assert isinstance(res["httpVersion"], str) and isinstance(res["cookies"], list)
        _check_name_values(res["headers"], where)
        content = res["content"]
        assert isinstance(content["size"], int) and isinstance(content["mimeType"], str)
        assert content.get("encoding") in (None, "base64")
        if "text" in content:
            assert isinstance(content["text"], str)
        assert isinstance(res["redirectURL"], str)
        assert isinstance(res["headersSize"], int) and isinstance(res["bodySize"], int)
        assert isinstance(e["cache"], dict)
        timings = e["timings"]
        for key in ("send", "wait", "receive"):
            assert isinstance(timings[key], int | float) and timings[key] >= -1
        total = sum(v for k, v in timings.items() if k != "ssl" and v != -1)
        assert abs(total - e["time"]) < 0.01  # time is the sum of the timings


def test_har_export_is_valid_har_12(tmp_path: Path, hub_factory: Any) -> None:
    hub = hub_factory()
    _drive_mixed_traffic(hub)
    httpx.get(f"{hub.url}/calls", params={"wait": 5, "min": 7})
    r = httpx.get(f"{hub.url}/calls/export", params={"format": "har"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "mockhub.har" in r.headers["content-disposition"]
    har = r.json()
    validate_har_12(har)
    entries = har["log"]["entries"]
    assert len(entries) == 6  # the email is not HTTP
    assert "1 non-HTTP calls (SMTP) left out" in har["log"]["comment"]
    by_path = {e["request"]["url"].split("?")[0].rsplit("/", 1)[-1]: e for e in entries}
    assert by_path["json"]["request"]["postData"] == {
        "mimeType": "application/json",
        "text": '{"summary":"disk full","n":1}',
    }
    assert by_path["json"]["response"]["content"]["text"] == '{"ok":true}'
    form = by_path["form"]["request"]
    assert form["queryString"] == [{"name": "x", "value": "1"}, {"name": "x", "value": "2"}]
    assert by_path["big"]["request"]["url"].startswith(f"http://127.0.0.1:{hub.hub.http_port}/ns/team-a/")
    assert by_path["flaky"]["response"]["status"] == 500
    assert by_path["flaky"]["_mockhub"]["fault"]["preset"] == "server_error"
    assert by_path["reset"]["response"]["status"] == 0
    assert by_path["reset"]["response"]["_error"] == "connection reset"
    # The same filters as /calls.
    only = httpx.get(f"{hub.url}/calls/export", params={"format": "har", "namespace": "team-a"}).json()
    assert [e["_mockhub"]["namespace"] for e in only["log"]["entries"]] == ["team-a"]


def test_jsonl_export_filters(hub_factory: Any) -> None:
    hub = hub_factory()
    with httpx.Client(base_url=hub.url) as c:
        for i in range(5):
            c.post(f"/webhooks/e{i % 2}", json={"i": i})
        r = c.get("/calls/export", params={"path": "/webhooks/e1"})
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(x) for x in r.text.splitlines()]
        assert [x["data"]["i"] for x in lines] == [1, 3]
        assert lines == c.get("/calls", params={"path": "/webhooks/e1"}).json()["calls"]
        assert c.get("/calls/export", params={"format": "xml"}).status_code == 422


# -- stub and fault files ----------------------------------------------------------------------------


def test_stub_files_are_loaded_at_start(tmp_path: Path, hub_factory: Any) -> None:
    (tmp_path / "a-billing.yaml").write_text(
        "stubs:\n"
        "  - description: duplicate invoices\n"
        "    service: webhook\n"
        "    match: {path: /webhooks/billing}\n"
        "    response: {status: 409, json: {error: duplicate}}\n"
        "faults:\n"
        "  - service: webhook\n"
        "    match: {path: /webhooks/flaky}\n"
        "    preset: rate_limited\n"
        "    times: 2\n"
    )
    (tmp_path / "b-list.json").write_text(
        json.dumps([{"service": "webhook", "match": {"contains": "teapot"}, "response": {"status": 418, "body": "no"}}])
    )
    (tmp_path / "notes.txt").write_text("not a stub file")
    hub = hub_factory(stubs=tmp_path)
    with httpx.Client(base_url=hub.url) as c:
        r = c.post("/webhooks/billing", json={"id": 1})
        assert (r.status_code, r.json()) == (409, {"error": "duplicate"})
        assert c.post("/webhooks/x", content=b"I am a teapot").status_code == 418
        assert [c.post("/webhooks/flaky").status_code for _ in range(3)] == [429, 429, 200]
        assert c.get("/stubs").json()["count"] == 2
        assert c.get("/faults").json()["faults"][0]["fired"] == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.yaml",
            "stubs:\n  - service: webhook\n    reply: [oops\n",
            r"bad\.yaml: invalid YAML at line 4 column 1: .*while parsing a flow sequence at line 3 column 12",
        ),
        ("bad.json", '{"stubs": [}', r"bad\.json: invalid JSON at line 1 column 12"),
        (
            "typo.yaml",
            "stubs:\n  - service: webhook\n    repsonse: {status: 500}\n",
            r"typo\.yaml: stubs\[0\] \(service 'webhook'\): invalid stub: repsonse: Extra inputs are not permitted",
        ),
        (
            "both.json",
            '{"stubs": [{"service": "webhook", "response": {}}, {"reply": {"content": "a"}, "response": {}}]}',
            r"both\.json: stubs\[1\]: invalid stub: a stub needs exactly one of 'reply', 'response' or 'sequence'",
        ),
        (
            "fault.yaml",
            "faults:\n  - service: webhook\n    action: error\n",
            r"fault\.yaml: faults\[0\] \(service 'webhook'\): invalid fault: preset: action 'error' needs a 'preset'",
        ),
        (
            "type.yaml",
            "faults:\n  - {service: webhook, preset: rate_limited, times: zero}\n",
            r"type\.yaml: faults\[0\] \(service 'webhook'\): invalid fault: times: Input should be a valid integer",
        ),
        (
            "service.yaml",
            "- {service: webhok, response: {status: 200}}\n",
            r"service\.yaml: entry 0: unknown service 'webhok' \(known: .*webhook",
        ),
        ("ambiguous.yaml", "- {service: webhook}\n", r"ambiguous\.yaml: entry 0: cannot tell a stub from a fault"),
        ("top.yaml", "stub: []\n", r"top\.yaml: unknown top-level key\(s\) stub: expected 'stubs', 'faults'"),
        ("scalar.yaml", "42\n", r"scalar\.yaml: expected a list of stubs/faults"),
    ],
)
def test_invalid_stub_files_are_rejected_precisely(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(RecordingError, match=message):
        load_rule_files(tmp_path, {cls.name for cls in SERVICES})
    # The server refuses to start on it, with the same message.
    with pytest.raises(RecordingError, match=message):
        ThreadedHub(_settings(stubs=tmp_path))


def test_serve_exits_with_a_clear_error_on_an_invalid_stub_file(tmp_path: Path) -> None:
    (tmp_path / "llm.yaml").write_text("- service: webhook\n  reply: {content: 1, mood: happy}\n")
    done = subprocess.run(
        [sys.executable, "-m", "mockhub", "serve", "--http-port", "0", "--smtp-port", "0", "--stubs", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "Traceback" not in err
    assert f"mockhub: error: {tmp_path / 'llm.yaml'}: entry 0 (service 'webhook'): invalid stub:" in err
    assert "reply.content: Input should be a valid string" in err
    assert "reply.mood: Extra inputs are not permitted" in err


def test_shipped_example_files_load() -> None:
    specs = load_rule_files(ROOT / "recordings")
    assert len(specs) >= 10
    assert {s.service for s in specs} == {"openai", "anthropic", "slack", "twilio"}
    with pytest.raises(RecordingError, match="unknown service"):
        load_rule_files(ROOT / "recordings", {"webhook", "smtp"})


def _needs(*services: str) -> None:
    missing = set(services) - {cls.name for cls in SERVICES}
    if missing:
        pytest.skip(f"fakes not in this build: {sorted(missing)}")


def test_shipped_slack_outage_scenario(tmp_path: Path, hub_factory: Any) -> None:
    _needs("slack")
    (tmp_path / "slack-outage.json").write_bytes((ROOT / "recordings" / "slack-outage.json").read_bytes())
    hub = hub_factory(stubs=tmp_path)
    with httpx.Client(base_url=hub.url) as c:
        outage = [c.post("/ns/slack-outage/services/T1/B1/x", json={"text": "hi"}).status_code for _ in range(4)]
        assert outage == [503, 503, 503, 200]
        assert c.post("/services/T1/B1/x", json={"text": "hi"}).status_code == 200  # other namespaces unaffected


def test_shipped_twilio_undelivered_scenario(tmp_path: Path, hub_factory: Any) -> None:
    _needs("twilio")
    (tmp_path / "twilio.yaml").write_bytes((ROOT / "recordings" / "twilio-undelivered.yaml").read_bytes())
    hub = hub_factory(stubs=tmp_path)
    with httpx.Client(base_url=hub.url, auth=("AC1", "token")) as c:
        form = {
            "To": "+15005550006",
            "From": "+15550000000",
            "Body": "db-1 down",
            "StatusCallback": f"{hub.url}/webhooks/cb",
        }
        assert c.post("/2010-04-01/Accounts/AC1/Messages.json", data=form).status_code == 201
        form = {"To": "+15005550010", "From": "+15550000000", "Body": "x"}
        assert [c.post("/2010-04-01/Accounts/AC1/Messages.json", data=form).status_code for _ in range(3)] == [
            500,
            500,
            201,
        ]
        callbacks = c.get("/calls", params={"path": "/webhooks/cb", "wait": 10, "min": 2}).json()["calls"]
        assert callbacks[-1]["data"]["MessageStatus"] == "undelivered"
        assert callbacks[-1]["data"]["ErrorCode"] == "30003"


# -- memory bounds -----------------------------------------------------------------------------------


def test_eviction_at_max_calls_keeps_calls_on_disk(tmp_path: Path, hub_factory: Any) -> None:
    hub = hub_factory(record_dir=tmp_path, max_calls=5)
    with httpx.Client(base_url=hub.url) as c:
        for i in range(12):
            c.post("/webhooks/ev", json={"i": i})
        health = c.get("/health").json()
        assert (health["calls"], health["evicted"], health["last_seq"], health["recorded"]) == (5, 7, 12, 12)
        assert [x["seq"] for x in c.get("/calls").json()["calls"]] == [8, 9, 10, 11, 12]
        assert c.get("/calls/count").json()["count"] == 5
    hub.stop()
    assert [line["data"]["i"] for line in _lines(tmp_path)] == list(range(12))
    # Replaying more calls than fit keeps the newest and counts the rest as evicted.
    again = hub_factory(replay=tmp_path, max_calls=5)
    health = httpx.get(f"{again.url}/health").json()
    assert (health["calls"], health["evicted"], health["last_seq"]) == (5, 7, 12)


def _post_bytes(c: httpx.Client, i: int) -> None:
    c.post("/webhooks/bytes", content=b"%d" % i + b"x" * 999, headers={"content-type": "text/plain"})


def test_eviction_at_the_body_byte_budget(hub_factory: Any) -> None:
    # What one such call holds by the journal's estimate (bodies, headers, data, overhead).
    with httpx.Client(base_url=hub_factory().url) as c:
        _post_bytes(c, 0)
        held = c.get("/health").json()["held_bytes"]
    assert held > 1011  # more than its bodies: the budget counts what the call really holds
    hub = hub_factory(max_journal_bytes=held * 2 + held // 2)
    with httpx.Client(base_url=hub.url) as c:
        for i in range(10):
            _post_bytes(c, i)
        health = c.get("/health").json()
        # 1000-byte requests plus an 11-byte answer each, and their overhead: two fit, a third would not.
        assert (health["calls"], health["evicted"]) == (2, 8)
        assert health["body_bytes"] == 2 * 1011
        assert health["held_bytes"] == 2 * held
        assert [x["body"][0] for x in c.get("/calls").json()["calls"]] == ["8", "9"]


def test_record_file_is_complete_after_sigterm(tmp_path: Path) -> None:
    proc, url = _start_process(tmp_path)
    try:
        for i in range(5):
            assert httpx.post(f"{url}/webhooks/t", json={"i": i}).status_code == 200
        assert httpx.get(f"{url}/health").json()["recorded"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete, so -SIGTERM is a clean exit too.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert [line["data"]["i"] for line in _lines(tmp_path)] == list(range(5))


def test_a_call_the_disk_refuses_is_not_acknowledged(tmp_path: Path, hub_factory: Any) -> None:
    hub = hub_factory(record_dir=tmp_path)
    with httpx.Client(base_url=hub.url) as c:
        assert c.post("/webhooks/ok", json={"i": 1}).status_code == 200
        recording = hub.hub.recording
        assert recording is not None
        full = os.open("/dev/full", os.O_WRONLY)  # every write fails with ENOSPC, like a full disk
        fd = recording._fd
        saved = os.dup(fd)
        os.dup2(full, fd)
        try:
            assert c.post("/webhooks/lost", json={"i": 2}).status_code == 500
        finally:
            # /dev/full cannot be cut back to the last whole line either, so the sink gave that file
            # up (closing the descriptor) and starts a new one with the next call.
            assert recording._fd == -1
            os.close(saved)
            os.close(full)
        assert c.post("/webhooks/ok", json={"i": 3}).status_code == 200
        assert [x["data"]["i"] for x in c.get("/calls").json()["calls"]] == [1, 3]
        assert c.get("/health").json()["status"] == "ok"
    assert [line["data"]["i"] for line in _lines(tmp_path)] == [1, 3]


def test_unwritable_record_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RecordingError, match="cannot create the record folder"):
        ThreadedHub(_settings(record_dir=blocker / "sub"))


if os.name != "posix":  # pragma: no cover
    pytestmark = pytest.mark.skip("kill -9 semantics need POSIX")


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_record_times_match_datetime_and_round_trip(epoch: float) -> None:
    text = format_time(epoch)
    assert text == datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    call = Call(service="webhook", method="POST", path="/", id="c_1", seq=1, time=epoch)
    assert call_from_dict(call.to_dict()).to_dict() == call.to_dict()
