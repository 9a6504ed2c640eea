"""The PagerDuty Events API v2 fake, driven with the official `pagerduty` client (and httpx for bad input)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import httpx2
import pagerduty
import pytest
import support
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="pagerduty")

KEY = "R0UTINGKEY0123456789ABCDEFGHIJKL"
PAYLOAD = {"summary": "s", "source": "x"}


class ToMockhub(httpx2.HTTPTransport):
    """Sends the client's requests to mockhub: `pagerduty` refuses any base URL that is not https://,
    so the client keeps its real base URL and this transport (the client's own `transport=` option)
    redirects each request, keeping a `/ns/...` prefix of the mockhub URL."""

    def __init__(self, mockhub_url: str) -> None:
        super().__init__()
        self.target = httpx2.URL(mockhub_url)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        t = self.target
        request.url = request.url.copy_with(
            scheme=t.scheme, host=t.host, port=t.port, path=t.path.rstrip("/") + request.url.path
        )
        return super().handle_request(request)


def client(base_url: str, key: str = KEY) -> pagerduty.EventsApiV2Client:
    pd = pagerduty.EventsApiV2Client(key, transport=ToMockhub(base_url))
    # The client sleeps 1.5 s * 2^n between retries; the fake's answers need no such patience.
    pd.sleep_timer = 0.01
    return pd


def test_trigger_with_the_official_client_is_recorded(api: httpx.Client, base_url: str) -> None:
    dedup_key = client(base_url).trigger(
        "disk full on db-1", "db-1.prod", severity="error", custom_details={"free": "0%"}
    )
    assert isinstance(dedup_key, str) and len(dedup_key) == 32  # generated: none was given

    [call] = calls(api)
    assert call["method"] == "POST"
    assert call["path"] == "/v2/enqueue"
    assert call["response"]["status"] == 202
    data = call["data"]
    assert data["action"] == "trigger"
    assert data["severity"] == "error"
    assert data["summary"] == "disk full on db-1"
    assert data["source"] == "db-1.prod"
    assert data["dedup_key"] == dedup_key
    assert data["routing_key"] == KEY
    assert data["custom_details"] == {"free": "0%"}
    # The answer is exactly the Events API's.
    r = httpx.Response(202, content=call["response"]["body"].encode())
    assert r.json() == {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
    assert api.get("/calls", params={"service": "pagerduty", "contains": "disk full"}).json()["count"] == 1


def test_trigger_acknowledge_resolve_share_the_dedup_key(api: httpx.Client, base_url: str) -> None:
    pd = client(base_url)
    assert pd.trigger("CPU high", "web-3", dedup_key="incident-42", severity="warning") == "incident-42"
    assert pd.acknowledge("incident-42") == "incident-42"
    assert pd.resolve("incident-42") == "incident-42"
    recorded = calls(api)
    assert [c["data"]["action"] for c in recorded] == ["trigger", "acknowledge", "resolve"]
    assert {c["data"]["dedup_key"] for c in recorded} == {"incident-42"}
    assert all(c["response"]["status"] == 202 for c in recorded)


def test_invalid_event_raises_the_clients_http_error(api: httpx.Client, base_url: str) -> None:
    pd = client(base_url)
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.send_event("trigger", payload={"summary": "no source, no severity"})
    response = raised.value.response
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert body["message"] == "Event object is invalid"
    assert "'payload.source' is missing or blank" in body["errors"]
    assert "'payload.severity' is missing or blank" in body["errors"]
    [call] = calls(api)  # rejected calls are recorded too
    assert call["response"]["status"] == 400
    assert call["data"]["summary"] == "no source, no severity"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"event_action": "trigger", "payload": {"summary": "s", "source": "x", "severity": "info"}}, "'routing_key'"),
        ({"routing_key": KEY, "payload": {"summary": "s", "source": "x", "severity": "info"}}, "'event_action'"),
        ({"routing_key": KEY, "event_action": "page", "payload": {}}, "'event_action' is invalid"),
        ({"routing_key": KEY, "event_action": "trigger"}, "'payload' is missing"),
        ({"routing_key": KEY, "event_action": "trigger", "payload": {"source": "x", "severity": "info"}}, "summary"),
        ({"routing_key": KEY, "event_action": "trigger", "payload": {"summary": "s", "source": "x"}}, "severity"),
        (
            {"routing_key": KEY, "event_action": "trigger", "payload": {**PAYLOAD, "severity": "P1"}},
            "'payload.severity' is invalid",
        ),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is missing"),
    ],
)
def test_validation_like_the_events_api(api: httpx.Client, event: dict[str, Any], error: str) -> None:
    r = api.post("/v2/enqueue", json=event)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "invalid event"
    assert any(error in e for e in body["errors"]), body
    assert calls(api)[0]["response"]["status"] == 400


def test_malformed_json_is_a_400_and_recorded(api: httpx.Client) -> None:
    r = api.post("/v2/enqueue", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["Invalid JSON"]
    [call] = calls(api)
    assert call["body"] == "{nope"
    assert call["data"]["error"] == "invalid_json"


def test_change_event(api: httpx.Client, base_url: str) -> None:
    client(base_url).send_change_event(
        payload={"summary": "deployed v1.2.3", "source": "ci", "custom_details": {"sha": "abc"}},
        links=[{"href": "https://ci.example/1", "text": "build"}],
    )
    [call] = calls(api, path="/v2/change/enqueue")
    assert call["response"]["status"] == 202
    assert call["data"]["type"] == "change"
    assert call["data"]["summary"] == "deployed v1.2.3"
    assert call["data"]["links"][0]["text"] == "build"
    r = api.post("/v2/change/enqueue", json={"routing_key": KEY, "payload": {"source": "ci"}})
    assert r.status_code == 400
    assert "'payload.summary' is missing or blank" in r.json()["errors"]


def test_rate_limited_preset_is_retried_by_the_client(api: httpx.Client, base_url: str) -> None:
    fault = api.post("/faults", json={"service": "pagerduty", "action": "error", "preset": "rate_limited", "times": 2})
    assert fault.status_code == 201
    assert client(base_url).trigger("retry me", "svc") is not None
    recorded = calls(api)
    assert [c["response"]["status"] for c in recorded] == [429, 429, 202]
    assert [c["fault"] is not None for c in recorded] == [True, True, False]
    throttled = httpx.Response(429, content=recorded[0]["response"]["body"].encode()).json()
    assert throttled["status"] == "throttle event"


def test_server_error_preset_exhausts_the_clients_retries(api: httpx.Client, base_url: str) -> None:
    api.post("/faults", json={"service": "pagerduty", "action": "error", "preset": "server_error", "times": None})
    with pytest.raises(pagerduty.ServerHttpError):
        client(base_url).trigger("never lands", "svc")
    # EventsApiV2Client retries a 500 twice: three attempts in all, every one recorded.
    recorded = calls(api)
    assert [c["response"]["status"] for c in recorded] == [500, 500, 500]


def test_namespace_prefix_in_base_url(api: httpx.Client, base_url: str) -> None:
    client(f"{base_url}/ns/pd-team").trigger("namespaced", "svc")
    assert calls(api, namespace="pd-team")[0]["data"]["summary"] == "namespaced"
    assert calls(api, namespace="default") == []


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials=f"{KEY}, other-key") as running:
        yield running


def test_pinned_routing_keys(pinned: ThreadedHub) -> None:
    assert client(pinned.url).trigger("known key", "svc")
    with pytest.raises(pagerduty.HttpError) as raised:
        client(pinned.url, key="unknown-key").trigger("unknown key", "svc")
    assert raised.value.response.status_code == 400
    assert raised.value.response.json()["errors"] == ["Invalid routing key"]
