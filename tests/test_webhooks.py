"""The generic webhook fake, driven with httpx over loopback."""

from __future__ import annotations

import base64

import httpx


def test_json_webhook_is_recorded_with_parsed_data(api: httpx.Client) -> None:
    r = api.post("/webhooks/alerts/disk", json={"severity": "critical", "summary": "disk full"})
    assert r.status_code == 200
    assert r.json() == {"ok": True}

    calls = api.get("/calls", params={"service": "webhook"}).json()
    assert calls["count"] == 1
    call = calls["calls"][0]
    assert call["method"] == "POST"
    assert call["path"] == "/webhooks/alerts/disk"
    assert call["data"] == {"severity": "critical", "summary": "disk full"}
    assert call["response"]["status"] == 200
    assert call["direction"] == "inbound"
    assert call["namespace"] == "default"


def test_any_method_and_form_body(api: httpx.Client) -> None:
    assert api.put("/webhooks/x", data={"a": "1", "b": ["2", "3"]}).status_code == 200
    assert api.delete("/webhooks/x").status_code == 200
    calls = api.get("/calls").json()["calls"]
    assert [c["method"] for c in calls] == ["PUT", "DELETE"]
    assert calls[0]["data"] == {"a": "1", "b": ["2", "3"]}


def test_binary_body_is_kept_byte_exact(api: httpx.Client) -> None:
    payload = bytes(range(256)) * 4
    api.post("/webhooks/bin", content=payload, headers={"content-type": "application/octet-stream"})
    call = api.get("/calls").json()["calls"][0]
    assert call["body_encoding"] == "base64"
    assert base64.b64decode(call["body"]) == payload
    assert api.get(f"/calls/{call['id']}/raw").content == payload


def test_malformed_json_gets_a_clear_400_and_is_recorded(api: httpx.Client) -> None:
    r = api.post("/webhooks/x", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    call = api.get("/calls").json()["calls"][0]
    assert call["response"]["status"] == 400
    assert call["body"] == "{not json"
