"""Inbound simulation: `POST /simulate/{service}/{event}` delivers a provider's signed request to a real app.

The target is a small real application (Werkzeug, what Flask apps run on) on a free loopback port;
signatures are checked with the providers' own verifiers (`twilio.request_validator`,
`slack_sdk.signature`), the update with python-telegram-bot's own `Update.de_json`.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from support import extra_hub, free_port, own_fake_hub, wait_calls
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from werkzeug.datastructures import MultiDict
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from mockhub.client import AsyncMockHub, MockHub, MockHubError
from mockhub.server import ThreadedHub

TOKEN = "app-auth-token"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USER, APP_NUMBER = "+15551230001", "+15557650002"


@dataclass
class Seen:
    """One request the application received."""

    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    form: MultiDict[str, str]
    files: dict[str, tuple[str | None, str | None, bytes]]


@dataclass
class App:
    """A real application on a free port: records each request, answers `status`/`content_type`/`body`."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b"ok"
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        raw = request.get_data(cache=True)
        files = {name: (f.filename, f.mimetype, f.read()) for name, f in request.files.items()}
        self.seen.append(Seen(request.url, request.method, dict(request.headers), raw, MultiDict(request.form), files))
        if self.delay:
            time.sleep(self.delay)
        return Response(self.body, self.status, content_type=self.content_type)(environ, start_response)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Seen:
        assert self.seen, "the application received nothing"
        return self.seen[-1]


@pytest.fixture
def app() -> Iterator[App]:
    target = App()
    server = make_server("127.0.0.1", 0, target, threaded=True)
    target.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield target
    server.shutdown()
    thread.join(5)


def simulate(api: httpx.Client, path: str, body: dict[str, Any], namespace: str | None = None) -> httpx.Response:
    params = {"namespace": namespace} if namespace else {}
    return api.post(f"/simulate/{path}", json=body, params=params, timeout=30)


# -- Twilio ------------------------------------------------------------------------------------------


def test_inbound_sms_is_signed_so_the_twilio_validator_accepts_it(api: httpx.Client, app: App, ns: str) -> None:
    url = f"{app.url}/sms/incoming?account=acme"
    body = {"url": url, "auth_token": TOKEN, "from": USER, "to": APP_NUMBER, "body": "STOP please"}
    r = simulate(api, "twilio/inbound-sms", body, ns)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["delivered"] and result["ok"] and result["status"] == 200
    assert result["response"]["body"] == "ok" and result["namespace"] == ns

    seen = app.last()
    assert seen.url == url and seen.method == "POST"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    validator = RequestValidator(TOKEN)
    assert validator.validate(seen.url, seen.form, seen.headers["X-Twilio-Signature"])
    form = seen.form
    assert form["From"] == USER and form["To"] == APP_NUMBER and form["Body"] == "STOP please"
    assert form["MessageSid"].startswith("SM") and form["SmsSid"] == form["MessageSid"] == form["SmsMessageSid"]
    assert form["AccountSid"].startswith("AC") and form["NumMedia"] == "0" and form["SmsStatus"] == "received"
    assert form["ApiVersion"] == "2010-04-01" and form["NumSegments"] == "1" and form["FromCountry"] == "US"

    # A tampered body, or another token, is refused by the same validator.
    tampered = MultiDict(form)
    tampered["Body"] = "START"
    assert not validator.validate(seen.url, tampered, seen.headers["X-Twilio-Signature"])
    assert not RequestValidator("other").validate(seen.url, form, seen.headers["X-Twilio-Signature"])

    # The delivery is recorded in the namespace as an outbound Twilio call, with the app's answer.
    call = api.get(f"/calls/{result['call_id']}").json()
    assert call["service"] == "twilio" and call["direction"] == "outbound" and call["namespace"] == ns
    assert call["path"] == url and call["response"]["status"] == 200 and call["response"]["body"] == "ok"
    assert call["data"]["simulation"] == "inbound-sms" and call["data"]["body"] == "STOP please"
    assert call["headers"]["x-twilio-signature"] == seen.headers["X-Twilio-Signature"]


def test_inbound_mms_and_the_default_token(api: httpx.Client, app: App) -> None:
    media = ["https://example.com/cat.jpg", "https://example.com/doc.pdf"]
    body = {"url": f"{app.url}/sms", "from": USER, "to": APP_NUMBER, "media_urls": media}
    body["media_content_types"] = ["image/jpeg", "application/pdf"]
    body["params"] = {"FromCity": "SAN FRANCISCO"}
    assert simulate(api, "twilio/inbound-sms", body).json()["ok"]
    seen = app.last()
    # Without auth_token it signs with the token `mockhub env` gives applications.
    assert RequestValidator("mockhub-auth-token").validate(seen.url, seen.form, seen.headers["X-Twilio-Signature"])
    assert seen.form["NumMedia"] == "2" and seen.form["MediaUrl1"] == media[1]
    assert seen.form["MediaContentType1"] == "application/pdf" and seen.form["FromCity"] == "SAN FRANCISCO"


