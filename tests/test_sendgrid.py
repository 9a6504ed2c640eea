"""The SendGrid Mail Send fake, driven with the official `sendgrid` SDK (and httpx for what it cannot send)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import support
from python_http_client.exceptions import BadRequestsError, TooManyRequestsError, UnauthorizedError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Attachment, Bcc, Cc, Mail, MailSettings, Personalization, SandBoxMode, To
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="sendgrid")


def sendgrid(base_url: str, key: str = "SG.test-key") -> SendGridAPIClient:
    return SendGridAPIClient(key, host=base_url)


def test_send_a_mail_with_the_sdk(api: httpx.Client, base_url: str) -> None:
    mail = Mail(
        from_email=("alerts@example.com", "Alerts"),
        to_emails=["ops@example.com", "Dev Team <dev@example.com>"],
        subject="Disk full on db-1",
        plain_text_content="Free space is 0%",
        html_content="<p>Free space is <b>0%</b></p>",
    )
    response = sendgrid(base_url).send(mail)
    assert response.status_code == 202
    assert response.body == b""
    message_id = response.headers["X-Message-Id"]
    assert len(message_id) == 22

    [call] = calls(api)
    assert call["path"] == "/v3/mail/send"
    assert call["headers"]["authorization"] == "Bearer SG.test-key"
    data = call["data"]
    assert data["from"] == "alerts@example.com"
    assert data["from_name"] == "Alerts"
    assert data["to"] == ["ops@example.com", "dev@example.com"]
    assert data["subject"] == "Disk full on db-1"
    assert data["text"] == "Free space is 0%"
    assert data["html"] == "<p>Free space is <b>0%</b></p>"
    assert data["message_id"] == message_id
    # The same filters that find SMTP mail find it.
    assert len(api.get("/calls", params={"to": "dev@example.com", "subject": "disk full"}).json()["calls"]) == 1
    assert api.get("/calls/count", params={"service": "sendgrid", "contains": "Free space"}).json()["count"] == 1
    assert api.get("/calls/count", params={"to": "nobody@example.com"}).json()["count"] == 0


def test_personalizations_cc_bcc_and_attachments(api: httpx.Client, base_url: str) -> None:
    pdf = b"%PDF-1.4 fake report \x00\x01\x02"
    mail = Mail(from_email="reports@example.com", subject="Weekly report", plain_text_content="attached")
    mail.add_to(To("a@example.com"))
    mail.add_cc(Cc("boss@example.com"))
    mail.add_bcc(Bcc("audit@example.com"))
    mail.add_attachment(Attachment(base64.b64encode(pdf).decode(), "report.pdf", "application/pdf", "attachment"))
    assert sendgrid(base_url).send(mail).status_code == 202
    data = calls(api)[0]["data"]
    assert data["to"] == ["a@example.com"]
    assert data["cc"] == ["boss@example.com"]
    assert data["bcc"] == ["audit@example.com"]
    assert data["attachments"] == [
        {"filename": "report.pdf", "content_type": "application/pdf", "size": len(pdf), "disposition": "attachment"}
    ]
    # Bcc recipients are recipients: the `to` filter sees them, as it sees an SMTP envelope's.
    assert len(calls(api, to="audit@example.com")) == 1


def test_each_personalizations_subject_finds_the_message(api: httpx.Client, base_url: str) -> None:
    mail = Mail(from_email="alerts@example.com", subject="Status", plain_text_content="db-1 is down")
    people = [("ops@example.com", "Outage: db-1"), ("ceo@example.com", "Service update"), ("qa@example.com", None)]
    for who, subject in people:
        person = Personalization()
        person.add_to(To(who))
        if subject:
            person.subject = subject
        mail.add_personalization(person)
    assert sendgrid(base_url).send(mail).status_code == 202
    [call] = calls(api)
    assert call["data"]["subject"] == "Status"
    # (The SDK puts each added personalization first, so the order is the SDK's.)
    assert sorted(call["data"]["subjects"]) == ["Outage: db-1", "Service update", "Status"]
    for part in ("outage", "SERVICE UPDATE", "status"):
        assert [c["id"] for c in calls(api, subject=part)] == [call["id"]], part
    assert calls(api, subject="weekly") == []


def test_a_personalizations_subject_overrides_the_messages(api: httpx.Client, base_url: str) -> None:
    mail = Mail(from_email="alerts@example.com", subject="Status", plain_text_content="db-1 is down")
    person = Personalization()
    person.add_to(To("ops@example.com"))
    person.subject = "Outage: db-1"
    mail.add_personalization(person)
    assert sendgrid(base_url).send(mail).status_code == 202
    assert calls(api)[0]["data"]["subjects"] == ["Outage: db-1"]
    assert len(calls(api, subject="outage")) == 1
    assert calls(api, subject="status") == []  # sent to nobody


def test_every_problem_is_reported_at_once(api: httpx.Client, base_url: str) -> None:
    body = {"personalizations": [{"to": [{"email": "not-an-address"}]}], "from": {"email": "a@example.com"}}
    with pytest.raises(BadRequestsError) as raised:
        sendgrid(base_url).client.mail.send.post(request_body=body)
    assert raised.value.status_code == 400
    errors = raised.value.to_dict["errors"]
    assert {e["field"] for e in errors} == {"personalizations.0.to.0.email", "subject", "content"}
    assert all(set(e) == {"message", "field", "help"} for e in errors)
    assert next(e for e in errors if e["field"] == "subject")["message"].startswith("The subject is required.")
    [call] = calls(api)
    assert call["response"]["status"] == 400
    assert len(call["data"]["errors"]) == 3


def valid(**changes: Any) -> dict[str, Any]:
    """A valid mail send body, with top-level keys replaced (or removed, when given None)."""
    body: dict[str, Any] = {
        "personalizations": [{"to": [{"email": "b@example.com"}]}],
        "from": {"email": "a@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (valid(personalizations=None), "personalizations"),
        (valid(**{"from": None}), "from"),
        (valid(personalizations=[{}]), "personalizations.0.to"),
        (valid(**{"from": {"email": "bad"}}), "from.email"),
        (valid(content=[{"type": "text/plain", "value": ""}]), "content.0.value"),
        (valid(attachments=[{"content": "%%% not base64", "filename": "f.txt"}]), "attachments.0.content"),
        (valid(attachments=[{"content": "aGk="}]), "attachments.0.filename"),
    ],
)
def test_validation_fields(api: httpx.Client, base_url: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequestsError) as raised:
        sendgrid(base_url).client.mail.send.post(request_body=body)
    assert [e["field"] for e in raised.value.to_dict["errors"]] == [field]


def test_template_needs_no_subject_or_content(api: httpx.Client, base_url: str) -> None:
    mail = Mail(from_email="a@example.com", to_emails="b@example.com")
    mail.template_id = "d-0123456789abcdef"
    mail.dynamic_template_data = {"name": "Ada"}
    assert sendgrid(base_url).send(mail).status_code == 202
    data = calls(api)[0]["data"]
    assert data["template_id"] == "d-0123456789abcdef"
    assert data["personalizations"][0]["dynamic_template_data"] == {"name": "Ada"}


def test_sandbox_mode_answers_200(api: httpx.Client, base_url: str) -> None:
    mail = Mail(from_email="a@example.com", to_emails="b@example.com", subject="s", plain_text_content="x")
    mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
    response = sendgrid(base_url).send(mail)
    assert response.status_code == 200
    assert calls(api)[0]["data"]["sandbox"] is True


def test_missing_key_and_malformed_json(api: httpx.Client) -> None:
    r = api.post("/v3/mail/send", json={})
    assert r.status_code == 401
    assert r.json() == {"errors": [{"message": "authorization required", "field": None, "help": None}]}
    r = api.post(
        "/v3/mail/send", content=b"{x", headers={"authorization": "Bearer k", "content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == "Bad Request"
    assert [c["response"]["status"] for c in calls(api)] == [401, 400]


def test_rate_limited_preset(api: httpx.Client, base_url: str) -> None:
    api.post("/faults", json={"service": "sendgrid", "preset": "rate_limited"}).raise_for_status()
    mail = Mail(from_email="a@example.com", to_emails="b@example.com", subject="s", plain_text_content="x")
    with pytest.raises(TooManyRequestsError) as raised:
        sendgrid(base_url).send(mail)
    assert raised.value.to_dict == {"errors": [{"message": "too many requests", "field": None, "help": None}]}
    assert raised.value.headers["X-RateLimit-Remaining"] == "0"
    assert int(raised.value.headers["X-RateLimit-Reset"]) > 0
    assert sendgrid(base_url).send(mail).status_code == 202  # the fault fired once


def test_namespace_in_host(api: httpx.Client, base_url: str) -> None:
    mail = Mail(from_email="a@example.com", to_emails="b@example.com", subject="scoped", plain_text_content="x")
    assert sendgrid(f"{base_url}/ns/mail-team").send(mail).status_code == 202
    assert calls(api, namespace="mail-team")[0]["data"]["subject"] == "scoped"


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="SG.good") as running:
        yield running


def test_pinned_keys(pinned: ThreadedHub) -> None:
    mail = Mail(from_email="a@example.com", to_emails="b@example.com", subject="s", plain_text_content="x")
    with pytest.raises(UnauthorizedError) as raised:
        sendgrid(pinned.url, "SG.wrong").send(mail)
    assert "invalid, expired, or revoked" in raised.value.to_dict["errors"][0]["message"]
    assert sendgrid(pinned.url, "SG.good").send(mail).status_code == 202
