"""The sync Python client (`MockHub`) against a real server on loopback (the async twin: test_client_async.py)."""

from __future__ import annotations

import base64
import json
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage

import httpx
import pytest
from pydantic import ValidationError
from support import later, post

from mockhub import Call, MockHub
from mockhub.api import CallOut, HealthOut, ResponseOut
from mockhub.client import ActiveFault, CallResponse, FaultHit, Health, MockHubError, _lenient
from mockhub.rules import Fault, FaultSpec
from mockhub.server import ThreadedHub


@pytest.fixture
def hub(server: ThreadedHub) -> Iterator[MockHub]:
    """An unscoped client, after forgetting everything."""
    with MockHub(server.url) as client:
        client.reset()
        yield client


def test_calls_are_typed_models_with_filters(hub: MockHub) -> None:
    post(hub.urls.webhook("alerts/disk"), {"summary": "disk full on db-1"})
    post(hub.urls.webhook("alerts/cpu"), {"summary": "cpu high"})
    httpx.put(hub.urls.webhook("other"), content=b"\xff\x00raw", headers={"content-type": "application/octet-stream"})

    calls = hub.calls()
    assert [type(c) for c in calls] == [Call, Call, Call]
    assert [c.seq for c in calls] == sorted(c.seq for c in calls)
    first = calls[0]
    assert first.service == "webhook" and first.method == "POST" and first.path == "/webhooks/alerts/disk"
    assert first.data == {"summary": "disk full on db-1"}
    assert isinstance(first.response, CallResponse) and first.status == 200
    assert first.response.content == b'{"ok":true}'
    assert first.body_json() == {"summary": "disk full on db-1"}
    assert first.time.tzinfo is not None

    assert [c.path for c in hub.calls("webhook", path="/webhooks/alerts/*")] == [
        "/webhooks/alerts/disk",
        "/webhooks/alerts/cpu",
    ]
    assert [c.data["summary"] for c in hub.calls(contains="disk")] == ["disk full on db-1"]
    assert [c.method for c in hub.calls(method="put")] == ["PUT"]
    assert [c.seq for c in hub.calls(after=first.seq)] == [c.seq for c in calls[1:]]
    assert [c.seq for c in hub.calls(limit=1, order="desc")] == [calls[-1].seq]
    assert hub.calls("slack") == []
    assert hub.count() == 3 and hub.count("webhook", path="/webhooks/alerts/*") == 2

    binary = hub.call(calls[2].id)
    assert binary.body_encoding == "base64" and binary.content == b"\xff\x00raw"
    assert hub.raw(binary.id) == b"\xff\x00raw"
    assert base64.b64decode(binary.body) == b"\xff\x00raw"

    assert hub.delete_calls(contains="cpu") == 1
    assert hub.count() == 2


def test_wait_for_returns_as_soon_as_enough_calls_arrive(hub: MockHub) -> None:
    url = hub.urls.webhook("slow")
    later(0.3, post, url, {"n": 1})
    later(0.6, post, url, {"n": 2})
    started = time.monotonic()
    got = hub.wait_for("webhook", count=2, timeout=20)
    assert [c.data["n"] for c in got] == [1, 2]
    # It answered when the second call came, not after the 20 s timeout.
    assert time.monotonic() - started < 15


def test_wait_for_failure_lists_the_calls_that_did_arrive_most_similar_first(hub: MockHub, ns: str) -> None:
    mine = hub.namespaced(ns)
    post(mine.urls.webhook("alerts"), {"summary": "cpu high on web-3"})
    post(mine.urls.webhook("alerts"), {"summary": "disk full on db-1"})
    post(mine.urls.webhook("billing"), {"summary": "invoice paid"})
    post(hub.namespaced("someone-else").urls.webhook("alerts"), {"summary": "disk full on db-2 (not mine)"})

    with pytest.raises(AssertionError) as caught:
        mine.wait_for("webhook", contains="disk full on db-2", timeout=0.3)
    message = str(caught.value)
    assert "expected 1 call(s) matching service='webhook', contains='disk full on db-2'" in message
    assert f"in namespace '{ns}'" in message
    assert "0 matched" in message
    assert "3 other call(s) arrived" in message
    lines = message.splitlines()
    listed = [line for line in lines if line.startswith("  #")]
    assert len(listed) == 3
    assert "disk full on db-1" in listed[0] and "[differs in: contains]" in listed[0]
    assert "not mine" not in message  # another namespace's calls are not this test's business


def test_wait_for_failure_when_nothing_arrived_and_when_too_few(hub: MockHub, ns: str) -> None:
    mine = hub.namespaced(ns)
    with pytest.raises(AssertionError, match="No other calls arrived"):
        mine.wait_for("slack", timeout=0.2)
    post(mine.urls.webhook("a"), {"summary": "one"})
    with pytest.raises(AssertionError) as caught:
        mine.wait_for("webhook", count=2, timeout=0.2)
    assert "1 matched" in str(caught.value) and "Matching calls:" in str(caught.value)


