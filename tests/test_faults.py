"""The fault engine (docs/faults.md), driven through real clients against the generic webhook fake.

Transport faults are checked the way an application meets them: httpx raising ReadTimeout,
RemoteProtocolError or ReadError, urllib3 retrying. After each, the server must stay healthy,
keep recording, and must not have logged an error (uvicorn complains loudly when an app returns
without answering on a connection it still thinks is open).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import pytest
import support
from support import calls, extra_hub

from mockhub.server import ThreadedHub
from mockhub.settings import Settings

add_fault = partial(support.add_fault, service="webhook")

WEBHOOK = "/webhooks/alerts"


# -- helpers -----------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def server_log() -> Iterator[list[logging.LogRecord]]:
    """Warnings and errors logged by the server (uvicorn, asyncio, mockhub) while the test runs."""
    handler = _Collect()
    names = ("uvicorn.error", "uvicorn", "asyncio", "mockhub")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler.records
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def assert_healthy(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    """The server still answers and records, and logged nothing while breaking connections."""
    before = api.get("/calls/count").json()["count"]
    r = api.post("/webhooks/after-fault", json={"still": "alive"})
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    assert api.get("/calls/count").json()["count"] == before + 1
    assert api.get("/health").json()["status"] == "ok"
    assert [rec.getMessage() for rec in server_log] == []


# -- error: presets and explicit answers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "status"),
    [("rate_limited", 429), ("server_error", 500), ("unavailable", 503), ("overloaded", 529), ("unauthorized", 401)],
)
def test_error_preset_in_the_webhook_shape(api: httpx.Client, preset: str, status: int) -> None:
    fault = add_fault(api, action="error", preset=preset)
    r = httpx.post(f"{api.base_url}{WEBHOOK}", json={"summary": "disk full"})
    assert r.status_code == status
    assert r.json()["error"]["code"] == preset
    if preset == "rate_limited":
        assert r.headers["retry-after"] == "1"

    (call,) = calls(api, service="webhook")
    assert call["fault"] == {"id": fault["id"], "action": "error", "preset": preset}
    assert call["response"]["status"] == status
    assert call["data"] == {"summary": "disk full"}  # the request is recorded as usual


def test_explicit_status_body_and_headers_override_the_preset(api: httpx.Client) -> None:
    add_fault(
        api,
        action="error",
        preset="rate_limited",
        status=503,
        body={"reason": "maintenance"},
        headers={"Retry-After": "7", "X-Extra": "yes"},
    )
    r = api.post(WEBHOOK, json={})
    assert r.status_code == 503
    assert r.json() == {"reason": "maintenance"}
    assert r.headers["retry-after"] == "7"  # replaced, not duplicated
    assert r.headers.get_list("retry-after") == ["7"]
    assert r.headers["x-extra"] == "yes"
    assert r.headers["content-type"] == "application/json"


def test_status_alone_answers_in_the_fakes_error_shape(api: httpx.Client) -> None:
    fault = add_fault(api, action="error", status=418)
    r = api.post(WEBHOOK, json={})
    assert r.status_code == 418
    assert fault["id"] in r.json()["error"]["message"]


def test_string_body_is_sent_verbatim(api: httpx.Client) -> None:
    add_fault(api, action="error", status=502, body="<html>Bad Gateway</html>", times=None)
    r = api.post(WEBHOOK, json={})
    assert (r.status_code, r.text) == (502, "<html>Bad Gateway</html>")
    assert r.headers["content-type"].startswith("text/plain")
    api.delete("/faults")
    add_fault(api, action="error", status=400, body='{"error": "nope"}')
    r = api.post(WEBHOOK, json={})
    assert r.json() == {"error": "nope"}
    assert r.headers["content-type"] == "application/json"


# -- counting: times, after, fired, deletion -------------------------------------------------------


def test_times_defaults_to_one_and_get_faults_counts(api: httpx.Client) -> None:
    fault = add_fault(api, action="error", preset="server_error")
    assert (fault["times"], fault["seen"], fault["fired"], fault["remaining"]) == (1, 0, 0, 1)
    statuses = [api.post(WEBHOOK, json={"n": i}).status_code for i in range(3)]
    assert statuses == [500, 200, 200]

    listed = api.get("/faults").json()
    assert listed["count"] == 1
    (rule,) = listed["faults"]
    assert (rule["id"], rule["seen"], rule["fired"], rule["remaining"]) == (fault["id"], 1, 1, 0)
    assert api.get(f"/faults/{fault['id']}").json()["fired"] == 1

    recorded = calls(api, service="webhook")
    assert [c["fault"] is not None for c in recorded] == [True, False, False]


def test_after_lets_the_first_matching_calls_through(api: httpx.Client) -> None:
    fault = add_fault(api, action="error", preset="unavailable", after=2, times=2)
    statuses = [api.post(WEBHOOK, json={}).status_code for _ in range(6)]
    assert statuses == [200, 200, 503, 503, 200, 200]
    rule = api.get(f"/faults/{fault['id']}").json()
    # Once exhausted a rule stops looking at calls, so `seen` stays at after + times.
    assert (rule["seen"], rule["fired"], rule["remaining"]) == (4, 2, 0)


def test_times_null_fails_until_deleted(api: httpx.Client) -> None:
    fault = add_fault(api, action="error", preset="server_error", times=None)
    assert fault["remaining"] is None
    assert [api.post(WEBHOOK, json={}).status_code for _ in range(5)] == [500] * 5
    assert api.get(f"/faults/{fault['id']}").json()["fired"] == 5

    assert api.delete(f"/faults/{fault['id']}").json() == {"deleted": 1}
    assert api.post(WEBHOOK, json={}).status_code == 200

    gone = api.delete(f"/faults/{fault['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "fault_not_found"
    missing = api.get("/faults/f_nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "fault_not_found"


def test_times_counts_every_attempt_of_a_retrying_client(api: httpx.Client) -> None:
    urllib3 = pytest.importorskip("urllib3")
    add_fault(api, action="error", preset="rate_limited", times=2)
    retry = urllib3.Retry(
        total=5, status_forcelist=[429], allowed_methods=None, backoff_factor=0, respect_retry_after_header=False
    )
    with urllib3.PoolManager(retries=retry) as pool:
        r = pool.request("POST", f"{api.base_url}{WEBHOOK}", body=b'{"a": 1}', headers={"content-type": "x/json"})
    assert r.status == 200
    recorded = calls(api, service="webhook")
    assert [c["response"]["status"] for c in recorded] == [429, 429, 200]
    assert [c["fault"] is not None for c in recorded] == [True, True, False]


def test_delete_all_faults(api: httpx.Client) -> None:
    add_fault(api, action="error", preset="server_error", times=None)
    add_fault(api, action="delay", delay_ms=10, times=None)
    assert api.delete("/faults").json() == {"deleted": 2}
    assert api.get("/faults").json() == {"faults": [], "count": 0}
    assert api.post(WEBHOOK, json={}).status_code == 200


# -- matching ------------------------------------------------------------------------------------


def test_match_method_path_contains_and_to(api: httpx.Client) -> None:
    add_fault(
        api,
        action="error",
        preset="server_error",
        times=None,
        match={"method": "post", "path": "/webhooks/pager/*", "contains": "disk", "to": "ops@example.com"},
    )
    hit = {"summary": "disk full", "to": "ops@example.com"}
    assert api.post("/webhooks/pager/db", json=hit).status_code == 500
    assert api.put("/webhooks/pager/db", json=hit).status_code == 200  # method
    assert api.post("/webhooks/other/db", json=hit).status_code == 200  # path glob
    assert api.post("/webhooks/pager/db", json={**hit, "summary": "cpu"}).status_code == 200  # contains
    assert api.post("/webhooks/pager/db", json={**hit, "to": "dev@example.com"}).status_code == 200  # to


def test_a_fault_for_another_service_leaves_webhooks_alone(api: httpx.Client) -> None:
    add_fault(api, service="slack", action="error", preset="server_error", times=None)
    assert api.post(WEBHOOK, json={}).status_code == 200
    assert api.get("/faults").json()["faults"][0]["seen"] == 0


def test_the_newest_matching_rule_wins(api: httpx.Client) -> None:
    add_fault(api, action="error", status=500, times=None)
    add_fault(api, action="error", status=503, times=1)
    assert [api.post(WEBHOOK, json={}).status_code for _ in range(3)] == [503, 500, 500]


def test_namespaced_faults_affect_only_their_namespace(api: httpx.Client) -> None:
    fault = add_fault(api, action="error", preset="server_error", times=None, match={"namespace": "team-a"})
    assert api.post(f"/ns/team-a{WEBHOOK}", json={}).status_code == 500
    assert api.post(WEBHOOK, json={}, headers={"X-Mockhub-Namespace": "team-a"}).status_code == 500
    assert api.post(f"/ns/team-b{WEBHOOK}", json={}).status_code == 200
    assert api.post(WEBHOOK, json={}, headers={"X-Mockhub-Namespace": "team-b"}).status_code == 200
    assert api.post(WEBHOOK, json={}).status_code == 200  # default namespace

    hit = calls(api, namespace="team-a")
    assert len(hit) == 2
    assert all(c["fault"]["id"] == fault["id"] for c in hit)
    assert all(c["fault"] is None for c in calls(api, namespace="team-b"))

    # The inspection API scopes rules by namespace too.
    assert [f["id"] for f in api.get("/faults", params={"namespace": "team-a"}).json()["faults"]] == [fault["id"]]
    assert api.get("/faults", params={"namespace": "team-b"}).json()["count"] == 0
    assert api.post("/reset", params={"namespace": "team-b"}).json()["faults"] == 0
    assert api.get(f"/faults/{fault['id']}").status_code == 200
    assert api.post("/reset", params={"namespace": "team-a"}).json()["faults"] == 1
    assert api.get(f"/faults/{fault['id']}").status_code == 404


def test_post_faults_namespace_query_is_shorthand_for_match_namespace(api: httpx.Client) -> None:
    r = api.post("/faults", params={"namespace": "ns1"}, json={"service": "webhook", "preset": "server_error"})
    assert r.status_code == 201
    assert r.json()["match"]["namespace"] == "ns1"
    assert api.post(WEBHOOK, json={}).status_code == 200
    assert api.post(f"/ns/ns1{WEBHOOK}", json={}).status_code == 500

    clash_spec = {"preset": "server_error", "match": {"namespace": "x"}}
    clash = api.post("/faults", params={"namespace": "ns1"}, json=clash_spec)
    assert clash.status_code == 422
    assert clash.json()["error"]["message"].startswith("namespace:")


# -- probability -----------------------------------------------------------------------------------


def test_probability_zero_never_fires_and_one_always_does(api: httpx.Client) -> None:
    never = add_fault(api, action="error", status=500, times=None, probability=0, match={"path": "/webhooks/never"})
    always = add_fault(api, action="error", status=503, times=None, probability=1, match={"path": "/webhooks/always"})
    assert {api.post("/webhooks/never", json={}).status_code for _ in range(20)} == {200}
    assert {api.post("/webhooks/always", json={}).status_code for _ in range(20)} == {503}
    rules = {f["id"]: f for f in api.get("/faults").json()["faults"]}
    assert (rules[never["id"]]["seen"], rules[never["id"]]["fired"]) == (20, 0)
    assert (rules[always["id"]]["seen"], rules[always["id"]]["fired"]) == (20, 20)


def _hit_pattern(base_url: str, spec: dict[str, Any], n: int = 40) -> list[bool]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        assert client.post("/faults", json=spec).status_code == 201
        return [client.post(WEBHOOK, json={"n": i}).status_code == 503 for i in range(n)]


PROBABLE = {"service": "webhook", "action": "error", "status": 503, "probability": 0.5, "times": None}


def test_seeded_probability_repeats_across_restarts() -> None:
    patterns = []
    for seed in (1234, 1234, 99):
        with extra_hub(seed=seed) as hub:
            patterns.append(_hit_pattern(hub.url, PROBABLE))
    first, again, other = patterns
    assert first == again
    assert 0 < sum(first) < len(first)  # really random: some calls failed, some passed
    assert other != first  # and really driven by the seed


def test_a_rules_own_seed_makes_its_pattern_independent_of_history(api: httpx.Client, base_url: str) -> None:
    first = _hit_pattern(base_url, {**PROBABLE, "seed": 7})
    api.post("/reset")
    api.post(WEBHOOK, json={})  # unrelated traffic and rules in between change nothing
    add_fault(api, action="error", status=500, probability=0.3, times=None, match={"path": "/webhooks/elsewhere"})
    for _ in range(5):
        api.post("/webhooks/elsewhere", json={})
    api.delete("/faults")
    assert _hit_pattern(base_url, {**PROBABLE, "seed": 7}) == first
    assert 0 < sum(first) < len(first)


# -- delay ---------------------------------------------------------------------------------------


def test_delay_answers_normally_after_the_delay(api: httpx.Client) -> None:
    fault = add_fault(api, action="delay", delay_ms=300, jitter_ms=100)
    started = time.monotonic()
    r = api.post(WEBHOOK, json={"x": 1})
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    assert r.json() == {"ok": True}
    assert elapsed >= 0.3
    (call,) = calls(api, service="webhook")
    assert call["fault"] == {"id": fault["id"], "action": "delay", "preset": None}
    assert call["response"]["status"] == 200
    assert call["duration_ms"] >= 300


def test_delays_do_not_block_each_other(api: httpx.Client, base_url: str) -> None:
    n, delay_ms = 200, 1000
    add_fault(api, action="delay", delay_ms=delay_ms, times=None)

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
            replies = await asyncio.gather(*(client.post(WEBHOOK, json={"i": i}) for i in range(n)))
        return [r.status_code for r in replies]

    started = time.monotonic()
    statuses = asyncio.run(burst())
    elapsed = time.monotonic() - started
    assert statuses == [200] * n
    # Serially this would take n * 1 s = 200 s. (The bound is loose: on a loaded machine the client
    # itself needs seconds for 200 connections; the overlap check below is the exact proof.)
    assert elapsed < 60, f"{n} delayed calls took {elapsed:.1f} s"

    recorded = calls(api, service="webhook")
    assert len(recorded) == n
    assert all(c["duration_ms"] >= delay_ms for c in recorded)
    # All of them were being delayed at the same moment: the last one arrived before the first answer.
    arrived = [datetime.fromisoformat(c["time"]).timestamp() for c in recorded]
    answered = [t + c["duration_ms"] / 1000 for t, c in zip(arrived, recorded, strict=True)]
    assert max(arrived) < min(answered)


def test_a_client_giving_up_during_a_delay_is_recorded_without_response(
    api: httpx.Client, server_log: list[logging.LogRecord]
) -> None:
    add_fault(api, action="delay", delay_ms=20_000)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{api.base_url}{WEBHOOK}", json={}, timeout=0.5)
    wait_until(lambda: len(calls(api, service="webhook")) == 1)
    (call,) = calls(api, service="webhook")
    assert call["response"] is None
    assert call["fault"]["action"] == "delay"
    assert "closed" in call["fault"]["reason"]
    assert call["duration_ms"] < 20_000
    assert_healthy(api, server_log)


# -- transport faults ------------------------------------------------------------------------------


def test_reset_is_a_connection_reset(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    fault = add_fault(api, action="reset", match={"path": WEBHOOK})
    # A keep-alive client: its pooled connection dies, the next request opens a new one.
    with httpx.Client(base_url=api.base_url, timeout=5) as client:
        assert client.post("/webhooks/warmup", json={}).status_code == 200
        with pytest.raises(httpx.ReadError) as info:
            client.post(WEBHOOK, json={"summary": "disk"})
        assert isinstance(info.value.__context__, ConnectionResetError) or "reset" in str(info.value).lower()
        assert client.post("/webhooks/after", json={}).status_code == 200

    hit = calls(api, path=WEBHOOK)
    assert len(hit) == 1
    assert hit[0]["response"] is None
    assert hit[0]["fault"]["id"] == fault["id"]
    assert hit[0]["fault"]["action"] == "reset"
    assert hit[0]["fault"]["reason"] == "connection reset"
    assert hit[0]["data"] == {"summary": "disk"}
    assert_healthy(api, server_log)


def test_empty_closes_without_a_byte(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    add_fault(api, action="empty")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        httpx.post(f"{api.base_url}{WEBHOOK}", json={})
    (call,) = calls(api, service="webhook")
    assert call["response"] is None
    assert call["fault"]["action"] == "empty"
    assert_healthy(api, server_log)


def test_empty_on_a_raw_socket_sends_nothing(api: httpx.Client, server: ThreadedHub) -> None:
    add_fault(api, action="empty")
    with socket.create_connection(("127.0.0.1", server.hub.http_port), timeout=5) as sock:
        sock.sendall(b"POST /webhooks/raw HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        assert sock.recv(1024) == b""  # a clean FIN, not one byte before it


def test_malformed_sends_garbage_instead_of_http(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    add_fault(api, action="malformed")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{api.base_url}{WEBHOOK}", json={})
    (call,) = calls(api, service="webhook")
    assert call["response"] is None
    assert call["fault"]["action"] == "malformed"
    assert_healthy(api, server_log)


def test_malformed_with_status_sends_broken_json(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    add_fault(api, action="malformed", status=200)
    r = httpx.post(f"{api.base_url}{WEBHOOK}", json={})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()
    (call,) = calls(api, service="webhook")
    assert call["response"]["status"] == 200
    assert call["response"]["body"] == r.text
    assert call["fault"]["action"] == "malformed"

    add_fault(api, action="malformed", body='{"choices": [')
    assert httpx.post(f"{api.base_url}{WEBHOOK}", json={}).text == '{"choices": ['
    assert_healthy(api, server_log)


def test_timeout_is_recorded_at_once_and_the_client_times_out(
    api: httpx.Client, server_log: list[logging.LogRecord]
) -> None:
    fault = add_fault(api, action="timeout", delay_ms=30_000)
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            httpx.post(f"{api.base_url}{WEBHOOK}", json={"summary": "held"}, timeout=3)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    # Visible while the client is still waiting for its answer.
    seen = api.get("/calls", params={"service": "webhook", "wait": 5}).json()
    assert thread.is_alive()
    assert seen["count"] == 1
    call = seen["calls"][0]
    assert call["response"] is None
    assert call["fault"]["id"] == fault["id"]
    assert call["fault"]["action"] == "timeout"
    assert call["data"] == {"summary": "held"}
    thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.ReadTimeout)

    # The hold ends as soon as the client goes, not 30 s later.
    def released() -> bool:
        return "before the hold ended" in calls(api, service="webhook")[0]["fault"]["reason"]

    wait_until(released)
    assert calls(api, service="webhook")[0]["duration_ms"] < 30_000
    assert_healthy(api, server_log)


def test_timeout_closes_the_connection_after_the_hold(api: httpx.Client, server_log: list[logging.LogRecord]) -> None:
    add_fault(api, action="timeout", delay_ms=300)
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        httpx.post(f"{api.base_url}{WEBHOOK}", json={}, timeout=10)
    assert time.monotonic() - started >= 0.3
    (call,) = calls(api, service="webhook")
    assert call["response"] is None
    assert call["fault"]["reason"].endswith("without an answer, then closed")
    assert call["duration_ms"] >= 300
    assert_healthy(api, server_log)


def test_a_held_request_does_not_delay_shutdown() -> None:
    hub = ThreadedHub(Settings(host="127.0.0.1", http_port=0, smtp_port=0)).start()
    try:
        # The default hold is 60 s; the client below never gives up.
        assert httpx.post(f"{hub.url}/faults", json={"service": "webhook", "action": "timeout"}).status_code == 201
        sock = socket.create_connection(("127.0.0.1", hub.hub.http_port), timeout=30)
        sock.sendall(b"POST /webhooks/held HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Content-Length: 2\r\n\r\n{}")
        assert httpx.get(f"{hub.url}/calls", params={"wait": 5}).json()["count"] == 1
    finally:
        started = time.monotonic()
        hub.stop(timeout=40)
        stopped_in = time.monotonic() - started
    with sock:
        assert sock.recv(1024) == b""
    assert stopped_in < 15, f"shutdown waited {stopped_in:.1f} s for a held request"


def test_cut_stream_on_a_plain_answer_truncates_the_body(
    api: httpx.Client, server_log: list[logging.LogRecord]
) -> None:
    add_fault(api, action="cut_stream")
    with pytest.raises(httpx.RemoteProtocolError, match="without sending complete message body"):
        httpx.post(f"{api.base_url}{WEBHOOK}", json={})
    (call,) = calls(api, service="webhook")
    assert call["fault"]["action"] == "cut_stream"
    assert call["fault"]["reason"] == "body cut after 5 of 11 bytes"
    assert call["response"]["body"] == '{"ok"'
    assert_healthy(api, server_log)


def test_many_transport_faults_in_a_row_leave_the_server_healthy(
    api: httpx.Client, server_log: list[logging.LogRecord]
) -> None:
    for action in ("reset", "empty", "malformed"):
        add_fault(api, action=action, times=5, match={"path": f"/webhooks/{action}"})
    for _ in range(5):
        for action, error in (
            ("reset", httpx.ReadError),
            ("empty", httpx.RemoteProtocolError),
            ("malformed", httpx.RemoteProtocolError),
        ):
            with pytest.raises(error):
                httpx.post(f"{api.base_url}/webhooks/{action}", json={})
    assert all(f["remaining"] == 0 for f in api.get("/faults").json()["faults"])
    assert api.get("/calls/count", params={"service": "webhook"}).json()["count"] == 15
    assert_healthy(api, server_log)


# -- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"preset": "server_error", "probability": 1.5}, "probability: Input should be less than or equal to 1"),
        ({"preset": "server_error", "times": 0}, "times: Input should be greater than or equal to 1"),
        ({"preset": "server_error", "after": -1}, "after: Input should be greater than or equal to 0"),
        ({"preset": "teapot"}, "preset: Input should be 'rate_limited'"),
        ({"action": "explode"}, "action: Input should be 'error'"),
        ({"preset": "server_error", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"preset": "server_error", "match": {"hostname": "x"}}, "match.hostname: Extra inputs are not permitted"),
        ({"preset": "server_error", "match": {"regex": "("}}, "match: match.regex is not a valid regular expression"),
        ({"action": "error"}, "preset: action 'error' needs a 'preset' or a 'status'"),
        ({"action": "delay"}, "delay_ms: action 'delay' needs 'delay_ms'"),
        ({"action": "delay", "delay_ms": -5}, "delay_ms: Input should be greater than or equal to 0"),
        ({"action": "reset", "preset": "server_error"}, "preset: only action 'error' takes a preset"),
        ({"action": "reset", "status": 500}, "status: only actions 'error' and 'malformed' take a status"),
        ({"action": "empty", "delay_ms": 5}, "delay_ms: only actions 'delay' and 'timeout' take a delay"),
        (
            {"action": "reset", "after_chunks": 3},
            "after_chunks: only actions 'cut_stream' and 'malformed' take after_chunks",
        ),
        ({"action": "malformed", "body": {"a": 1}}, "body: action 'malformed' sends the body verbatim"),
        ({"status": 99}, "status: Input should be greater than or equal to 100"),
        ({"action": "smtp_reply", "code": 451, "service": "webhook"}, "service: action 'smtp_reply' only applies"),
    ],
)
def test_invalid_faults_get_a_422_naming_the_field(api: httpx.Client, spec: dict[str, Any], message: str) -> None:
    r = api.post("/faults", json=spec)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["message"].startswith(message), error["message"]
    assert api.get("/faults").json()["count"] == 0


def test_a_fault_round_trips_through_the_api(api: httpx.Client) -> None:
    spec = {
        "service": "webhook",
        "match": {"method": "POST", "path": "/webhooks/*", "namespace": "n1"},
        "action": "delay",
        "delay_ms": 5,
        "jitter_ms": 2,
        "times": 3,
        "after": 1,
        "probability": 0.5,
        "seed": 3,
    }
    created = add_fault(api, **spec)
    assert created["id"].startswith("f_")
    fetched = api.get(f"/faults/{created['id']}").json()
    assert fetched == created
    for key, value in spec.items():
        if key == "match":
            assert {k: fetched["match"][k] for k in value} == value
        else:
            assert fetched[key] == value


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"service": "twilio", "action": "errr", "status": 500}, "action: Input should be"),
        ({"service": "smtp", "stage": "dataa", "preset": "server_error"}, "stage: Input should be"),
        ({"service": "twilio", "stage": "rcpt", "preset": "server_error"}, "stage: service 'twilio' speaks HTTP"),
        ({"service": "twilio", "preset": "nope"}, "preset: Input should be"),
        ({"service": "twillio", "preset": "server_error"}, "did you mean 'twilio'"),
    ],
)
def test_a_typo_in_a_fault_is_a_422_that_says_what_is_known(api: httpx.Client, spec: dict[str, Any], says: str) -> None:
    r = api.post("/faults", json=spec)
    assert r.status_code == 422 and says in r.json()["error"]["message"], r.text
    assert api.get("/faults").json()["faults"] == []
