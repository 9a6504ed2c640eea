"""Delivery outcomes and signed event webhooks (docs/delivery.md), driven with the providers' SDKs.

Each signed delivery reaches a real HTTP receiver (a stdlib server on loopback, the "application")
and is checked with the provider's own verifier (SendGrid's `EventWebhook`, `svix`, Twilio's
`RequestValidator`, Mailgun's documented HMAC); a tampered body must fail that same check.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import smtplib
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage, Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import support
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.mail import Mail
from support import add_stub, extra_hub, free_port, wait_calls

from mockhub.server import ThreadedHub


class Received:
    """One request the application got."""

    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """A real HTTP server standing in for the application: records what it gets, answers as told."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.cond = threading.Condition()
        # (status, body, delay) for each request in turn; the last repeats.
        self.answers: list[tuple[int, bytes, float]] = [(200, b"ok", 0.0)]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.cond:
                    index = len(receiver.received)
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    receiver.cond.notify_all()
                status, answer, delay = receiver.answers[min(index, len(receiver.answers) - 1)]
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10) -> list[Received]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= count, timeout), (
                f"only {len(self.received)} of {count} requests arrived"
            )
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def configure(api: httpx.Client, **spec: Any) -> dict[str, Any]:
    r = api.post("/webhooks-config", json=spec)
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def outbound(api: httpx.Client, count: int, **filters: Any) -> list[dict[str, Any]]:
    return wait_calls(api, count, direction="outbound", **filters)


# -- the webhooks-config API --------------------------------------------------------------------


def test_webhooks_config_add_list_get_delete(api: httpx.Client, ns: str) -> None:
    created = configure(api, service="sendgrid", namespace=ns, url="http://127.0.0.1:9/events", events=["bounce"])
    assert created["id"].startswith("w_") and created["source"] == "api"
    assert created["service"] == "sendgrid" and created["events"] == ["bounce"]
    listed = api.get("/webhooks-config", params={"namespace": ns}).json()
    assert listed["count"] == 1 and listed["webhooks"][0]["id"] == created["id"]
    assert api.get(f"/webhooks-config/{created['id']}").json()["url"] == "http://127.0.0.1:9/events"
    assert api.delete(f"/webhooks-config/{created['id']}").json() == {"deleted": 1}
    assert api.get(f"/webhooks-config/{created['id']}").status_code == 404
    assert api.delete(f"/webhooks-config/{created['id']}").status_code == 404
    configure(api, service="mailgun", namespace=ns, url="http://127.0.0.1:9/mg", secret="key")
    assert api.delete("/webhooks-config", params={"namespace": ns}).json() == {"deleted": 1}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"service": "slack", "url": "http://127.0.0.1:9/"}, "sends no event webhooks"),
        ({"service": "sendgrid", "url": "http://127.0.0.1:9/", "events": ["bounced"]}, "has no event 'bounced'"),
        ({"service": "sendgrid", "url": "ftp://example.com/x"}, "http"),
        ({"service": "sendgrid"}, "url"),
        ({"service": "sendgrid", "url": "http://127.0.0.1:9/", "colour": "red"}, "colour"),
    ],
)
def test_webhooks_config_refuses_what_it_cannot_serve(api: httpx.Client, spec: dict[str, Any], words: str) -> None:
    r = api.post("/webhooks-config", json=spec)
    assert r.status_code == 422
    assert words in r.text


def test_reset_forgets_webhook_configs_of_the_api(api: httpx.Client, ns: str) -> None:
    configure(api, service="sendgrid", namespace=ns, url="http://127.0.0.1:9/events")
    api.post("/reset", params={"namespace": ns})
    assert api.get("/webhooks-config", params={"namespace": ns}).json()["count"] == 0


# -- SendGrid -----------------------------------------------------------------------------------


def sendgrid_mail(to: str, subject: str = "Welcome") -> Mail:
    return Mail(from_email="app@example.com", to_emails=to, subject=subject, plain_text_content="hello")