def test_fault_is_a_rule_and_a_context_manager(hub: MockHub) -> None:
    url = hub.urls.webhook("flaky")
    with hub.fault("webhook", preset="server_error", times=2, path="/webhooks/flaky") as fault:
        assert isinstance(fault, ActiveFault) and isinstance(fault, Fault)
        assert fault.id.startswith("f_") and fault.remaining == 2 and fault.match.path == "/webhooks/flaky"
        assert [f.id for f in hub.faults()] == [fault.id]
        assert [post(url, {"try": i}).status_code for i in range(3)] == [500, 500, 200]
        now = fault.refresh()
        assert (now.fired, now.remaining) == (2, 0)
    assert hub.faults() == []
    hits = [c.fault for c in hub.calls("webhook")]
    assert [h.id if h else None for h in hits] == [fault.id, fault.id, None]
    assert isinstance(hits[0], FaultHit) and hits[0].preset == "server_error"


def test_fault_until_deleted_and_plain_deletion(hub: MockHub) -> None:
    fault = hub.fault("webhook", status=418, body={"error": "teapot"}, times=None)
    assert fault.times is None and fault.remaining is None
    assert [post(hub.urls.webhook("x"), {}).status_code for _ in range(3)] == [418, 418, 418]
    assert hub.delete_fault(fault.id) is True
    assert hub.delete_fault(fault.id, missing_ok=True) is False
    with pytest.raises(MockHubError) as caught:
        hub.delete_fault(fault.id)
    assert caught.value.status == 404 and caught.value.code == "fault_not_found"
    assert post(hub.urls.webhook("x"), {}).status_code == 200


def test_match_given_as_a_plain_dict_like_the_json_form(hub: MockHub) -> None:
    with hub.fault("webhook", status=503, match={"path": "/webhooks/only-this"}, times=None):
        assert post(hub.urls.webhook("only-this"), {}).status_code == 503
        assert post(hub.urls.webhook("other"), {}).status_code == 200
    with pytest.raises(ValidationError):
        hub.stub("webhook", status=201, match={"no_such_field": 1})


def test_invalid_rules_fail_before_reaching_the_server(hub: MockHub) -> None:
    with pytest.raises(ValidationError, match="needs a 'preset' or a 'status'"):
        hub.fault("webhook")
    with pytest.raises(ValidationError, match="exactly one of"):
        hub.stub("webhook")
    with pytest.raises(ValueError, match="either `response` or its shortcuts"):
        hub.stub("webhook", status=200, response={"status": 201})
    assert hub.faults() == [] and hub.stubs() == []


def test_stub_is_a_rule_and_a_context_manager(hub: MockHub) -> None:
    url = hub.urls.webhook("billing")
    with hub.stub("webhook", path="/webhooks/billing", status=409, json={"error": "duplicate"}) as stub:
        assert stub.response is not None and stub.response.status == 409
        r = post(url, {"invoice": 1})
        assert (r.status_code, r.json()) == (409, {"error": "duplicate"})
        assert post(hub.urls.webhook("other"), {}).status_code == 200
        assert [s.hits for s in hub.stubs()] == [1]
        assert stub.refresh().hits == 1 and hub.get_stub(stub.id).hits == 1
    assert hub.stubs() == []
    assert post(url, {}).status_code == 200
    assert hub.calls(path="/webhooks/billing")[0].stub is not None


def test_stub_shortcuts_build_llm_replies(hub: MockHub) -> None:
    stub = hub.stub("openai", content="critical", contains="classify", times=2)
    assert stub.reply is not None and stub.reply.content == "critical" and stub.match.contains == "classify"
    assert stub.times == 2
    tool = hub.stub("anthropic", tool_calls=[{"name": "page_oncall", "arguments": {"team": "db"}}])
    assert tool.reply is not None and tool.reply.tool_calls[0].name == "page_oncall"
    assert hub.clear_stubs() == 2


def test_namespaced_client_scopes_calls_rules_and_reset(hub: MockHub, ns: str) -> None:
    mine, theirs = hub.namespaced(ns), hub.namespaced(ns + "-other")
    assert mine.urls.webhook("a") == f"{hub.url}/ns/{ns}/webhooks/a"
    post(mine.urls.webhook("a"), {"who": "mine"})
    post(theirs.urls.webhook("a"), {"who": "theirs"})
    assert [c.data["who"] for c in mine.calls()] == ["mine"]
    assert [c.namespace for c in mine.calls()] == [ns]
    assert hub.count() == 2

    fault = mine.fault("webhook", preset="unavailable", times=None)
    assert fault.match.namespace == ns
    assert post(mine.urls.webhook("a"), {}).status_code == 503
    assert post(theirs.urls.webhook("a"), {}).status_code == 200
    assert theirs.faults() == [] and [f.id for f in mine.faults()] == [fault.id]

    done = mine.reset()
    assert (done.calls, done.faults, done.stubs) == (2, 1, 0)
    assert mine.count() == 0 and theirs.count() == 2