def test_an_inbound_sms_signed_with_a_shared_key(api: httpx.Client, app: App) -> None:
    from twilio.request_validator import get_signature_algorithm

    body = {"url": f"{app.url}/sms", "auth_token": "shared-secret", "from": USER, "to": APP_NUMBER, "body": "x"}
    assert simulate(api, "twilio/inbound-sms", {**body, "algorithm": "HMAC_SHA256"}).json()["ok"]
    seen = app.last()
    settings = seen.headers["X-Twilio-Webhooks-Signature-Settings"]
    assert settings == "key=webhooks_sharedkey_mockhub,algorithm=HMAC_SHA256"
    algorithm = get_signature_algorithm(settings)
    validator = RequestValidator("shared-secret")
    assert validator.validate(seen.url, seen.form, seen.headers["X-Twilio-Signature"], algorithm)
    assert not validator.validate(seen.url, seen.form, seen.headers["X-Twilio-Signature"])  # not SHA-1


TWIML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Message>Thanks, you are unsubscribed.</Message>
  <Message to="+15550009999" from="+15557650002"><Body>User unsubscribed</Body><Media>https://example.com/a.png</Media></Message>
  <Say>ignored</Say>
</Response>"""


def test_a_twiml_reply_becomes_outbound_sms_calls(api: httpx.Client, app: App, ns: str, server: ThreadedHub) -> None:
    app.content_type, app.body = "text/xml", TWIML
    body = {"url": f"{app.url}/sms", "auth_token": TOKEN, "from": USER, "to": APP_NUMBER, "body": "STOP"}
    result = simulate(api, "twilio/inbound-sms", body, ns).json()
    assert len(result["caused"]) == 2, result

    # The existing filters find the replies: to the sender, from the number texted, in the namespace.
    replies = api.get("/calls", params={"service": "twilio", "namespace": ns, "to": USER}).json()["calls"]
    reply = next(c for c in replies if c["id"] == result["caused"][0])
    assert reply["direction"] == "outbound" and reply["data"]["from"] == APP_NUMBER
    assert reply["data"]["body"] == "Thanks, you are unsubscribed." and reply["data"]["source"] == "twiml"
    assert reply["data"]["caused_by"] == result["call_id"]
    assert reply["path"].endswith("/Messages.json") and "→ +15551230001: Thanks" in reply["summary"]
    second = api.get(f"/calls/{result['caused'][1]}").json()
    assert second["data"]["to"] == "+15550009999" and second["data"]["body"] == "User unsubscribed"
    assert second["data"]["media_url"] == ["https://example.com/a.png"]
    assert api.get("/calls/count", params={"namespace": ns, "contains": "unsubscribed"}).json()["count"] >= 2
    delivery = api.get(f"/calls/{result['call_id']}").json()
    assert delivery["data"]["twiml"] == ["Message", "Message", "Say"]

    # The Messages API of the namespace lists the replies, as Twilio does.
    twilio = Client("AC" + "0" * 32, TOKEN, environment={})
    twilio.api.base_url = f"{server.url}/ns/{ns}"
    listed = {m.body for m in twilio.messages.list(to=USER)}
    assert listed == {"Thanks, you are unsubscribed."}


@pytest.mark.parametrize(
    ("content_type", "answer", "why"),
    [
        ("text/xml", b"<Response><Message>unclosed</Response>", "not valid XML"),
        ("text/xml", b'<!DOCTYPE r [<!ENTITY a "aaaa">]><Response><Message>&a;</Message></Response>', "DTD"),
        ("application/xml", b"<Reply><Message>x</Message></Reply>", "not <Response>"),
        ("text/plain", b"thanks", None),
        ("application/json", b'{"ok": true}', None),
    ],
)
def test_an_answer_that_is_not_twiml_sends_nothing(
    api: httpx.Client, app: App, content_type: str, answer: bytes, why: str | None
) -> None:
    app.content_type, app.body = content_type, answer
    body = {"url": f"{app.url}/sms", "from": USER, "to": APP_NUMBER, "body": "hi"}
    result = simulate(api, "twilio/inbound-sms", body).json()
    assert result["ok"] and result["caused"] == []
    delivery = api.get(f"/calls/{result['call_id']}").json()
    if why is None:
        assert "twiml_error" not in delivery["data"]
    else:
        assert why in delivery["data"]["twiml_error"]
    assert api.get("/calls/count", params={"service": "twilio"}).json()["count"] == 1


def test_an_error_status_is_answered_and_recorded(api: httpx.Client, app: App) -> None:
    app.status, app.content_type, app.body = 500, "text/xml", TWIML
    result = simulate(api, "twilio/inbound-sms", {"url": app.url, "from": USER, "to": APP_NUMBER}).json()
    assert result["delivered"] and not result["ok"] and result["status"] == 500
    assert result["caused"] == []  # Twilio does not act on a failed webhook's body
    assert api.get(f"/calls/{result['call_id']}").json()["response"]["status"] == 500


# -- Slack -------------------------------------------------------------------------------------------


def _verified(seen: Seen, secret: str = SECRET) -> bool:
    return SignatureVerifier(secret).is_valid_request(seen.body, seen.headers)


def test_a_block_action_is_signed_and_form_encoded(api: httpx.Client, app: App, ns: str) -> None:
    body = {"url": f"{app.url}/slack/actions", "signing_secret": SECRET, "action_id": "approve", "value": "req-42"}
    result = simulate(api, "slack/interaction", body, ns).json()
    assert result["ok"], result
    seen = app.last()
    assert _verified(seen)
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not SignatureVerifier("wrong-secret").is_valid_request(seen.body, seen.headers)
    assert not SignatureVerifier(SECRET).is_valid_request(seen.body.replace(b"req-42", b"req-43"), seen.headers)

    payload = json.loads(seen.form["payload"])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U000"
    action = payload["actions"][0]
    assert action["action_id"] == "approve" and action["value"] == "req-42" and action["type"] == "button"
    assert payload["container"]["channel_id"] == payload["channel"]["id"] and payload["trigger_id"]

    # The response_url is the Slack fake's: what the app posts there is recorded in the namespace.
    r = httpx.post(payload["response_url"], json={"text": "Approved!", "replace_original": True})
    assert r.status_code == 200 and r.text == "ok"
    answered = wait_calls(api, 1, service="slack", namespace=ns, direction="inbound", contains="Approved")
    assert answered[0]["data"]["text"] == "Approved!"
    delivery = api.get(f"/calls/{result['call_id']}").json()
    assert delivery["direction"] == "outbound" and delivery["data"]["action_id"] == "approve"


def test_other_interactions_and_a_replaced_payload(api: httpx.Client, app: App) -> None:
    values = {"b1": {"reason": {"type": "plain_text_input", "value": "because"}}}
    body = {"url": app.url, "signing_secret": SECRET, "type": "view_submission", "callback_id": "why", "values": values}
    assert simulate(api, "slack/interaction", body).json()["ok"]
    payload = json.loads(app.last().form["payload"])
    assert payload["view"]["callback_id"] == "why" and payload["view"]["state"]["values"] == values
    assert _verified(app.last())

    body = {"url": app.url, "signing_secret": SECRET, "type": "shortcut", "payload": {"callback_id": "new_ticket"}}
    assert simulate(api, "slack/interaction", body).json()["ok"]
    payload = json.loads(app.last().form["payload"])
    assert payload["type"] == "shortcut" and payload["callback_id"] == "new_ticket"


def test_a_slash_command(api: httpx.Client, app: App) -> None:
    app.content_type, app.body = "application/json", b'{"response_type": "ephemeral", "text": "Deploying"}'
    body = {"url": f"{app.url}/slack/commands", "signing_secret": SECRET, "command": "/deploy", "text": "api prod"}
    result = simulate(api, "slack/slash-command", body).json()
    assert result["ok"] and json.loads(result["response"]["body"])["text"] == "Deploying"
    seen = app.last()
    assert _verified(seen)
    form = seen.form
    assert form["command"] == "/deploy" and form["text"] == "api prod" and form["user_id"] == "U000"
    for name in ("token", "team_id", "team_domain", "channel_id", "channel_name", "user_name", "api_app_id"):
        assert form[name], name
    assert form["response_url"].startswith(api.base_url.scheme + "://") and form["trigger_id"]


def test_an_events_api_event_and_the_url_verification(api: httpx.Client, app: App) -> None:
    body = {"url": f"{app.url}/slack/events", "signing_secret": SECRET, "event_type": "app_mention", "text": "<@U0> hi"}
    assert simulate(api, "slack/event", body).json()["ok"]
    seen = app.last()
    assert _verified(seen) and seen.headers["Content-Type"] == "application/json"
    envelope = json.loads(seen.body)
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["event"]["type"] == "app_mention" and envelope["event"]["text"] == "<@U0> hi"

    app.content_type, app.body = "text/plain", b"the-challenge"
    body = {"url": app.url, "signing_secret": SECRET, "type": "url_verification", "challenge": "the-challenge"}
    result = simulate(api, "slack/event", body).json()
    assert json.loads(app.last().body) == {
        "token": "mockhub-verification-token",
        "challenge": "the-challenge",
        "type": "url_verification",
    }
    assert result["response"]["body"] == "the-challenge"

    # An old timestamp: the verifier refuses it as a replay, as it would Slack's.
    body = {"url": app.url, "signing_secret": SECRET, "timestamp": int(time.time()) - 600, "event": {"type": "x"}}
    assert simulate(api, "slack/event", body).json()["ok"]
    assert not _verified(app.last())
    assert json.loads(app.last().body)["event"] == {"type": "x"}


# -- inbound email -----------------------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
EMAIL = {
    "from": "Ann Example <ann@example.com>",
    "to": "support@app.example",
    "cc": ["boss@example.com"],
    "subject": "Re: ticket #42",
    "text": "It works now, thanks.",
    "html": "<p>It works <b>now</b>, thanks.</p>",
    "attachments": [{"filename": "screen.png", "content_base64": PNG, "content_type": "image/png"}],
    "headers": {"In-Reply-To": "<t42@app.example>"},
}


def test_sendgrid_inbound_parse_posts_the_parsed_fields(api: httpx.Client, app: App, ns: str) -> None:
    result = simulate(api, "sendgrid/inbound-parse", {"url": f"{app.url}/parse", **EMAIL}, ns).json()
    assert result["ok"], result
    seen = app.last()
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    form = seen.form
    assert form["from"] == EMAIL["from"] and form["to"] == "support@app.example" and form["cc"] == "boss@example.com"
    assert form["subject"] == "Re: ticket #42" and form["text"] == EMAIL["text"] and form["html"] == EMAIL["html"]
    assert json.loads(form["envelope"]) == {"to": ["support@app.example"], "from": "ann@example.com"}
    assert form["attachments"] == "1" and form["SPF"] == "pass" and form["spam_score"] and "dkim" in form
    assert json.loads(form["attachment-info"])["attachment1"]["filename"] == "screen.png"
    assert json.loads(form["charsets"])["subject"] == "UTF-8"
    headers = email.message_from_string(form["headers"] + "\r\n", policy=email.policy.default)
    assert headers["In-Reply-To"] == "<t42@app.example>" and headers["Subject"] == "Re: ticket #42"
    assert seen.files["attachment1"] == ("screen.png", "image/png", base64.b64decode(PNG))

    # Recorded with the email fakes' keys: the to / subject / contains filters find it.
    found = api.get("/calls", params={"namespace": ns, "to": "support@app.example", "subject": "ticket"}).json()
    assert [c["id"] for c in found["calls"]] == [result["call_id"]]
    assert found["calls"][0]["data"]["attachments"][0]["size"] == len(base64.b64decode(PNG))
    served = api.get(f"/calls/{result['call_id']}/attachments/0")
    assert served.status_code == 200 and served.content == base64.b64decode(PNG)


def test_sendgrid_inbound_parse_raw(api: httpx.Client, app: App) -> None:
    assert simulate(api, "sendgrid/inbound-parse", {"url": app.url, **EMAIL, "raw": True}).json()["ok"]
    form = app.last().form
    assert "text" not in form and "attachments" not in form
    msg = email.message_from_string(form["email"], policy=email.policy.default)
    assert msg["Subject"] == "Re: ticket #42" and msg["Cc"] == "boss@example.com"
    assert msg.get_body(("plain",)).get_content().strip() == EMAIL["text"]  # type: ignore[union-attr]
    assert [p.get_filename() for p in msg.iter_attachments()] == ["screen.png"]


def _mailgun_signed(form: MultiDict[str, str], key: str) -> bool:
    """Mailgun's documented check: hex HMAC-SHA256 of timestamp + token with the webhook signing key."""
    digest = hmac.new(key.encode(), (form["timestamp"] + form["token"]).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, form["signature"])