def test_sendgrid_bounce_stub_posts_a_signed_bounce_event(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    configure(api, service="sendgrid", namespace=ns, url=app.url + "/sendgrid/events")
    add_stub(
        api,
        "sendgrid",
        match={"to": "gone@example.com", "namespace": ns},
        reply={"outcome": "bounced", "diagnostic_code": "550 5.1.1 user unknown"},
    )
    client = SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}")
    sent = client.send(sendgrid_mail("gone@example.com"))
    message_id = sent.headers["X-Message-Id"]

    processed, bounced = app.wait(2)
    key = client.client.user.webhooks.event.settings.signed.get().to_dict["public_key"]
    verifier = EventWebhook()
    public_key = verifier.convert_public_key_to_ecdsa(key)
    for hit in (processed, bounced):
        signature = hit.headers["x-twilio-email-event-webhook-signature"]
        timestamp = hit.headers["x-twilio-email-event-webhook-timestamp"]
        assert verifier.verify_signature(hit.body.decode(), signature, timestamp, public_key)
        tampered = hit.body.decode().replace("gone@", "here@")
        assert not verifier.verify_signature(tampered, signature, timestamp, public_key)
    assert [e["event"] for e in processed.json()] == ["processed"]
    [event] = bounced.json()
    assert event["event"] == "bounce" and event["email"] == "gone@example.com"
    assert event["type"] == "bounce" and event["status"] == "5.1.1" and event["reason"] == "550 5.1.1 user unknown"
    assert event["sg_message_id"].startswith(message_id)

    [message] = support.calls(api, "sendgrid", namespace=ns, direction="inbound", path="/v3/mail/send")
    assert message["data"]["outcome"] == "bounced" and message["data"]["bounce_type"] == "permanent"
    deliveries = outbound(api, 2, service="sendgrid", namespace=ns)
    assert [d["data"]["event"] for d in deliveries] == ["processed", "bounce"]
    assert all(d["response"]["status"] == 200 and d["path"] == app.url + "/sendgrid/events" for d in deliveries)


def test_sendgrid_event_webhook_settings_api_sets_the_url(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    client = SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}")
    settings = client.client.user.webhooks.event.settings
    assert settings.get().to_dict["enabled"] is False
    body = {"enabled": True, "url": app.url + "/sg", "bounce": True, "delivered": False, "processed": False}
    answer = settings.patch(request_body=body).to_dict
    assert answer["enabled"] is True and answer["url"] == app.url + "/sg"
    assert answer["bounce"] is True and answer["delivered"] is False and answer["spam_report"] is False
    [config] = api.get("/webhooks-config", params={"namespace": ns}).json()["webhooks"]
    assert config["source"] == "provider" and config["events"] == ["bounce"]
    add_stub(api, "sendgrid", match={"namespace": ns}, reply={"outcome": "bounced"})
    client.send(sendgrid_mail("gone@example.com"))
    [hit] = app.wait(1)
    assert [e["event"] for e in hit.json()] == ["bounce"]
    assert settings.patch(request_body={"enabled": False}).to_dict["enabled"] is False
    assert api.get("/webhooks-config", params={"namespace": ns}).json()["count"] == 0
    bad = httpx.patch(
        f"{base_url}/ns/{ns}/v3/user/webhooks/event/settings",
        headers={"authorization": "Bearer SG.key"},
        json={"enabled": "yes", "url": "ftp://x"},
    )
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"enabled", "url"}


def test_sendgrid_default_outcome_is_delivered(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    configure(api, service="sendgrid", namespace=ns, url=app.url + "/events", events=["delivered"])
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}").send(sendgrid_mail("ok@example.com"))
    [hit] = app.wait(1)
    assert [e["event"] for e in hit.json()] == ["delivered"]
    [message] = support.calls(api, "sendgrid", namespace=ns, direction="inbound")
    assert message["data"]["outcome"] == "delivered"


def test_no_config_no_delivery(api: httpx.Client, base_url: str, ns: str) -> None:
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}").send(sendgrid_mail("ok@example.com"))
    time.sleep(0.3)
    assert support.calls(api, namespace=ns, direction="outbound") == []


# -- Mailgun ------------------------------------------------------------------------------------


def mailgun_send(base_url: str, ns: str, to: str) -> httpx.Response:
    form = {"from": "App <app@example.com>", "to": to, "subject": "Reset", "text": "your code 123456"}
    r = httpx.post(f"{base_url}/ns/{ns}/v3/mg.example.com/messages", data=form, auth=("api", "key-1"))
    assert r.status_code == 200, r.text
    return r


