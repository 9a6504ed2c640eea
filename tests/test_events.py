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
from collections.abc import Callable, Iterator
from email.message import EmailMessage, Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
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