def test_mailgun_route_forward(api: httpx.Client, app: App, ns: str) -> None:
    plain = {k: v for k, v in EMAIL.items() if k != "attachments"}
    result = simulate(api, "mailgun/route", {"url": f"{app.url}/mg", "signing_key": "key-sign", **plain}, ns).json()
    assert result["ok"], result
    seen = app.last()
    # Without attachments Mailgun posts form-encoded; signed with the signing key.
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = seen.form
    assert _mailgun_signed(form, "key-sign") and not _mailgun_signed(form, "other-key")
    assert len(form["token"]) == 50 and abs(int(form["timestamp"]) - time.time()) < 60
    assert form["recipient"] == "support@app.example" and form["sender"] == "ann@example.com"
    assert form["from"] == EMAIL["from"] and form["subject"] == "Re: ticket #42"
    assert form["body-plain"] == form["stripped-text"] == EMAIL["text"] and form["body-html"] == EMAIL["html"]
    assert form["attachment-count"] == "0"
    headers = dict(json.loads(form["message-headers"]))
    assert headers["In-Reply-To"] == "<t42@app.example>" and form["In-Reply-To"] == "<t42@app.example>"

    # With attachments: multipart/form-data, attachment-1 a file.
    assert simulate(api, "mailgun/route", {"url": app.url, "signing_key": "key-sign", **EMAIL}).json()["ok"]
    seen = app.last()
    assert seen.headers["Content-Type"].startswith("multipart/form-data")
    assert _mailgun_signed(seen.form, "key-sign") and seen.form["attachment-count"] == "1"
    assert seen.files["attachment-1"] == ("screen.png", "image/png", base64.b64decode(PNG))
    delivery = api.get("/calls", params={"service": "mailgun", "direction": "outbound", "order": "desc", "limit": 1})
    served = api.get(f"/calls/{delivery.json()['calls'][0]['id']}/attachments/0")
    assert served.status_code == 200 and served.content == base64.b64decode(PNG)

    # The raw MIME form of a route URL ending in "mime".
    assert simulate(api, "mailgun/route", {"url": f"{app.url}/mime", "signing_key": "k", **EMAIL, "mime": True}).json()[
        "ok"
    ]
    msg = email.message_from_string(app.last().form["body-mime"], policy=email.policy.default)
    assert msg["From"] == EMAIL["from"] and _mailgun_signed(app.last().form, "k")