def test_health_urls_and_env(hub: MockHub, server: ThreadedHub) -> None:
    health = hub.health()
    assert isinstance(health, Health)
    assert health.status == "ok" and health.http_port == server.hub.http_port
    assert health.smtp_port == server.smtp_port == hub.smtp_port

    scoped = hub.namespaced("abc")
    urls = scoped.urls
    assert urls.slack_webhook == f"{server.url}/ns/abc/services/T000/B000/XXXX"
    assert urls.openai_base == f"{server.url}/ns/abc/v1"
    assert urls.anthropic_base == urls.twilio_base == f"{server.url}/ns/abc"
    env = scoped.env()
    assert env["ALERT_EMAIL_SMTP_SERVER"] == "127.0.0.1"
    assert env["ALERT_EMAIL_SMTP_PORT"] == str(server.smtp_port)
    assert env["ALERT_EMAIL_SMTP_USER"] == "abc"
    assert env["ALERT_SLACK_WEBHOOK_URL"] == urls.slack_webhook
    assert env["ALERT_WEBHOOK_URL"] == urls.webhook("alerts")
    assert env["OPENAI_BASE_URL"] == urls.openai_base and env["ANTHROPIC_BASE_URL"] == urls.anthropic_base
    assert "ALERT_EMAIL_SMTP_USER" not in hub.env()  # unscoped: no AUTH user, so mail lands in `default`
    assert scoped.address("ops") == "ops+ns-abc@example.com"

    # The URLs really reach the namespace's fakes.
    post(env["ALERT_WEBHOOK_URL"], {"x": 1})
    assert scoped.wait_for("webhook", path="/webhooks/alerts", timeout=5)[0].namespace == "abc"


def test_email_through_smtp_is_visible_to_the_client(hub: MockHub) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "ops@example.com", "Disk full"
    msg.set_content("db-1 is out of disk")
    with smtplib.SMTP(hub.smtp_host, hub.smtp_port or 0, timeout=10) as smtp:
        smtp.send_message(msg, to_addrs=["ops@example.com", "audit@example.com"])
    [mail] = hub.wait_for("smtp", to="audit@example.com", timeout=5)
    assert mail.data["subject"] == "Disk full" and "out of disk" in mail.data["text"]
    assert b"Subject: Disk full" in hub.raw(mail.id)
    assert hub.calls("smtp", subject="disk") == [mail]


def test_stream_yields_new_calls_live(hub: MockHub, ns: str) -> None:
    mine = hub.namespaced(ns)
    url = mine.urls.webhook("live")
    post(url, {"n": 0})  # before the stream: not replayed without `after`
    later(0.5, lambda: [post(url, {"n": n}) for n in (1, 2)])
    got: list[int] = []
    for call in mine.stream("webhook"):
        got.append(call.data["n"])
        if len(got) == 2:
            break
    assert got == [1, 2]
    # With `after`, earlier calls come first.
    replay = mine.stream(after=0)
    assert next(replay).data == {"n": 0}
    replay.close()


def test_export_jsonl(hub: MockHub, ns: str) -> None:
    mine = hub.namespaced(ns)
    for n in range(3):
        post(mine.urls.webhook("e"), {"n": n})
    post(hub.urls.webhook("e"), {"n": "default namespace"})
    lines = b"".join(mine.export("jsonl")).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["data"]["n"] for r in records] == [0, 1, 2]
    assert [Call.model_validate(r) for r in records] == mine.calls()


def test_client_models_match_the_api_models() -> None:
    """The client keeps its own light models (no FastAPI import); they must not drift from the API's."""
    assert set(Call.model_fields) == set(CallOut.model_fields)
    assert set(CallResponse.model_fields) == set(ResponseOut.model_fields)
    assert set(Health.model_fields) <= set(HealthOut.model_fields)


def test_rules_from_a_newer_server_still_parse() -> None:
    spec = FaultSpec(service="slack", preset="rate_limited").model_dump(mode="json")
    body = {**spec, "id": "f_1", "created": "now", "brand_new": 1}
    body["match"]["also_new"] = "x"
    fault = _lenient(Fault, body)
    assert isinstance(fault, Fault) and fault.preset == "rate_limited" and fault.id == "f_1"


def test_server_errors_become_mockhub_errors(hub: MockHub) -> None:
    with pytest.raises(MockHubError) as caught:
        hub.call("c_missing")
    assert (caught.value.status, caught.value.code) == (404, "call_not_found")
    with MockHub("http://127.0.0.1:1") as nowhere, pytest.raises(httpx.ConnectError):
        nowhere.health()


def test_importing_mockhub_stays_cheap() -> None:
    """`import mockhub` must not pull in the client (httpx) or the server; `mockhub.MockHub` loads it lazily."""
    code = (
        "import sys, mockhub; heavy = [m for m in ('httpx', 'mockhub.client', 'mockhub.server', 'fastapi') "
        "if m in sys.modules]; print(heavy); from mockhub import MockHub; print(MockHub.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "mockhub.client.sync"]
