"""`AsyncMockHub` against a real server on loopback: the async twins of tests/test_client.py.

No sleeping: calls that must come "later" are sent while a long poll or a stream is waiting, and the
tests only rely on what the server guarantees (a long poll answers once enough calls match).
"""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage

import httpx
import pytest
from pydantic import ValidationError

from mockhub import AsyncMockHub, Call
from mockhub.client import AsyncActiveFault, AsyncActiveStub, CallResponse, FaultHit, Health, MockHubError
from mockhub.rules import Fault, FaultSpec, StubSpec
from mockhub.server import ThreadedHub

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def hub(server: ThreadedHub) -> AsyncIterator[AsyncMockHub]:
    """An unscoped async client, after forgetting everything."""
    async with AsyncMockHub(server.url) as client:
        await client.reset()
        yield client


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_calls_are_typed_models_with_filters(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    await http.post(hub.urls.webhook("alerts/disk"), json={"summary": "disk full on db-1"})
    await http.post(hub.urls.webhook("alerts/cpu"), json={"summary": "cpu high"})
    raw = {"content-type": "application/octet-stream"}
    await http.put(hub.urls.webhook("other"), content=b"\xff\x00raw", headers=raw)

    calls = await hub.calls()
    assert [type(c) for c in calls] == [Call, Call, Call]
    first = calls[0]
    assert first.service == "webhook" and first.method == "POST" and first.path == "/webhooks/alerts/disk"
    assert isinstance(first.response, CallResponse) and first.status == 200
    assert first.body_json() == {"summary": "disk full on db-1"}

    paths = [c.path for c in await hub.calls("webhook", path="/webhooks/alerts/*")]
    assert paths == ["/webhooks/alerts/disk", "/webhooks/alerts/cpu"]
    assert [c.data["summary"] for c in await hub.calls(contains="disk")] == ["disk full on db-1"]
    assert [c.method for c in await hub.calls(method="put")] == ["PUT"]
    assert [c.seq for c in await hub.calls(after=first.seq)] == [c.seq for c in calls[1:]]
    assert [c.seq for c in await hub.calls(limit=1, order="desc")] == [calls[-1].seq]
    assert await hub.calls("slack") == []
    assert await hub.count() == 3 and await hub.count("webhook", path="/webhooks/alerts/*") == 2

    binary = await hub.call(calls[2].id)
    assert binary.body_encoding == "base64" and binary.content == b"\xff\x00raw"
    assert await hub.raw(binary.id) == b"\xff\x00raw"
    assert base64.b64decode(binary.body) == b"\xff\x00raw"

    assert await hub.delete_calls(contains="cpu") == 1
    assert await hub.count() == 2


async def test_wait_for_returns_as_soon_as_enough_calls_arrive(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    url = hub.urls.webhook("slow")
    started = time.monotonic()
    waiting = asyncio.ensure_future(hub.wait_for("webhook", count=2, timeout=20))
    await http.post(url, json={"n": 1})
    assert [c.data["n"] for c in await hub.wait_for("webhook", timeout=5)] == [1]
    assert not waiting.done()  # one call is not two: the long poll goes on
    await http.post(url, json={"n": 2})
    got = await waiting
    assert [c.data["n"] for c in got] == [1, 2]
    assert time.monotonic() - started < 15  # when the second call came, not after the 20 s timeout


async def test_wait_for_failure_lists_the_calls_that_did_arrive_most_similar_first(
    hub: AsyncMockHub, http: httpx.AsyncClient, ns: str
) -> None:
    mine = hub.namespaced(ns)
    await http.post(mine.urls.webhook("alerts"), json={"summary": "cpu high on web-3"})
    await http.post(mine.urls.webhook("alerts"), json={"summary": "disk full on db-1"})
    await http.post(mine.urls.webhook("billing"), json={"summary": "invoice paid"})
    await http.post(hub.namespaced("someone-else").urls.webhook("alerts"), json={"summary": "db-2 (not mine)"})

    with pytest.raises(AssertionError) as caught:
        await mine.wait_for("webhook", contains="disk full on db-2", timeout=0.3)
    message = str(caught.value)
    assert "expected 1 call(s) matching service='webhook', contains='disk full on db-2'" in message
    assert f"in namespace '{ns}'" in message and "0 matched" in message and "3 other call(s) arrived" in message
    listed = [line for line in message.splitlines() if line.startswith("  #")]
    assert len(listed) == 3
    assert "disk full on db-1" in listed[0] and "[differs in: contains]" in listed[0]
    assert "not mine" not in message


async def test_wait_for_failure_when_nothing_arrived_and_when_too_few(
    hub: AsyncMockHub, http: httpx.AsyncClient, ns: str
) -> None:
    mine = hub.namespaced(ns)
    with pytest.raises(AssertionError, match="No other calls arrived"):
        await mine.wait_for("slack", timeout=0.2)
    await http.post(mine.urls.webhook("a"), json={"summary": "one"})
    with pytest.raises(AssertionError) as caught:
        await mine.wait_for("webhook", count=2, timeout=0.2)
    assert "1 matched" in str(caught.value) and "Matching calls:" in str(caught.value)


async def test_fault_is_a_rule_and_an_async_context_manager(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    url = hub.urls.webhook("flaky")
    async with hub.fault("webhook", preset="server_error", times=2, path="/webhooks/flaky") as fault:
        assert isinstance(fault, AsyncActiveFault) and isinstance(fault, Fault)
        assert fault.id.startswith("f_") and fault.remaining == 2 and fault.match.path == "/webhooks/flaky"
        assert [f.id for f in await hub.faults()] == [fault.id]
        assert [(await http.post(url, json={"try": i})).status_code for i in range(3)] == [500, 500, 200]
        now = await fault.refresh()
        assert (now.fired, now.remaining) == (2, 0)
        assert (await hub.get_fault(fault.id)).fired == 2
    assert await hub.faults() == []
    hits = [c.fault for c in await hub.calls("webhook")]
    assert [h.id if h else None for h in hits] == [fault.id, fault.id, None]
    assert isinstance(hits[0], FaultHit) and hits[0].preset == "server_error"


async def test_fault_until_deleted_and_plain_deletion(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    fault = await hub.fault("webhook", status=418, body={"error": "teapot"}, times=None)
    assert fault.times is None and fault.remaining is None
    assert [(await http.post(hub.urls.webhook("x"), json={})).status_code for _ in range(3)] == [418, 418, 418]
    assert await hub.delete_fault(fault.id) is True
    assert await hub.delete_fault(fault.id, missing_ok=True) is False
    with pytest.raises(MockHubError) as caught:
        await hub.delete_fault(fault.id)
    assert caught.value.status == 404 and caught.value.code == "fault_not_found"
    assert (await http.post(hub.urls.webhook("x"), json={})).status_code == 200


async def test_add_fault_and_add_stub_take_whole_specs(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    async with hub.add_fault(FaultSpec(service="webhook", status=503)) as fault:
        assert (await http.post(hub.urls.webhook("spec"), json={})).status_code == 503
    assert await hub.faults() == [] and fault.status == 503
    stub = await hub.add_stub(StubSpec.model_validate({"service": "webhook", "response": {"status": 201}}))
    assert isinstance(stub, AsyncActiveStub)
    assert (await http.post(hub.urls.webhook("spec"), json={})).status_code == 201
    await stub.delete()
    assert await hub.stubs() == []


async def test_invalid_rules_fail_before_reaching_the_server(hub: AsyncMockHub) -> None:
    with pytest.raises(ValidationError, match="needs a 'preset' or a 'status'"):
        hub.fault("webhook")
    with pytest.raises(ValidationError, match="exactly one of"):
        hub.stub("webhook")
    with pytest.raises(ValueError, match="either `response` or its shortcuts"):
        hub.stub("webhook", status=200, response={"status": 201})
    assert await hub.faults() == [] and await hub.stubs() == []


async def test_stub_is_a_rule_and_an_async_context_manager(hub: AsyncMockHub, http: httpx.AsyncClient) -> None:
    url = hub.urls.webhook("billing")
    async with hub.stub("webhook", path="/webhooks/billing", status=409, json={"error": "duplicate"}) as stub:
        assert stub.response is not None and stub.response.status == 409
        r = await http.post(url, json={"invoice": 1})
        assert (r.status_code, r.json()) == (409, {"error": "duplicate"})
        assert (await http.post(hub.urls.webhook("other"), json={})).status_code == 200
        assert [s.hits for s in await hub.stubs()] == [1]
        assert (await stub.refresh()).hits == 1 and (await hub.get_stub(stub.id)).hits == 1
    assert await hub.stubs() == []
    assert (await http.post(url, json={})).status_code == 200
    assert (await hub.calls(path="/webhooks/billing"))[0].stub is not None


async def test_stub_shortcuts_build_llm_replies(hub: AsyncMockHub) -> None:
    stub = await hub.stub("openai", content="critical", contains="classify", times=2)
    assert stub.reply is not None and stub.reply.content == "critical" and stub.match.contains == "classify"
    assert stub.times == 2
    tool = await hub.stub("anthropic", tool_calls=[{"name": "page_oncall", "arguments": {"team": "db"}}])
    assert tool.reply is not None and tool.reply.tool_calls[0].name == "page_oncall"
    assert await hub.clear_stubs() == 2


async def test_namespaced_client_scopes_calls_rules_and_reset(
    hub: AsyncMockHub, http: httpx.AsyncClient, ns: str
) -> None:
    mine, theirs = hub.namespaced(ns), hub.namespaced(ns + "-other")
    assert mine.urls.webhook("a") == f"{hub.url}/ns/{ns}/webhooks/a"
    await http.post(mine.urls.webhook("a"), json={"who": "mine"})
    await http.post(theirs.urls.webhook("a"), json={"who": "theirs"})
    assert [(c.data["who"], c.namespace) for c in await mine.calls()] == [("mine", ns)]
    assert await hub.count() == 2

    fault = await mine.fault("webhook", preset="unavailable", times=None)
    assert fault.match.namespace == ns
    assert (await http.post(mine.urls.webhook("a"), json={})).status_code == 503
    assert (await http.post(theirs.urls.webhook("a"), json={})).status_code == 200
    assert await theirs.faults() == [] and [f.id for f in await mine.faults()] == [fault.id]
    assert await mine.clear_faults() == 1

    done = await mine.reset()
    assert (done.calls, done.faults, done.stubs) == (2, 0, 0)
    assert await mine.count() == 0 and await theirs.count() == 2


async def test_health_urls_and_env(hub: AsyncMockHub, server: ThreadedHub, http: httpx.AsyncClient) -> None:
    health = await hub.health()
    assert isinstance(health, Health) and health.status == "ok" and health.http_port == server.hub.http_port
    assert health.smtp_port == server.smtp_port == await hub.smtp_port

    scoped = hub.namespaced("abc")
    urls = scoped.urls
    assert urls.slack_webhook == f"{server.url}/ns/abc/services/T000/B000/XXXX"
    assert urls.openai_base == f"{server.url}/ns/abc/v1"
    env = await scoped.env()
    assert env["ALERT_EMAIL_SMTP_PORT"] == str(server.smtp_port) and env["ALERT_EMAIL_SMTP_USER"] == "abc"
    assert env["ALERT_WEBHOOK_URL"] == urls.webhook("alerts")
    assert "ALERT_EMAIL_SMTP_USER" not in await hub.env()
    assert scoped.address("ops") == "ops+ns-abc@example.com"

    await http.post(env["ALERT_WEBHOOK_URL"], json={"x": 1})
    assert (await scoped.wait_for("webhook", path="/webhooks/alerts", timeout=5))[0].namespace == "abc"


async def test_email_through_smtp_is_visible_to_the_client(hub: AsyncMockHub) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", "ops@example.com", "Disk full"
    msg.set_content("db-1 is out of disk")
    port = await hub.smtp_port

    def send() -> None:
        with smtplib.SMTP(hub.smtp_host, port or 0, timeout=10) as smtp:
            smtp.send_message(msg, to_addrs=["ops@example.com", "audit@example.com"])

    await asyncio.to_thread(send)
    [mail] = await hub.wait_for("smtp", to="audit@example.com", timeout=5)
    assert mail.data["subject"] == "Disk full" and "out of disk" in mail.data["text"]
    assert b"Subject: Disk full" in await hub.raw(mail.id)
    assert await hub.calls("smtp", subject="disk") == [mail]


async def test_stream_yields_new_calls_live(hub: AsyncMockHub, http: httpx.AsyncClient, ns: str) -> None:
    mine = hub.namespaced(ns)
    url = mine.urls.webhook("live")
    before = (await http.post(url, json={"n": 0})).status_code
    assert before == 200
    [zero] = await mine.wait_for("webhook", timeout=5)

    async def two() -> list[int]:
        got: list[int] = []
        async for call in mine.stream("webhook", after=zero.seq):  # only what comes after n=0
            got.append(call.data["n"])
            if len(got) == 2:
                break
        return got

    reading = asyncio.ensure_future(two())
    for n in (1, 2):
        await http.post(url, json={"n": n})
    assert await asyncio.wait_for(reading, 20) == [1, 2]
    replay = mine.stream(after=0)
    assert (await replay.__anext__()).data == {"n": 0}
    await replay.aclose()


async def test_export_jsonl(hub: AsyncMockHub, http: httpx.AsyncClient, ns: str) -> None:
    mine = hub.namespaced(ns)
    for n in range(3):
        await http.post(mine.urls.webhook("e"), json={"n": n})
    await http.post(hub.urls.webhook("e"), json={"n": "default namespace"})
    lines = b"".join([chunk async for chunk in mine.export("jsonl")]).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["data"]["n"] for r in records] == [0, 1, 2]
    assert [Call.model_validate(r) for r in records] == await mine.calls()


async def test_server_errors_become_mockhub_errors(hub: AsyncMockHub) -> None:
    with pytest.raises(MockHubError) as caught:
        await hub.call("c_missing")
    assert (caught.value.status, caught.value.code) == (404, "call_not_found")
    async with AsyncMockHub("http://127.0.0.1:1") as nowhere:
        with pytest.raises(httpx.ConnectError):
            await nowhere.health()