# -- Telegram ----------------------------------------------------------------------------------------


def test_a_telegram_update_with_the_secret_token(api: httpx.Client, app: App, ns: str) -> None:
    from telegram import Bot, Update

    body = {"url": f"{app.url}/tg", "secret_token": "s3cr3t_token", "text": "/start ref-7", "chat_id": 4242}
    result = simulate(api, "telegram/update", body, ns).json()
    assert result["ok"], result
    seen = app.last()
    assert seen.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t_token"
    assert seen.headers["Content-Type"] == "application/json"
    # python-telegram-bot reads it as the Update a webhook handler gets.
    update = Update.de_json(json.loads(seen.body), Bot("123:abc"))
    assert update is not None and update.message is not None
    assert update.message.text == "/start ref-7" and update.message.chat.id == 4242
    assert update.effective_user is not None and update.effective_user.id == 123456789
    assert update.message.entities[0].type == "bot_command"
    assert api.get("/calls", params={"namespace": ns, "to": "4242"}).json()["calls"][0]["id"] == result["call_id"]

    # A button press, and no secret header when none is set.
    body = {"url": app.url, "type": "callback_query", "callback_data": "vote:yes"}
    assert simulate(api, "telegram/update", body).json()["ok"]
    assert "X-Telegram-Bot-Api-Secret-Token" not in app.last().headers
    pressed = Update.de_json(json.loads(app.last().body), Bot("123:abc"))
    assert pressed is not None and pressed.callback_query is not None and pressed.callback_query.data == "vote:yes"
    assert pressed.update_id > update.update_id


