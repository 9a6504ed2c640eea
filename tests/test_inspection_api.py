"""The journal and the inspection API, driven over loopback HTTP."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import httpx
import pytest

from mockhub.server import ThreadedHub
from mockhub.settings import Settings


def _post(api: httpx.Client, path: str, **kwargs: object) -> None:
    assert api.post(path, **kwargs).status_code == 200  # type: ignore[arg-type]


@pytest.fixture
def three_calls(api: httpx.Client) -> httpx.Client:
    _post(api, "/webhooks/alerts", json={"to": "ops@example.com", "subject": "Disk FULL on db-1"})
    _post(api, "/ns/team-a/webhooks/deploys", json={"channel": "#deploys", "text": "v2 shipped"})
    api.put("/webhooks/alerts/cpu", data={"to": "+15551234567", "body": "CPU high"})
    return api


def _paths(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["count"] == len(body["calls"])
    return [c["path"] for c in body["calls"]]


def test_calls_are_listed_oldest_first_with_increasing_seq(three_calls: httpx.Client) -> None:
    calls = three_calls.get("/calls").json()["calls"]
    assert [c["path"] for c in calls] == ["/webhooks/alerts", "/webhooks/deploys", "/webhooks/alerts/cpu"]
    seqs = [c["seq"] for c in calls]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert all(c["id"].startswith("c_") for c in calls)
    newest = three_calls.get("/calls", params={"order": "desc", "limit": 1}).json()["calls"]
    assert newest[0]["path"] == "/webhooks/alerts/cpu"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"service": "webhook"}, ["/webhooks/alerts", "/webhooks/deploys", "/webhooks/alerts/cpu"]),
        ({"service": "slack"}, []),
        ({"namespace": "team-a"}, ["/webhooks/deploys"]),
        ({"namespace": "default"}, ["/webhooks/alerts", "/webhooks/alerts/cpu"]),
        ({"method": "put"}, ["/webhooks/alerts/cpu"]),
        ({"path": "/webhooks/alerts*"}, ["/webhooks/alerts", "/webhooks/alerts/cpu"]),
        ({"path": "/webhooks/alerts"}, ["/webhooks/alerts"]),
        ({"path": "/webhooks/*/cpu"}, ["/webhooks/alerts/cpu"]),
        ({"direction": "inbound"}, ["/webhooks/alerts", "/webhooks/deploys", "/webhooks/alerts/cpu"]),
        ({"direction": "outbound"}, []),
        ({"contains": "shipped"}, ["/webhooks/deploys"]),
        ({"contains": "SHIPPED"}, []),
        ({"to": "ops@example.com"}, ["/webhooks/alerts"]),
        ({"to": "OPS@example.com"}, ["/webhooks/alerts"]),
        ({"to": "+15551234567"}, ["/webhooks/alerts/cpu"]),
        ({"to": "#deploys"}, ["/webhooks/deploys"]),
        ({"to": "deploys"}, ["/webhooks/deploys"]),
        ({"subject": "disk full"}, ["/webhooks/alerts"]),
        ({"subject": "nothing"}, []),
        ({"limit": 2}, ["/webhooks/alerts", "/webhooks/deploys"]),
        ({"service": "webhook", "contains": "CPU", "method": "PUT"}, ["/webhooks/alerts/cpu"]),
        ({"service": "webhook", "contains": "CPU", "method": "POST"}, []),
    ],
)
def test_every_filter(three_calls: httpx.Client, params: dict[str, object], expected: list[str]) -> None:
    assert _paths(three_calls.get("/calls", params=params)) == expected  # type: ignore[arg-type]
    assert three_calls.get("/calls/count", params=params).json() == {  # type: ignore[arg-type]
        "count": len(expected) if "limit" not in params else 3
    }


def test_after_returns_only_later_calls(three_calls: httpx.Client) -> None:
    first = three_calls.get("/calls").json()["calls"][0]
    assert _paths(three_calls.get("/calls", params={"after": first["seq"]})) == [
        "/webhooks/deploys",
        "/webhooks/alerts/cpu",
    ]
    last = three_calls.get("/calls", params={"order": "desc", "limit": 1}).json()["calls"][0]
    assert _paths(three_calls.get("/calls", params={"after": last["seq"]})) == []


def test_get_one_call_and_unknown_ids(three_calls: httpx.Client) -> None:
    call = three_calls.get("/calls").json()["calls"][0]
    assert three_calls.get(f"/calls/{call['id']}").json() == call
    for path in ("/calls/c_nope", "/calls/c_nope/raw"):
        r = three_calls.get(path)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "call_not_found"


def test_delete_with_filters_keeps_the_rest(three_calls: httpx.Client) -> None:
    assert three_calls.delete("/calls", params={"namespace": "team-a"}).json() == {"deleted": 1}
    assert _paths(three_calls.get("/calls")) == ["/webhooks/alerts", "/webhooks/alerts/cpu"]
    # The indexes are rebuilt: filtered queries still work after a filtered delete.
    assert _paths(three_calls.get("/calls", params={"namespace": "default", "method": "PUT"})) == [
        "/webhooks/alerts/cpu"
    ]
    assert three_calls.delete("/calls").json() == {"deleted": 2}
    assert three_calls.get("/calls").json() == {"calls": [], "count": 0}


def test_delete_calls_leaves_faults_and_stubs(api: httpx.Client) -> None:
    api.post("/faults", json={"service": "webhook", "status": 503, "times": None}).raise_for_status()
    api.post("/stubs", json={"response": {"status": 202}}).raise_for_status()
    api.delete("/calls")
    assert api.get("/faults").json()["count"] == 1
    assert api.get("/stubs").json()["count"] == 1


def test_namespace_by_prefix_and_by_header_are_isolated(api: httpx.Client) -> None:
    _post(api, "/ns/a/webhooks/x", json={"n": 1})
    _post(api, "/webhooks/x", json={"n": 2}, headers={"X-Mockhub-Namespace": "b"})
    _post(api, "/webhooks/x", json={"n": 3})
    by_ns = {ns: [c["data"]["n"] for c in api.get("/calls", params={"namespace": ns}).json()["calls"]] for ns in "ab"}
    assert by_ns == {"a": [1], "b": [2]}
    default = api.get("/calls", params={"namespace": "default"}).json()["calls"]
    assert [c["data"]["n"] for c in default] == [3]
    # The prefix is stripped: the recorded path is the fake's own path.
    assert api.get("/calls", params={"namespace": "a"}).json()["calls"][0]["path"] == "/webhooks/x"


def test_reset_scoped_to_a_namespace(api: httpx.Client) -> None:
    _post(api, "/ns/a/webhooks/x", json={})
    _post(api, "/ns/b/webhooks/x", json={})
    api.post("/faults", json={"match": {"namespace": "a"}, "status": 500}).raise_for_status()
    api.post("/faults", json={"match": {"namespace": "b"}, "status": 500}).raise_for_status()
    assert api.post("/reset", params={"namespace": "a"}).json() == {"calls": 1, "faults": 1, "stubs": 0}
    assert api.get("/calls/count").json() == {"count": 1}
    assert [f["match"]["namespace"] for f in api.get("/faults").json()["faults"]] == ["b"]


def test_long_poll_returns_early_when_a_call_arrives(api: httpx.Client, base_url: str) -> None:
    def later() -> None:
        time.sleep(0.3)
        httpx.post(f"{base_url}/webhooks/late", json={"x": 1})

    threading.Thread(target=later).start()
    started = time.monotonic()
    body = api.get("/calls", params={"path": "/webhooks/late", "wait": 20}).json()
    assert body["timed_out"] is False
    assert _paths(httpx.Response(200, json=body)) == ["/webhooks/late"]
    # Far sooner than the 20 s it may wait (a generous bound, not a speed assertion).
    assert time.monotonic() - started < 15


def test_long_poll_waits_for_min_calls(api: httpx.Client, base_url: str) -> None:
    def later() -> None:
        for i in range(3):
            time.sleep(0.1)
            httpx.post(f"{base_url}/webhooks/batch", json={"i": i})

    threading.Thread(target=later).start()
    body = api.get("/calls", params={"path": "/webhooks/batch", "wait": 20, "min": 3}).json()
    assert body["timed_out"] is False
    assert [c["data"]["i"] for c in body["calls"]] == [0, 1, 2]


def test_long_poll_times_out_with_what_there_is(api: httpx.Client) -> None:
    _post(api, "/webhooks/one", json={})
    body = api.get("/calls", params={"path": "/webhooks/*", "wait": 0.3, "min": 2}).json()
    assert body["timed_out"] is True
    assert body["count"] == 1


def test_long_poll_counts_calls_already_there(api: httpx.Client) -> None:
    _post(api, "/webhooks/one", json={})
    body = api.get("/calls", params={"wait": 5}).json()
    assert body["timed_out"] is False and body["count"] == 1


def test_sse_delivers_a_call_posted_after_subscribing(api: httpx.Client, base_url: str) -> None:
    received: list[str] = []
    subscribed = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", f"{base_url}/calls/stream", params={"service": "webhook"}) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith(": mockhub"):
                    subscribed.set()
                if line.startswith("data: "):
                    received.append(line)
                    return

    listener = threading.Thread(target=listen)
    listener.start()
    assert subscribed.wait(10)
    _post(api, "/webhooks/live", json={"hello": "sse"})
    listener.join(10)
    assert len(received) == 1
    assert '"path":"/webhooks/live"' in received[0]


def test_sse_with_after_replays_earlier_calls_first(api: httpx.Client, base_url: str) -> None:
    _post(api, "/webhooks/early", json={})
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{base_url}/calls/stream", params={"after": 0}) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                assert '"path":"/webhooks/early"' in line
                break


def test_200_concurrent_posts_are_recorded_exactly_once(api: httpx.Client, base_url: str) -> None:
    def post(i: int) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(f"{base_url}/webhooks/burst", json={"i": i}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(post, range(200)))
    assert statuses == [200] * 200
    calls = api.get("/calls", params={"path": "/webhooks/burst", "limit": 1000}).json()["calls"]
    assert sorted(c["data"]["i"] for c in calls) == list(range(200))
    seqs = [c["seq"] for c in calls]
    assert seqs == sorted(seqs) and len(set(seqs)) == 200
    assert len({c["id"] for c in calls}) == 200


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/calls", {"params": {"limit": "many"}}, 422),
        ("GET", "/calls", {"params": {"limit": 0}}, 422),
        ("GET", "/calls", {"params": {"wait": -1}}, 422),
        ("GET", "/calls", {"params": {"direction": "sideways"}}, 422),
        ("GET", "/calls", {"params": {"after": "x"}}, 422),
        ("GET", "/calls/count", {"params": {"after": -1}}, 422),
        ("GET", "/calls/stream", {"params": {"heartbeat": 0}}, 422),
        ("GET", "/calls/export", {"params": {"format": "xml"}}, 422),
        ("DELETE", "/calls", {"params": {"direction": "up"}}, 422),
        ("POST", "/faults", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ("POST", "/faults", {"json": {"action": "explode"}}, 422),
        ("POST", "/faults", {"json": {"action": "error"}}, 422),
        ("POST", "/faults", {"json": {"preset": "rate_limited", "probability": 2}}, 422),
        ("POST", "/faults", {"json": {"preset": "rate_limited", "surprise": 1}}, 422),
        ("POST", "/stubs", {"json": {"service": "openai"}}, 422),
        ("POST", "/stubs", {"json": [1, 2]}, 422),
        ("GET", "/faults/f_nope", {}, 404),
        ("DELETE", "/stubs/s_nope", {}, 404),
        ("GET", "/no/such/route", {}, 404),
        ("PATCH", "/calls", {}, 405),
    ],
)
def test_malformed_input_to_the_api_gets_a_json_error(
    api: httpx.Client, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    _post(api, "/webhooks/before", json={})
    r = api.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] and error["message"]
    # The server is still up, and nothing recorded was lost.
    assert api.get("/health").json()["status"] == "ok"
    assert _paths(api.get("/calls")) == ["/webhooks/before"]


def test_validation_errors_name_the_field(api: httpx.Client) -> None:
    r = api.post("/faults", json={"preset": "rate_limited", "probability": 2})
    assert "probability" in r.json()["error"]["message"]
    r = api.get("/calls", params={"limit": "many"})
    assert "limit" in r.json()["error"]["message"]
    r = api.get("/calls/export", params={"format": "xml"})
    assert "format" in r.json()["error"]["message"]


def test_health_livez_readyz_and_openapi(server: ThreadedHub, api: httpx.Client) -> None:
    health = api.get("/health").json()
    assert health["status"] == "ok"
    assert health["http_port"] == server.hub.http_port
    assert health["smtp_port"] == server.smtp_port
    assert api.get("/livez").json() == {"status": "ok"}
    assert api.get("/readyz").status_code == 200
    spec = api.get("/openapi.json").json()
    for path in ("/calls", "/calls/{call_id}", "/calls/count", "/faults", "/stubs", "/reset"):
        assert path in spec["paths"]
    # The /calls routes parse their query strings themselves; the schema still lists every parameter.
    listed = {p["name"]: p for p in spec["paths"]["/calls"]["get"]["parameters"]}
    assert set(listed) >= {"service", "namespace", "path", "contains", "to", "after", "limit", "wait", "min"}
    assert listed["limit"]["in"] == "query" and not listed["limit"]["required"]
    export = {p["name"] for p in spec["paths"]["/calls/export"]["get"]["parameters"]}
    assert "format" in export and "fmt" not in export


def test_eviction_at_max_calls_is_counted_in_health() -> None:
    settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, max_calls=5)
    with ThreadedHub(settings) as hub, httpx.Client(base_url=hub.url) as client:
        for i in range(8):
            client.post("/webhooks/e", json={"i": i}).raise_for_status()
        calls = client.get("/calls").json()["calls"]
        assert [c["data"]["i"] for c in calls] == [3, 4, 5, 6, 7]
        health = client.get("/health").json()
        assert (health["calls"], health["evicted"], health["last_seq"]) == (5, 3, 8)
        assert client.get("/calls/count", params={"service": "webhook"}).json() == {"count": 5}


def test_long_poll_honours_order_and_limit(api: httpx.Client, base_url: str) -> None:
    for i in range(3):
        _post(api, "/webhooks/ordered", json={"i": i})

    def later() -> None:
        time.sleep(0.2)
        httpx.post(f"{base_url}/webhooks/ordered", json={"i": 3})

    threading.Thread(target=later).start()
    body = api.get("/calls", params={"path": "/webhooks/ordered", "wait": 20, "min": 4, "order": "desc", "limit": 2})
    assert body.json()["timed_out"] is False
    assert [c["data"]["i"] for c in body.json()["calls"]] == [3, 2]


def test_calls_forgotten_during_a_long_poll_are_not_answered(api: httpx.Client, base_url: str) -> None:
    _post(api, "/webhooks/doomed", json={})

    def later() -> None:
        time.sleep(0.2)
        httpx.delete(f"{base_url}/calls", params={"path": "/webhooks/doomed"})
        httpx.post(f"{base_url}/webhooks/kept", json={})

    threading.Thread(target=later).start()
    body = api.get("/calls", params={"path": "/webhooks/*", "wait": 20, "min": 2}).json()
    assert [c["path"] for c in body["calls"]] == ["/webhooks/kept"]


def test_counts_by_namespace_or_service_alone_follow_deletes_and_evictions(api: httpx.Client) -> None:
    for ns in ("a", "a", "b"):
        _post(api, f"/ns/{ns}/webhooks/x", json={})
    assert api.get("/calls/count", params={"namespace": "a"}).json() == {"count": 2}
    assert api.get("/calls/count", params={"service": "webhook"}).json() == {"count": 3}
    assert api.get("/calls/count", params={"namespace": "nobody"}).json() == {"count": 0}
    api.delete("/calls", params={"namespace": "a", "path": "/webhooks/x"})
    assert api.get("/calls/count", params={"namespace": "a"}).json() == {"count": 0}
    assert api.get("/calls/count", params={"service": "webhook"}).json() == {"count": 1}
