"""The Mailgun Messages API fake, driven the way Mailgun's own Python examples do it (`requests` with
`auth=("api", key)`), and with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from functools import partial

import httpx
import pytest
import requests
import support
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="mailgun")

DOMAIN = "mg.example.com"
AUTH = ("api", "key-0123456789abcdef")


def test_send_form_encoded(api: httpx.Client, base_url: str) -> None:
    r = requests.post(
        f"{base_url}/v3/{DOMAIN}/messages",
        auth=AUTH,
        data={
            "from": "Alerts <alerts@mg.example.com>",
            "to": ["ops@example.com", "Dev <dev@example.com>, qa@example.com"],
            "subject": "Disk full on db-1",
            "text": "Free space is 0%",
            "html": "<p>Free space is 0%</p>",
            "o:tag": ["alerts", "disk"],
            "h:X-Priority": "1",
            "v:incident": "42",
        },
        timeout=10,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["message"] == "Queued. Thank you."
    assert body["id"].startswith("<") and body["id"].endswith(f"@{DOMAIN}>")

    [call] = calls(api)
    assert call["path"] == f"/v3/{DOMAIN}/messages"
    data = call["data"]
    assert data["domain"] == DOMAIN
    assert data["from"] == "Alerts <alerts@mg.example.com>"
    assert data["from_address"] == "alerts@mg.example.com"
    assert data["to"] == ["ops@example.com", "dev@example.com", "qa@example.com"]
    assert data["subject"] == "Disk full on db-1"
    assert data["text"] == "Free space is 0%"
    assert data["html"] == "<p>Free space is 0%</p>"
    assert data["tags"] == ["alerts", "disk"]
    assert data["headers"] == {"X-Priority": "1"}
    assert data["variables"] == {"incident": "42"}
    assert data["message_id"] == body["id"]
    # Found by the same filters as SMTP mail.
    assert len(api.get("/calls", params={"to": "qa@example.com", "subject": "DISK FULL"}).json()["calls"]) == 1
    assert api.get("/calls/count", params={"service": "mailgun", "contains": "Free space"}).json()["count"] == 1


def test_send_multipart_with_attachments(api: httpx.Client, base_url: str) -> None:
    report = bytes(range(256)) * 8
    r = requests.post(
        f"{base_url}/v3/{DOMAIN}/messages",
        auth=AUTH,
        files=[
            ("attachment", ("report.bin", report, "application/octet-stream")),
            ("attachment", ("notes.txt", b"see report\n", "text/plain")),
            ("inline", ("logo.png", b"\x89PNG fake", "image/png")),
        ],
        data={"from": "reports@mg.example.com", "to": "boss@example.com", "cc": "team@example.com",
              "bcc": "audit@example.com", "subject": "Weekly report", "html": "<img src='cid:logo.png'>"},
        timeout=10,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    data = calls(api)[0]["data"]
    assert data["attachments"] == [
        {"filename": "report.bin", "content_type": "application/octet-stream", "size": len(report)},
        {"filename": "notes.txt", "content_type": "text/plain", "size": 11},
    ]
    assert data["inline"] == [{"filename": "logo.png", "content_type": "image/png", "size": 9}]
    assert (data["cc"], data["bcc"]) == (["team@example.com"], ["audit@example.com"])
    assert len(calls(api, to="audit@example.com")) == 1
    # The files are downloadable byte-exact, counted as data.attachments lists them (inline apart).
    call_id = calls(api)[0]["id"]
    assert api.get(f"/calls/{call_id}/attachments/0").content == report
    assert api.get(f"/calls/{call_id}/attachments/1").content == b"see report\n"
    assert api.get(f"/calls/{call_id}/attachments/2").status_code == 404


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"to": "a@example.com", "text": "x"}, "'from' parameter is missing"),
        ({"from": "a@example.com", "text": "x"}, "'to' parameter is missing"),
        ({"from": "a@example.com", "to": "b@example.com", "subject": "no body"}, "Need at least one of 'text', 'html'"),
        ({"from": "a@example.com", "to": "not an address", "text": "x"}, "to parameter is not a valid address"),
        ({"from": "nobody", "to": "b@example.com", "text": "x"}, "from parameter is not a valid address"),
    ],
)
def test_validation(api: httpx.Client, form: dict[str, str], message: str) -> None:
    r = api.post(f"/v3/{DOMAIN}/messages", data=form, auth=AUTH)
    assert r.status_code == 400
    assert r.json()["message"].startswith(message)
    assert calls(api)[0]["response"]["status"] == 400


@pytest.mark.parametrize("auth", [None, ("user", "key"), ("api", "")])
def test_bad_auth_is_forbidden(api: httpx.Client, auth: tuple[str, str] | None) -> None:
    form = {"from": "a@example.com", "to": "b@example.com", "text": "x"}
    r = api.post(f"/v3/{DOMAIN}/messages", data=form, auth=auth)
    assert r.status_code == 401
    assert r.text == "Forbidden"
    assert calls(api)[0]["data"]["error"] == "unauthorized"


def test_send_mime(api: httpx.Client, base_url: str) -> None:
    msg = EmailMessage()
    msg["From"] = "alerts@mg.example.com"
    msg["To"] = "ops@example.com"
    msg["Subject"] = "Raw MIME alert"
    msg.set_content("plain body")
    msg.add_alternative("<p>html body</p>", subtype="html")
    r = requests.post(
        f"{base_url}/v3/{DOMAIN}/messages.mime",
        auth=AUTH,
        data={"to": "ops@example.com"},
        files={"message": ("message.mime", msg.as_bytes())},
        timeout=10,
    )
    assert r.status_code == 200
    data = calls(api)[0]["data"]
    assert data["subject"] == "Raw MIME alert"
    assert data["text"].strip() == "plain body"
    assert data["html"].strip() == "<p>html body</p>"
    assert data["to"] == ["ops@example.com"]


def test_rate_limited_preset(api: httpx.Client) -> None:
    api.post("/faults", json={"service": "mailgun", "preset": "rate_limited"}).raise_for_status()
    form = {"from": "a@example.com", "to": "b@example.com", "text": "x"}
    r = api.post(f"/v3/{DOMAIN}/messages", data=form, auth=AUTH)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert "message" in r.json()
    assert api.post(f"/v3/{DOMAIN}/messages", data=form, auth=AUTH).status_code == 200


def test_namespace_prefix(api: httpx.Client) -> None:
    form = {"from": "a@example.com", "to": "b@example.com", "text": "scoped"}
    assert api.post(f"/ns/mg-ns/v3/{DOMAIN}/messages", data=form, auth=AUTH).status_code == 200
    assert calls(api, namespace="mg-ns")[0]["data"]["text"] == "scoped"


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="key-good") as running:
        yield running


def test_pinned_keys(pinned: ThreadedHub) -> None:
    form = {"from": "a@example.com", "to": "b@example.com", "text": "x"}
    url = f"{pinned.url}/v3/{DOMAIN}/messages"
    assert requests.post(url, auth=("api", "key-bad"), data=form, timeout=10).status_code == 401
    assert requests.post(url, auth=("api", "key-good"), data=form, timeout=10).status_code == 200