def test_a_method_answered_on_the_webhook_is_recorded(api: httpx.Client, app: App, ns: str) -> None:
    app.content_type = "application/json"
    app.body = b'{"method": "sendMessage", "chat_id": 4242, "text": "Welcome aboard!"}'
    result = simulate(api, "telegram/update", {"url": app.url, "chat_id": 4242}, ns).json()
    assert len(result["caused"]) == 1
    sent = api.get(f"/calls/{result['caused'][0]}").json()
    assert sent["service"] == "telegram" and sent["data"]["method"] == "sendMessage"
    found = api.get("/calls", params={"namespace": ns, "to": "4242", "contains": "Welcome"}).json()["calls"]
    assert [c["id"] for c in found] == [sent["id"]]


def test_the_names_other_clients_use(api: httpx.Client, app: App) -> None:
    """`secret` for the signing secret, Slack's `user` / `channel`, an event's `type`, a bare `message`."""
    body = {"url": app.url, "secret": SECRET, "type": "app_mention", "user": "U9", "channel": "C9", "text": "hey"}
    assert simulate(api, "slack/event", body).json()["ok"]
    assert _verified(app.last())
    inner = json.loads(app.last().body)["event"]
    assert (inner["type"], inner["user"], inner["channel"], inner["text"]) == ("app_mention", "U9", "C9", "hey")

    assert simulate(
        api, "twilio/inbound-sms", {"url": app.url, "secret": TOKEN, "from": USER, "to": APP_NUMBER}
    ).json()["ok"]
    seen = app.last()
    assert RequestValidator(TOKEN).validate(seen.url, seen.form, seen.headers["X-Twilio-Signature"])

    file = {"filename": "a.txt", "content": "hello", "type": "text/plain"}
    body = {"url": app.url, "secret": "k", "from": "a@b.example", "to": "c@d.example", "attachments": [file]}
    assert simulate(api, "mailgun/route", body).json()["ok"]
    assert _mailgun_signed(app.last().form, "k") and app.last().files["attachment-1"] == (
        "a.txt",
        "text/plain",
        b"hello",
    )

    message = {"message_id": 7, "date": 1700000000, "chat": {"id": 5, "type": "private"}, "text": "hi"}
    assert simulate(api, "telegram/update", {"url": app.url, "message": message}).json()["ok"]
    update = json.loads(app.last().body)
    assert update["message"] == message and isinstance(update["update_id"], int)


def test_an_update_goes_to_the_webhook_the_bot_set(server: ThreadedHub, api: httpx.Client, app: App, ns: str) -> None:
    """python-telegram-bot sets its webhook (with a secret) on the fake; the update needs no url then."""
    from telegram import Bot

    token = "4242:bot-of-this-test"

    async def set_it(bot: Bot) -> str:
        assert await bot.set_webhook(f"{app.url}/tg-hook", secret_token="from_set_webhook")
        return (await bot.get_webhook_info()).url

    async def main() -> str:
        async with Bot(token, base_url=f"{server.url}/ns/{ns}/bot") as bot:
            return await set_it(bot)

    assert asyncio.run(main()) == f"{app.url}/tg-hook"
    result = simulate(api, "telegram/update", {"text": "hello bot"}, ns).json()
    assert result["ok"] and result["url"] == f"{app.url}/tg-hook", result
    assert app.last().headers["X-Telegram-Bot-Api-Secret-Token"] == "from_set_webhook"
    assert json.loads(app.last().body)["message"]["text"] == "hello bot"

    # Another namespace has no webhook: the url is then required.
    r = simulate(api, "telegram/update", {"text": "x"}, ns + "-other")
    assert r.status_code == 422 and "setWebhook" in r.json()["error"]["message"]

    async def delete() -> None:
        async with Bot(token, base_url=f"{server.url}/ns/{ns}/bot") as bot:
            assert await bot.delete_webhook()
            assert (await bot.get_webhook_info()).url == ""

    asyncio.run(delete())
    assert simulate(api, "telegram/update", {"text": "x"}, ns).status_code == 422