def mailgun_verify(signing_key: str, signature: dict[str, str]) -> bool:
    """Mailgun's documented check: HMAC-SHA256 of timestamp + token under the webhook signing key."""
    digest = hmac.new(
        signing_key.encode(), (signature["timestamp"] + signature["token"]).encode(), hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(digest, signature["signature"])


def test_mailgun_failed_webhook_is_signed_with_the_signing_key(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    key = "mailgun-signing-key-xyz"
    configure(api, service="mailgun", namespace=ns, url=app.url + "/mailgun", secret=key, events=["permanent_fail"])
    add_stub(api, "mailgun", match={"namespace": ns}, reply={"outcome": "bounced"})
    sent = mailgun_send(base_url, ns, "gone@example.com").json()
    [hit] = app.wait(1)
    body = hit.json()
    assert mailgun_verify(key, body["signature"])
    assert not mailgun_verify("another-key", body["signature"])
    forged = dict(body["signature"], timestamp=str(int(body["signature"]["timestamp"]) + 1))
    assert not mailgun_verify(key, forged)
    event = body["event-data"]
    assert event["event"] == "failed" and event["severity"] == "permanent" and event["reason"] == "bounce"
    assert event["recipient"] == "gone@example.com"
    assert event["delivery-status"]["code"] == 550
    assert event["message"]["headers"]["message-id"] == sent["id"].strip("<>")
    [delivery] = outbound(api, 1, service="mailgun", namespace=ns)
    assert delivery["data"]["event"] == "failed" and delivery["response"]["status"] == 200


def test_mailgun_delivered_and_complained(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    configure(api, service="mailgun", namespace=ns, url=app.url + "/mailgun", secret="k")
    add_stub(api, "mailgun", match={"namespace": ns}, reply={"outcome": "complained"})
    mailgun_send(base_url, ns, "angry@example.com")
    hits = app.wait(3)
    assert [h.json()["event-data"]["event"] for h in hits] == ["accepted", "delivered", "complained"]
    assert all(mailgun_verify("k", h.json()["signature"]) for h in hits)


# -- Resend (Svix) ------------------------------------------------------------------------------


def test_resend_bounced_test_address_posts_svix_signed_events(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    from svix.webhooks import Webhook, WebhookVerificationError

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    configure(api, service="resend", namespace=ns, url=app.url + "/resend", secret=secret)
    r = httpx.post(
        f"{base_url}/ns/{ns}/emails",
        headers={"authorization": "Bearer re_test"},
        json={"from": "app@example.com", "to": ["bounced@resend.dev"], "subject": "Hi", "text": "hello"},
    )
    assert r.status_code == 200, r.text
    email_id = r.json()["id"]
    sent, bounced = app.wait(2)
    import resend

    verifier = Webhook(secret)
    for hit in (sent, bounced):
        verifier.verify(hit.body, hit.headers)  # raises unless the Svix signature holds
        assert hit.json()["data"]["email_id"] == email_id
        with pytest.raises(WebhookVerificationError):
            verifier.verify(hit.body.replace(b"resend.dev", b"resend.dew"), hit.headers)
        # The Resend SDK's own verifier agrees.
        svix = {"id": hit.headers["svix-id"], "timestamp": hit.headers["svix-timestamp"]}
        svix["signature"] = hit.headers["svix-signature"]
        payload = resend.Webhooks.verify({"payload": hit.body.decode(), "headers": svix, "webhook_secret": secret})
        assert payload["data"]["email_id"] == email_id
        with pytest.raises(ValueError):
            tampered = hit.body.decode().replace("resend.dev", "resend.dew")
            resend.Webhooks.verify({"payload": tampered, "headers": svix, "webhook_secret": secret})
    assert sent.json()["type"] == "email.sent"
    event = bounced.json()
    assert event["type"] == "email.bounced" and event["data"]["bounce"]["type"] == "Permanent"
    [message] = support.calls(api, "resend", namespace=ns, direction="inbound", path="/emails")
    assert message["data"]["outcome"] == "bounced"


def test_resend_stub_outcome_sets_last_event(api: httpx.Client, base_url: str, ns: str) -> None:
    add_stub(api, "resend", match={"namespace": ns}, reply={"outcome": "deferred"})
    auth = {"authorization": "Bearer re_test"}
    r = httpx.post(
        f"{base_url}/ns/{ns}/emails",
        headers=auth,
        json={"from": "app@example.com", "to": ["slow@example.com"], "subject": "Hi", "text": "hello"},
    )
    got = httpx.get(f"{base_url}/ns/{ns}/emails/{r.json()['id']}", headers=auth).json()
    assert got["last_event"] == "delivery_delayed"


# -- Postmark -----------------------------------------------------------------------------------


def test_postmark_bounce_and_delivery_records(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    from postmarker.core import PostmarkClient

    # postmarker joins absolute paths to its root, so this test uses the default namespace.
    configure(api, service="postmark", url=app.url.replace("://", "://hook:pw@") + "/postmark")
    add_stub(api, "postmark", match={"to": "gone@example.com"}, reply={"outcome": "bounced"})
    client = PostmarkClient(server_token="server-token", root_api_url=f"{base_url}/")
    sent = client.emails.send(From="app@example.com", To="gone@example.com", Subject="Hi", TextBody="hello")
    [hit] = app.wait(1)
    record_ = hit.json()
    assert record_["RecordType"] == "Bounce" and record_["Type"] == "HardBounce" and record_["TypeCode"] == 1
    assert record_["MessageID"] == sent["MessageID"] and record_["Email"] == "gone@example.com"
    assert hit.headers["authorization"] == "Basic aG9vazpwdw=="  # the URL's credentials, as Postmark sends them
    client.emails.send(From="app@example.com", To="fine@example.com", Subject="Hi", TextBody="hello")
    delivery = app.wait(2)[1].json()
    assert delivery["RecordType"] == "Delivery" and delivery["Recipient"] == "fine@example.com"


# -- SES ----------------------------------------------------------------------------------------


def test_ses_simulator_bounce_is_an_sns_notification(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    import boto3

    configure(api, service="ses", namespace=ns, url=app.url + "/ses", events=["Bounce"])
    ses = boto3.client(
        "sesv2",
        endpoint_url=f"{base_url}/ns/{ns}",
        region_name="eu-west-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
    )
    sent = ses.send_email(
        FromEmailAddress="app@example.com",
        Destination={"ToAddresses": ["bounce@simulator.amazonses.com", "ok@example.com"]},
        Content={"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "hello"}}}},
    )
    [hit] = app.wait(1)
    assert hit.headers["x-amz-sns-message-type"] == "Notification"
    notification = orjson.loads(hit.json()["Message"])
    assert notification["notificationType"] == "Bounce"
    assert notification["bounce"]["bounceType"] == "Permanent"
    assert notification["bounce"]["bouncedRecipients"][0]["emailAddress"] == "bounce@simulator.amazonses.com"
    assert notification["mail"]["messageId"] == sent["MessageId"]


def test_sns_sms_records_the_stubbed_outcome(api: httpx.Client, base_url: str, ns: str) -> None:
    import boto3

    sns = boto3.client(
        "sns",
        endpoint_url=f"{base_url}/ns/{ns}",
        region_name="us-east-1",
        aws_access_key_id="AKID",
        aws_secret_access_key="secret",
    )
    add_stub(api, "sns", match={"to": "+15551230000"}, reply={"outcome": "failed", "error_code": 30006})
    sns.publish(PhoneNumber="+15551230000", Message="code 1234")
    sns.publish(PhoneNumber="+15551239999", Message="code 5678")
    failed, delivered = support.calls(api, "sns", namespace=ns)
    assert failed["data"]["outcome"] == "failed" and failed["data"]["error_code"] == 30006
    assert delivered["data"]["outcome"] == "delivered"


# -- Twilio -------------------------------------------------------------------------------------


def test_twilio_outcome_and_config_callback_signed(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    from twilio.request_validator import RequestValidator
    from twilio.rest import Client

    token = "webhook-token"
    url = app.url + "/sms-status"
    configure(api, service="twilio", namespace=ns, url=url, secret=token, events=["undelivered"])
    add_stub(api, "twilio", match={"namespace": ns}, reply={"outcome": "undelivered", "error_code": 30005})
    client = Client("AC" + "0" * 32, "basic-token", environment={})
    client.api.base_url = f"{base_url}/ns/{ns}"
    client.messages.create(to="+15005550006", from_="+15005550001", body="hi")
    [hit] = app.wait(1)
    params = {k: v[0] for k, v in parse_qs(hit.body.decode()).items()}
    assert params["MessageStatus"] == "undelivered" and params["ErrorCode"] == "30005"
    validator = RequestValidator(token)
    assert validator.validate(url, params, hit.headers["x-twilio-signature"])
    assert not validator.validate(url, {**params, "ErrorCode": "30003"}, hit.headers["x-twilio-signature"])
    [create] = support.calls(api, "twilio", namespace=ns, direction="inbound")
    assert create["data"]["outcome"] == "undelivered" and create["data"]["error_code"] == 30005


# -- SMTP DSN -----------------------------------------------------------------------------------


def smtp_send(server: ThreadedHub, ns: str, to: str, sender: str = "app@example.com") -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Welcome"
    msg["Message-ID"] = "<welcome-1@example.com>"
    msg.set_content("hello")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
        smtp.login(f"ns-{ns}", "x")
        smtp.send_message(msg, from_addr=sender, to_addrs=[to])


def assert_dsn(raw: bytes, recipient: str, action: str, status: str) -> Message:
    report = email.message_from_bytes(raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = report.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    per_message, per_recipient = parts[1].get_payload()
    assert per_message["Reporting-MTA"].startswith("dns; ")
    assert per_recipient["Final-Recipient"] == f"rfc822; {recipient}"
    assert per_recipient["Action"] == action and per_recipient["Status"] == status
    assert "Message-ID: <welcome-1@example.com>" in parts[2].get_content()
    return report


def test_smtp_bounce_is_a_dsn_posted_to_bounce_to(
    api: httpx.Client, server: ThreadedHub, ns: str, app: Receiver
) -> None:
    configure(api, service="smtp", namespace=ns, url=app.url + "/bounces")
    add_stub(
        api,
        "smtp",
        match={"to": "gone@example.com"},
        reply={"outcome": "bounced", "diagnostic_code": "550 5.1.1 no such user"},
    )
    smtp_send(server, ns, "gone@example.com")
    [hit] = app.wait(1)
    assert hit.headers["content-type"] == "message/rfc822"
    report = assert_dsn(hit.body, "gone@example.com", "failed", "5.1.1")
    assert report["To"] == "app@example.com"
    [message] = support.calls(api, "smtp", namespace=ns, method="DATA")
    assert message["data"]["outcome"] == "bounced" and message["response"]["status"] == 250
    [delivery] = outbound(api, 1, service="smtp", namespace=ns)
    assert delivery["data"]["action"] == "failed" and delivery["response"]["status"] == 200


def test_smtp_bounce_without_bounce_to_is_an_outbound_message(api: httpx.Client, server: ThreadedHub, ns: str) -> None:
    add_stub(api, "smtp", match={"namespace": ns}, reply={"outcome": "deferred"})
    smtp_send(server, ns, "slow@example.com")
    [dsn] = outbound(api, 1, service="smtp", namespace=ns, method="DSN")
    assert dsn["data"]["rcpt_to"] == ["app@example.com"] and dsn["data"]["action"] == "delayed"
    raw = api.get(f"/calls/{dsn['id']}/raw").content
    assert_dsn(raw, "slow@example.com", "delayed", "4.7.0")
    # The sender's `to` filter finds the bounce as it finds mail.
    assert [c["id"] for c in support.calls(api, "smtp", namespace=ns, to="app@example.com")] == [dsn["id"]]


def test_smtp_rejected_outcome_refuses_data(api: httpx.Client, server: ThreadedHub, ns: str) -> None:
    add_stub(api, "smtp", match={"namespace": ns}, reply={"outcome": "rejected"})
    with pytest.raises(smtplib.SMTPDataError) as refused:
        smtp_send(server, ns, "x@example.com")
    assert refused.value.smtp_code == 550
    [message] = support.calls(api, "smtp", namespace=ns, method="DATA")
    assert message["data"]["outcome"] == "rejected" and message["response"]["status"] == 550
    assert support.calls(api, namespace=ns, direction="outbound") == []


def test_smtp_stubs_without_an_outcome_are_not_spent(api: httpx.Client, server: ThreadedHub, ns: str) -> None:
    stub = add_stub(api, None, match={"namespace": ns}, reply={"content": "an LLM answer"}, times=1)
    smtp_send(server, ns, "x@example.com")
    assert api.get(f"/stubs/{stub['id']}").json()["hits"] == 0
    [message] = support.calls(api, "smtp", namespace=ns, method="DATA")
    assert message["data"]["outcome"] == "delivered" and message["stub"] is None


# -- delivery: retries, broken targets, allowlist -----------------------------------------------


def test_5xx_is_retried_on_the_compressed_back_off_and_bounded(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    app.answers = [(503, b"busy", 0.0)]
    configure(api, service="sendgrid", namespace=ns, url=app.url + "/events", events=["processed"])
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}").send(sendgrid_mail("ok@example.com"))
    attempts = outbound(api, 4, service="sendgrid", namespace=ns)
    assert [a["data"]["attempt"] for a in attempts] == [1, 2, 3, 4]
    assert all(a["data"]["max_attempts"] == 4 and a["response"]["status"] == 503 for a in attempts)
    assert attempts[-1]["data"]["gave_up"] is True and "next_attempt_in_s" not in attempts[-1]["data"]
    assert attempts[0]["data"]["next_attempt_in_s"] == pytest.approx(0.06)
    time.sleep(0.5)
    assert len(app.received) == 4  # bounded: no fifth attempt


def test_a_retry_that_succeeds_stops(api: httpx.Client, base_url: str, ns: str, app: Receiver) -> None:
    app.answers = [(500, b"oops", 0.0), (200, b"ok", 0.0)]
    configure(api, service="sendgrid", namespace=ns, url=app.url + "/events", events=["processed"])
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}").send(sendgrid_mail("ok@example.com"))
    attempts = outbound(api, 2, service="sendgrid", namespace=ns)
    assert [a["response"]["status"] for a in attempts] == [500, 200]
    time.sleep(0.3)
    assert len(app.received) == 2


def test_slow_down_or_garbage_targets_never_block_the_fakes(api: httpx.Client, ns: str, app: Receiver) -> None:
    app.answers = [(200, b"\x00\xff not json", 3.0)]
    down = f"http://127.0.0.1:{free_port()}/events"
    with extra_hub(webhook_timeout=1.0, webhook_max_attempts=2) as hub:
        hub_api = httpx.Client(base_url=hub.url, timeout=10)
        configure(hub_api, service="sendgrid", namespace=ns, url=app.url + "/slow")
        configure(hub_api, service="mailgun", namespace=ns, url=down, secret="k")
        client = SendGridAPIClient("SG.key", host=f"{hub.url}/ns/{ns}")
        started = time.perf_counter()
        for i in range(5):
            assert client.send(sendgrid_mail(f"u{i}@example.com")).status_code == 202
            mailgun_send(hub.url, ns, f"u{i}@example.com")
        assert time.perf_counter() - started < 2.0  # the answers did not wait for the slow or dead targets
        slow = wait_calls(hub_api, 4, direction="outbound", service="sendgrid", namespace=ns)
        assert any("Timeout" in (c["data"].get("error") or "") for c in slow)
        dead = wait_calls(hub_api, 20, direction="outbound", service="mailgun", namespace=ns)
        assert all("ConnectError" in c["data"]["error"] and c["response"] is None for c in dead)
        assert {c["data"]["attempt"] for c in dead} == {1, 2}
        assert hub_api.get("/health").json()["status"] == "ok"


def test_callback_allow_limits_webhook_targets(ns: str, app: Receiver) -> None:
    with extra_hub(callback_allow="hooks.example.com") as hub:
        hub_api = httpx.Client(base_url=hub.url, timeout=10)
        configure(hub_api, service="sendgrid", namespace=ns, url=app.url + "/events", events=["processed"])
        SendGridAPIClient("SG.key", host=f"{hub.url}/ns/{ns}").send(sendgrid_mail("ok@example.com"))
        [refused] = wait_calls(hub_api, 1, direction="outbound", namespace=ns)
        assert "MOCKHUB_CALLBACK_ALLOW" in refused["data"]["error"] and refused["response"] is None
        assert "attempt" not in refused["data"]  # a refusal is not retried
    assert app.received == []


def test_webhooks_from_settings(app: Receiver) -> None:
    setting = orjson.dumps([{"service": "sendgrid", "url": app.url + "/events", "events": ["delivered"]}]).decode()
    with extra_hub(webhooks=setting) as hub:
        hub_api = httpx.Client(base_url=hub.url, timeout=10)
        [config] = hub_api.get("/webhooks-config").json()["webhooks"]
        assert config["source"] == "settings"
        SendGridAPIClient("SG.key", host=hub.url).send(sendgrid_mail("ok@example.com"))
        [hit] = app.wait(1)
        assert hit.json()[0]["event"] == "delivered"
        hub_api.post("/reset")
        assert hub_api.get("/webhooks-config").json()["count"] == 1  # settings stay across a reset


def test_a_bad_webhooks_setting_fails_at_start() -> None:
    from pydantic import ValidationError

    from mockhub.settings import Settings

    with pytest.raises(ValidationError, match="url"):
        Settings(webhooks='[{"service": "sendgrid"}]')


# -- the client and the CLI ---------------------------------------------------------------------


def test_client_webhook_methods_scope_to_the_namespace(server: ThreadedHub, api: httpx.Client, ns: str) -> None:
    from mockhub import MockHub
    from mockhub.client import MockHubError

    with MockHub(server.url, namespace=ns) as hub:
        config = hub.webhook("mailgun", "http://127.0.0.1:9/mg", secret="key", events=["delivered"])
        assert config.namespace == ns and config.secret == "key" and config.events == ["delivered"]
        assert [c.id for c in hub.webhooks()] == [config.id]
        assert hub.delete_webhook(config.id) is True
        assert hub.delete_webhook(config.id, missing_ok=True) is False
        with pytest.raises(MockHubError):
            hub.delete_webhook(config.id)
        hub.webhook("sendgrid", "http://127.0.0.1:9/sg")
        assert hub.clear_webhooks() == 1
        with pytest.raises(MockHubError, match="sends no event webhooks"):
            hub.webhook("openai", "http://127.0.0.1:9/x")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_async_client_webhook_methods(server: ThreadedHub, api: httpx.Client, ns: str) -> None:
    from mockhub import AsyncMockHub

    async with AsyncMockHub(server.url, namespace=ns) as hub:
        config = await hub.webhook("resend", "http://127.0.0.1:9/r", secret="whsec_abc")
        assert [c.id for c in await hub.webhooks()] == [config.id]
        assert await hub.delete_webhook(config.id) is True
        assert await hub.clear_webhooks() == 0


def test_cli_webhook_add_list_clear(server: ThreadedHub, api: httpx.Client, ns: str) -> None:
    from typer.testing import CliRunner

    from mockhub.cli import app as cli_app

    runner = CliRunner()
    env = {"MOCKHUB_URL": server.url, "NO_COLOR": "1"}
    added = runner.invoke(
        cli_app, ["webhook", "add", "sendgrid", "http://127.0.0.1:9/sg", "-e", "bounce", "-n", ns, "--json"], env=env
    )
    assert added.exit_code == 0, added.output
    config = orjson.loads(added.stdout)
    assert config["events"] == ["bounce"] and config["namespace"] == ns
    listed = runner.invoke(cli_app, ["webhook", "list", "-n", ns], env=env)
    assert config["id"] in listed.stdout and "bounce" in listed.stdout
    cleared = runner.invoke(cli_app, ["webhook", "clear", "-n", ns], env=env)
    assert cleared.exit_code == 0 and "deleted 1" in cleared.output
    bad = runner.invoke(cli_app, ["webhook", "add", "slack", "http://127.0.0.1:9/x"], env=env)
    assert bad.exit_code != 0


def test_a_namespaces_own_config_wins_over_one_for_every_namespace(
    api: httpx.Client, base_url: str, ns: str, app: Receiver
) -> None:
    configure(api, service="sendgrid", url=app.url + "/everyone", events=["processed"])
    configure(api, service="sendgrid", namespace=ns, url=app.url + "/mine", events=["processed"])
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}").send(sendgrid_mail("a@example.com"))
    SendGridAPIClient("SG.key", host=f"{base_url}/ns/{ns}-other").send(sendgrid_mail("b@example.com"))
    hits = app.wait(2)
    time.sleep(0.2)
    assert sorted((h.path, h.json()[0]["email"]) for h in app.received) == [
        ("/everyone", "b@example.com"),
        ("/mine", "a@example.com"),
    ]
    assert len(hits) == 2


def test_malformed_webhooks_config_bodies_get_the_apis_error(api: httpx.Client) -> None:
    r = api.post("/webhooks-config", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and "error" in r.json()
    r = api.post("/webhooks-config", json={"service": "sendgrid", "url": "http://127.0.0.1:9/", "events": "bounce"})
    assert r.status_code == 422 and "events" in r.text
    assert api.get("/health").json()["status"] == "ok"
