"""The generic webhook fake, driven with httpx over loopback."""

from __future__ import annotations

import base64

import httpx
from support import calls


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


def test_multipart_form_fields_are_parsed_and_files_kept_as_downloadable_attachments(api: httpx.Client) -> None:
    import requests

    png = bytes(range(256)) * 4
    r = requests.post(
        f"{api.base_url}/webhooks/uploads",
        data={"event": "backup.done", "tag": ["a", "b"]},
        files=[
            ("report", ("report.csv", b"host,free\ndb-1,0%\n", "text/csv")),
            ("shot", ("shot.png", png, "image/png")),
        ],
        timeout=5,
    )
    assert r.status_code == 200
    [call] = calls(api, "webhook")
    assert call["data"]["event"] == "backup.done" and call["data"]["tag"] == ["a", "b"]
    assert call["data"]["attachments"] == [
        {"field": "report", "filename": "report.csv", "content_type": "text/csv", "size": 18},
        {"field": "shot", "filename": "shot.png", "content_type": "image/png", "size": len(png)},
    ]
    assert calls(api, "webhook", contains="backup.done") != []
    first = api.get(f"/calls/{call['id']}/attachments/0")
    assert first.content == b"host,free\ndb-1,0%\n" and first.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''report.csv" in first.headers["content-disposition"]
    assert api.get(f"/calls/{call['id']}/attachments/1").content == png
    assert api.get(f"/calls/{call['id']}/attachments/2").json()["error"]["code"] == "attachment_not_found"


def test_a_broken_multipart_body_gets_a_400_and_is_recorded(api: httpx.Client) -> None:
    body = b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\ncut short'
    r = api.post("/webhooks/x", content=body, headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    [call] = calls(api, "webhook")
    assert call["data"] == {"error": "invalid_multipart"}
    assert api.get(f"/calls/{call['id']}/raw").content == body
    # Reading its attachments is a clear error too, never a 500.
    assert api.get(f"/calls/{call['id']}/attachments/0").status_code in (404, 422)