# -- errors, safety, the catalogue -------------------------------------------------------------------


def test_unknown_services_and_events_name_what_exists(api: httpx.Client) -> None:
    r = api.post("/simulate/twilio/inbound-call", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_event"
    assert "inbound-sms" in r.json()["error"]["message"]
    r = api.post("/simulate/slak/event", json={})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_service"
    message = r.json()["error"]["message"]
    assert "did you mean 'slack'" in message and "twilio: inbound-sms" in message
    assert "telegram: update" in message and "sendgrid: inbound-parse" in message and "mailgun: route" in message
    r = api.post("/simulate/pagerduty/x", json={})  # a fake without simulations
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("twilio/sms", {"from": USER, "to": APP_NUMBER}),
        ("twilio/Inbound_SMS", {"from": USER, "to": APP_NUMBER}),
        ("slack/block_actions", {"signing_secret": SECRET}),
        ("sendgrid/inbound", {"from": "a@b.example", "to": "c@d.example"}),
        ("mailgun/inbound-email", {"signing_key": "k", "from": "a@b.example", "to": "c@d.example"}),
        ("telegram/message", {}),
    ],
)
def test_events_answer_to_their_aliases(api: httpx.Client, app: App, path: str, body: dict[str, Any]) -> None:
    result = simulate(api, path, {"url": app.url, **body}).json()
    assert result["ok"], result
    listed = {s["event"]: s["aliases"] for s in api.get("/simulate").json()["simulations"]}
    assert path.split("/")[1].lower().replace("_", "-") in [result["event"], *listed[result["event"]]]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"from": USER, "to": APP_NUMBER}, "url: Field required"),
        ({"url": "ftp://x/", "from": USER, "to": APP_NUMBER}, "url: must be an absolute http"),
        ({"url": "http://127.0.0.1:9/", "to": APP_NUMBER}, "from: Field required"),
        ({"url": "http://127.0.0.1:9/", "from": USER, "to": APP_NUMBER, "bdy": "typo"}, "bdy: Extra inputs"),
        ({"url": "http://127.0.0.1:9/", "from": USER, "to": APP_NUMBER, "timeout": 0}, "timeout:"),
        ({"url": "http://127.0.0.1:9/", "from": USER, "to": 5}, "to: Input should be a valid string"),
    ],
)
def test_a_bad_body_is_a_422_naming_the_field(api: httpx.Client, body: dict[str, Any], where: str) -> None:
    r = simulate(api, "twilio/inbound-sms", body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert where in r.json()["error"]["message"]
    assert api.get("/calls/count").json()["count"] == 0  # nothing was sent


def test_bodies_that_are_not_json_objects(api: httpx.Client) -> None:
    r = api.post("/simulate/slack/event", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = api.post("/simulate/slack/event", json=[1, 2])
    assert r.status_code == 422 and "JSON object" in r.json()["error"]["message"]
    r = simulate(api, "slack/event", {"url": "http://127.0.0.1:9/"})
    assert r.status_code == 422 and "signing_secret: Field required" in r.json()["error"]["message"]
    r = simulate(api, "sendgrid/inbound-parse", {"url": "http://x.test/", "from": "a@b.c", "to": [], "subject": "s"})
    assert r.status_code == 422 and "to:" in r.json()["error"]["message"]
    bad_file = {"url": "http://x.test/", "from": "a@b.c", "to": "d@e.f", "attachments": [{"filename": "a"}]}
    r = simulate(api, "mailgun/route", {**bad_file, "signing_key": "k"})
    assert r.status_code == 422 and "exactly one of content and content_base64" in r.json()["error"]["message"]
    injected = {"url": "http://x.test/", "from": "a@b.c", "to": "d@e.f", "headers": {"X-A": "1\r\nBcc: evil@x.test"}}
    r = simulate(api, "sendgrid/inbound-parse", injected)
    assert r.status_code == 422, r.text
    r = simulate(api, "telegram/update", {"url": "http://x.test/", "secret_token": "has space"})
    assert r.status_code == 422 and "secret_token" in r.json()["error"]["message"]


def test_an_unreachable_target_is_a_clear_answer(api: httpx.Client) -> None:
    url = f"http://127.0.0.1:{free_port()}/sms"
    result = simulate(api, "twilio/inbound-sms", {"url": url, "from": USER, "to": APP_NUMBER}).json()
    assert not result["delivered"] and not result["ok"] and result["status"] is None
    assert "ConnectError" in result["error"]
    call = api.get(f"/calls/{result['call_id']}").json()
    assert call["response"] is None and "ConnectError" in call["data"]["error"]


def test_a_slow_target_times_out_and_blocks_no_fake(api: httpx.Client, app: App, server: ThreadedHub) -> None:
    app.delay = 3.0
    done: dict[str, Any] = {}

    def slow() -> None:
        body = {"url": app.url, "signing_secret": SECRET, "timeout": 1.0}
        done["result"] = simulate(api, "slack/event", body).json()

    worker = threading.Thread(target=slow)
    started = time.monotonic()
    worker.start()
    time.sleep(0.2)
    # Meanwhile the fakes answer at once.
    r = httpx.post(f"{server.url}/webhooks/meanwhile", json={"x": 1}, timeout=5)
    assert r.status_code == 200 and time.monotonic() - started < 1.0
    worker.join(10)
    result = done["result"]
    assert not result["delivered"] and "timed out" in result["error"] and 0.9 < result["duration_ms"] / 1000 < 2.5


def test_a_caller_that_hangs_up_mid_delivery_loses_nothing(api: httpx.Client, app: App, ns: str) -> None:
    app.delay = 1.0
    body = {"url": app.url, "signing_secret": SECRET}
    with pytest.raises(httpx.ReadTimeout):
        api.post("/simulate/slack/event", json=body, params={"namespace": ns}, timeout=0.3)
    [call] = wait_calls(api, 1, namespace=ns, service="slack", direction="outbound")
    assert call["response"]["status"] == 200 and call["data"]["simulation"] == "event"


class Garbage:
    """A target that answers bytes that are not HTTP, or an endless body."""

    def __init__(self, answer: bytes, endless: bool = False) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.answer, self.endless = answer, endless
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(self.answer)
                    while self.endless:
                        conn.sendall(b"x" * 65536)
                except OSError:
                    pass


def test_garbage_and_endless_answers(api: httpx.Client) -> None:
    garbage = Garbage(b"\x00\x01 this is not HTTP\r\n\r\n")
    result = simulate(api, "slack/event", {"url": f"http://127.0.0.1:{garbage.port}/", "signing_secret": SECRET}).json()
    assert not result["delivered"] and result["error"]
    garbage.sock.close()

    endless = Garbage(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n", endless=True)
    result = simulate(api, "slack/event", {"url": f"http://127.0.0.1:{endless.port}/", "signing_secret": SECRET}).json()
    assert result["ok"] and result["truncated"] and len(result["response"]["body"]) == 64 * 1024
    assert api.get(f"/calls/{result['call_id']}").json()["data"]["answer_truncated"] is True
    endless.sock.close()


def test_targets_are_limited_by_the_allowlist_and_never_the_inspection_api(app: App) -> None:
    with extra_hub(callback_allow="allowed.test,127.0.0.1") as hub, httpx.Client(base_url=hub.url, timeout=30) as api:
        body = {"url": "http://elsewhere.test/hook", "signing_secret": SECRET}
        r = simulate(api, "slack/event", body, "ns-a")
        assert r.status_code == 403 and r.json()["error"]["code"] == "target_refused"
        assert "MOCKHUB_CALLBACK_ALLOW" in r.json()["error"]["message"]
        refused = api.get("/calls", params={"namespace": "ns-a"}).json()["calls"]
        assert len(refused) == 1 and refused[0]["response"] is None and "CALLBACK_ALLOW" in refused[0]["data"]["error"]

        # mockhub's own inspection API is refused even on an allowed host; its fakes are not.
        api.post("/webhooks/keep", json={})
        r = simulate(api, "slack/event", {"url": f"{hub.url}/reset", "signing_secret": SECRET})
        assert r.status_code == 403 and "inspection API" in r.json()["error"]["message"]
        assert api.get("/calls/count", params={"path": "/webhooks/keep"}).json()["count"] == 1
        r = simulate(api, "slack/event", {"url": f"{hub.url}/webhooks/slack-events", "signing_secret": SECRET})
        assert r.json()["ok"]
        assert (
            api.get("/calls/count", params={"service": "webhook", "path": "/webhooks/slack-events"}).json()["count"]
            == 1
        )
        assert simulate(api, "slack/event", {"url": app.url, "signing_secret": SECRET}).json()["ok"]


def test_the_catalogue_lists_the_simulations(api: httpx.Client) -> None:
    listed = api.get("/simulate").json()
    events = {(s["service"], s["event"]) for s in listed["simulations"]}
    assert {
        ("twilio", "inbound-sms"),
        ("slack", "interaction"),
        ("slack", "slash-command"),
        ("slack", "event"),
        ("sendgrid", "inbound-parse"),
        ("mailgun", "route"),
        ("telegram", "update"),
    } <= events
    sms = next(s for s in listed["simulations"] if s["event"] == "inbound-sms")
    assert {"url", "from", "to", "body", "auth_token"} <= set(sms["body"]["properties"])
    only = api.get("/simulate", params={"service": "slack"}).json()
    assert {s["service"] for s in only["simulations"]} == {"slack"} and only["count"] == 3
    assert api.get("/simulate", params={"service": "nope"}).status_code == 404
    assert api.get("/services/twilio").json()["simulations"] == ["inbound-sms"]
    assert "/simulate/{service}/{event}" in api.get("/openapi.json").json()["paths"]


# -- the clients and the CLI -------------------------------------------------------------------------


def test_the_client_simulates_in_its_namespace(server: ThreadedHub, api: httpx.Client, app: App, ns: str) -> None:
    app.content_type, app.body = "text/xml", b"<Response><Message>pong</Message></Response>"
    with MockHub(server.url, namespace=ns) as hub:
        result = hub.simulate("twilio", "inbound-sms", url=app.url, from_=USER, to=APP_NUMBER, body="ping")
        assert result.ok and result.namespace == ns and result.response is not None
        assert b"pong" in result.response.content
        [reply] = hub.wait_for("twilio", to=USER, contains="pong")
        assert reply.id == result.caused[0] and reply.namespace == ns
        assert hub.call(result.call_id).data["body"] == "ping"
        assert any(s["event"] == "route" for s in hub.simulations("mailgun"))
        with pytest.raises(MockHubError) as info:
            hub.simulate("twilio", "nope", url=app.url)
        assert info.value.status == 404 and info.value.code == "unknown_event"
        with pytest.raises(MockHubError) as info:
            hub.simulate("twilio", "inbound-sms", {"url": app.url})
        assert info.value.status == 422


def test_the_async_client_simulates(server: ThreadedHub, api: httpx.Client, app: App, ns: str) -> None:
    async def main() -> None:
        async with AsyncMockHub(server.url, namespace=ns) as hub:
            result = await hub.simulate(
                "slack", "interaction", {"url": app.url, "signing_secret": SECRET, "value": "v"}
            )
            assert result.ok and result.data["value"] == "v"
            assert len(await hub.simulations("slack")) == 3

    asyncio.run(main())
    assert _verified(app.last())


def test_the_cli_simulates(base_url: str, app: App) -> None:
    from test_cli import cli

    code, out, err = cli(
        "simulate", "slack", "slash-command", "--to-url", app.url, "--json", json.dumps({"signing_secret": SECRET}),
        "-F", "text=hello world", "--url", base_url, "-n", "cli-ns",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "ok" and "answered 200" in err
    assert app.last().form["text"] == "hello world" and _verified(app.last())

    code, out, err = cli("simulate", "twilio", "inbound-sms", "-F", f"url={app.url}", "-F", "from=+15550001111",
                         "-F", "to=+15550002222", "--print-json", "--url", base_url)  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["data"]["from"] == "+15550001111"

    app.status = 503
    code, _, _ = cli(
        "simulate", "slack", "event", "-F", f"url={app.url}", "-F", f"signing_secret={SECRET}", "--url", base_url
    )
    assert code == 1
    code, _, err = cli("simulate", "slack", "nope", "--url", base_url)
    assert code == 1 and "unknown_event" in err
    code, _, err = cli("simulate", "slack", "event", "--json", "[1]", "--url", base_url)
    assert code == 2 and "JSON object" in err


ACME = """
from typing import Any

from mockhub.journal import Call, ResponseRecord
from mockhub.services.base import Service, Simulated, Simulation, SimulationBody, SimulationContext


class Ping(SimulationBody):
    word: str = "ping"


class AcmeService(Service):
    \"\"\"Acme: sends pings to applications.\"\"\"

    name = "acme"

    def simulations(self) -> dict[str, Simulation]:
        return {"ping": Simulation("a ping", Ping, self.build, self.answered, aliases=("hello",))}

    def build(self, body: Ping, where: SimulationContext) -> Simulated:
        headers = {"content-type": "text/plain", "x-acme": where.namespace}
        return Simulated(headers, body.word.encode(), {"word": body.word})

    def answered(self, body: Ping, where: SimulationContext, delivery: Call, answer: ResponseRecord) -> list[Call]:
        delivery.data["echo"] = answer.body.decode()
        return [Call(service=self.name, method="PONG", path="/pong", namespace=where.namespace, data={"text": "pong"})]
"""


def test_a_fake_of_ones_own_declares_its_simulations(tmp_path: Path, app: App) -> None:
    """The route is generic: a fake outside mockhub declares an event and /simulate serves it."""
    app.body = b"heard you"
    with own_fake_hub(tmp_path, "acme_sim", ACME, "AcmeService") as hub, httpx.Client(base_url=hub.url) as api:
        result = simulate(api, "acme/hello", {"url": app.url, "word": "hi"}, "acme-ns").json()
        assert result["ok"] and result["event"] == "ping", result
        assert app.last().body == b"hi" and app.last().headers["X-Acme"] == "acme-ns"
        delivery = api.get(f"/calls/{result['call_id']}").json()
        assert delivery["data"] == {"word": "hi", "simulation": "ping", "url": app.url + "/", "echo": "heard you",
                                    "caused": result["caused"]}  # fmt: skip
        pong = api.get(f"/calls/{result['caused'][0]}").json()
        assert (
            pong["method"] == "PONG" and pong["namespace"] == "acme-ns" and pong["data"]["caused_by"] == delivery["id"]
        )
        assert api.get("/services/acme").json()["simulations"] == ["ping"]
