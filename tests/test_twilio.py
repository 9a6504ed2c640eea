"""The Twilio fake, driven with the official `twilio` package over loopback.

Each test uses its own namespace (`/ns/{ns}` in the client's base URL), so the message store and
the calls of one test never show up in another's lists.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import support
from support import calls, extra_hub, free_port, wait_calls
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from mockhub.server import ThreadedHub
from mockhub.settings import Settings

fault = partial(support.add_fault, service="twilio")

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "test-auth-token"
API_KEY = "SK" + "2" * 32
TO, FROM = "+15551234567", "+15550000000"
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
PAGE_META = {"end", "first_page_uri", "next_page_uri", "page", "page_size", "previous_page_uri", "start", "uri"}


def client_for(url: str, username: str = ACCOUNT, password: str = TOKEN, account_sid: str | None = None) -> Client:
    client = Client(username, password, account_sid=account_sid, environment={})
    client.api.base_url = url  # the only change that points the SDK at mockhub
    return client


@pytest.fixture
def ns(api: httpx.Client) -> str:
    return "tw-" + uuid.uuid4().hex[:8]


@pytest.fixture
def twilio(base_url: str, ns: str) -> Client:
    return client_for(f"{base_url}/ns/{ns}")


def stub(api: httpx.Client, ns: str, **reply: Any) -> None:
    r = api.post("/stubs", json={"service": "twilio", "match": {"namespace": ns}, "reply": reply})
    assert r.status_code == 201, r.text


# -- create -------------------------------------------------------------------------------------


def test_create_returns_the_full_message_resource(twilio: Client, api: httpx.Client, ns: str) -> None:
    message = twilio.messages.create(to=TO, from_=FROM, body="CPU high")
    assert message.sid is not None and message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (TO, FROM, "CPU high")
    assert message.account_sid == ACCOUNT
    assert message.num_segments == "1" and message.num_media == "0"
    assert message.direction == "outbound-api" and message.api_version == "2010-04-01"
    assert message.date_created is not None and message.date_created.tzinfo is not None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{message.sid}.json"
    assert message.subresource_uris is not None and "media" in message.subresource_uris
    assert message.error_code is None

    [call] = calls(api, service="twilio", namespace=ns)
    assert call["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert call["response"]["status"] == 201
    data = call["data"]
    assert (data["to"], data["from"], data["body"], data["message_sid"]) == (TO, FROM, "CPU high", message.sid)
    assert data["media_url"] == [] and data["status_callback"] is None
    raw = httpx.Response(200, content=call["response"]["body"].encode()).json()
    assert RFC2822.match(raw["date_created"]) and RFC2822.match(raw["date_updated"])
    assert isinstance(raw["num_segments"], str) and isinstance(raw["num_media"], str)
    assert calls(api, service="twilio", to=TO)[0]["id"] == call["id"]


def test_create_with_media_and_long_unicode_body(twilio: Client, api: httpx.Client, ns: str) -> None:
    media = ["https://example.com/a.png", "https://example.com/b.png"]
    message = twilio.messages.create(to=TO, from_=FROM, body="é" * 10 + "ü" * 150 + "😀", media_url=media)
    assert message.num_media == "2"
    assert message.num_segments == "3"  # GSM-7 has é and ü but no emoji: UCS-2, 162 units -> 3 parts
    [call] = calls(api, service="twilio", namespace=ns)
    assert call["data"]["media_url"] == media


def test_segment_counts(twilio: Client) -> None:
    assert twilio.messages.create(to=TO, from_=FROM, body="a" * 160).num_segments == "1"
    assert twilio.messages.create(to=TO, from_=FROM, body="a" * 161).num_segments == "2"
    assert twilio.messages.create(to=TO, from_=FROM, body="😀" * 35).num_segments == "1"
    assert twilio.messages.create(to=TO, from_=FROM, body="😀" * 36).num_segments == "2"


def test_messaging_service_sid_is_accepted(twilio: Client) -> None:
    message = twilio.messages.create(to=TO, messaging_service_sid="MG" + "a" * 32, body="hi")
    assert message.status == "accepted"
    assert message.from_ is None and message.messaging_service_sid == "MG" + "a" * 32


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"to": "555-1234", "from_": FROM, "body": "x"}, 21211),
        ({"to": "+0123", "from_": FROM, "body": "x"}, 21211),
        ({"to": TO, "from_": "not a number!", "body": "x"}, 21212),
        ({"to": TO, "from_": FROM}, 21602),
        ({"to": TO, "from_": FROM, "body": ""}, 21602),
        ({"to": TO, "body": "x"}, 21603),
        ({"to": TO, "from_": FROM, "body": "x" * 1601}, 21617),
    ],
)
def test_validation_errors(twilio: Client, api: httpx.Client, ns: str, kwargs: dict[str, Any], code: int) -> None:
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(**kwargs)
    assert info.value.status == 400
    assert info.value.code == code
    [call] = calls(api, service="twilio", namespace=ns)
    assert call["response"]["status"] == 400
    body = httpx.Response(400, content=call["response"]["body"].encode()).json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert call["data"]["error_code"] == code


def test_sender_ids_and_channels_are_valid(twilio: Client) -> None:
    assert twilio.messages.create(to=TO, from_="ALERTS", body="x").from_ == "ALERTS"
    assert twilio.messages.create(to=TO, from_="12345", body="x").from_ == "12345"
    wa = twilio.messages.create(to="whatsapp:" + TO, from_="whatsapp:" + FROM, body="x")
    assert wa.to == "whatsapp:" + TO


def test_missing_auth_is_401_20003(base_url: str, api: httpx.Client) -> None:
    r = httpx.post(
        f"{base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json", data={"To": TO, "From": FROM, "Body": "x"}
    )
    assert r.status_code == 401
    assert r.json()["code"] == 20003 and r.json()["status"] == 401
    assert r.headers["www-authenticate"].startswith("Basic")
    [call] = calls(api, service="twilio")
    assert call["data"]["to"] == TO and call["data"]["message_sid"] is None


def test_api_key_auth(base_url: str, ns: str) -> None:
    client = client_for(f"{base_url}/ns/{ns}", "SK" + "1" * 32, "key-secret", account_sid=ACCOUNT)
    message = client.messages.create(to=TO, from_=FROM, body="via API key")
    assert message.account_sid == ACCOUNT
    assert client.messages(message.sid).fetch().body == "via API key"


# -- fetch and list -----------------------------------------------------------------------------


def test_fetch(twilio: Client) -> None:
    created = twilio.messages.create(to=TO, from_=FROM, body="fetch me")
    fetched = twilio.messages(created.sid).fetch()
    assert (fetched.sid, fetched.body, fetched.to) == (created.sid, "fetch me", TO)


def test_fetch_unknown_is_404_20404(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        twilio.messages("SM" + "f" * 32).fetch()
    assert (info.value.status, info.value.code) == (404, 20404)


def test_messages_are_scoped_by_namespace_and_account(base_url: str, twilio: Client) -> None:
    created = twilio.messages.create(to=TO, from_=FROM, body="mine")
    other_ns = client_for(f"{base_url}/ns/elsewhere-{uuid.uuid4().hex[:6]}")
    with pytest.raises(TwilioRestException):
        other_ns.messages(created.sid).fetch()
    assert other_ns.messages.list() == []


def test_list_filters_newest_first(twilio: Client) -> None:
    a = twilio.messages.create(to="+15551110001", from_=FROM, body="a")
    b = twilio.messages.create(to="+15551110002", from_=FROM, body="b")
    c = twilio.messages.create(to="+15551110001", from_="+15550000009", body="c")
    assert [m.sid for m in twilio.messages.list()] == [c.sid, b.sid, a.sid]
    assert [m.sid for m in twilio.messages.list(to="+15551110001")] == [c.sid, a.sid]
    assert [m.sid for m in twilio.messages.list(from_=FROM)] == [b.sid, a.sid]
    assert [m.sid for m in twilio.messages.list(to="+15551110001", from_=FROM)] == [a.sid]
    assert twilio.messages.list(to="+15559999999") == []


def test_list_pages(twilio: Client, base_url: str, ns: str) -> None:
    sids = [twilio.messages.create(to=TO, from_=FROM, body=f"m{i}").sid for i in range(5)]
    listed = twilio.messages.list(page_size=2)
    assert [m.sid for m in listed] == sids[::-1]
    assert [m.sid for m in twilio.messages.list(limit=3, page_size=2)] == sids[::-1][:3]

    page = httpx.get(
        f"{base_url}/ns/{ns}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        params={"PageSize": 2, "To": TO},
        auth=(ACCOUNT, TOKEN),
    ).json()
    assert set(page) == PAGE_META | {"messages"}  # exactly one resource key
    assert len(page["messages"]) == 2
    assert page["next_page_uri"].startswith(f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?")
    assert "To=%2B15551234567" in page["next_page_uri"]
    last = httpx.get(f"{base_url}/ns/{ns}" + page["next_page_uri"], auth=(ACCOUNT, TOKEN)).json()
    last = httpx.get(f"{base_url}/ns/{ns}" + last["next_page_uri"], auth=(ACCOUNT, TOKEN)).json()
    assert [m["sid"] for m in last["messages"]] == [sids[0]]
    assert last["next_page_uri"] is None and last["page"] == 2 and last["start"] == 4


def test_sdk_page_object(twilio: Client) -> None:
    for i in range(3):
        twilio.messages.create(to=TO, from_=FROM, body=f"p{i}")
    first = twilio.messages.page(page_size=2)
    assert len(list(first)) == 2
    second = first.next_page()
    assert second is not None and len(list(second)) == 1
    assert second.next_page() is None


# -- status callbacks ---------------------------------------------------------------------------


def test_status_callbacks_are_signed_and_recorded(twilio: Client, api: httpx.Client, base_url: str, ns: str) -> None:
    callback = f"{base_url}/ns/{ns}/webhooks/sms-status?source=test"
    message = twilio.messages.create(to=TO, from_=FROM, body="watch me", status_callback=callback)
    assert message.status == "queued"

    received = wait_calls(api, 2, service="webhook", namespace=ns)
    assert [c["data"]["MessageStatus"] for c in received] == ["sent", "delivered"]
    validator = RequestValidator(TOKEN)
    for hit in received:
        params = hit["data"]
        assert hit["headers"]["content-type"] == "application/x-www-form-urlencoded"
        assert validator.validate(callback, params, hit["headers"]["x-twilio-signature"])
        assert not validator.validate(callback + "x", params, hit["headers"]["x-twilio-signature"])
        assert params["MessageSid"] == params["SmsSid"] == message.sid
        assert params["SmsStatus"] == params["MessageStatus"]
        assert (params["AccountSid"], params["ApiVersion"], params["To"], params["From"]) == (
            ACCOUNT,
            "2010-04-01",
            TO,
            FROM,
        )
        assert "ErrorCode" not in params

    outbound = wait_calls(api, 2, service="twilio", direction="outbound", namespace=ns)
    assert [c["path"] for c in outbound] == [callback, callback]
    assert [c["data"]["status"] for c in outbound] == ["sent", "delivered"]
    assert all(c["response"]["status"] == 200 and c["method"] == "POST" for c in outbound)

    fetched = twilio.messages(message.sid).fetch()
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None
    create_call = calls(api, service="twilio", direction="inbound", namespace=ns)[0]
    assert create_call["data"]["status_callback"] == callback


def test_no_callbacks_without_status_callback(twilio: Client, api: httpx.Client, ns: str) -> None:
    twilio.messages.create(to=TO, from_=FROM, body="quiet")
    # The message still moves on: by the time it reads delivered, any callback would have been sent.
    sid = calls(api, service="twilio", namespace=ns)[0]["data"]["message_sid"]
    deadline = time.monotonic() + 10
    while twilio.messages(sid).fetch().status != "delivered":
        assert time.monotonic() < deadline, "message never reached delivered"
        time.sleep(0.02)
    assert calls(api, service="twilio", direction="outbound", namespace=ns) == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ({"status": "undelivered", "error_code": 30005}, [("sent", None), ("undelivered", "30005")]),
        ({"status": "failed", "error_code": 30006}, [("failed", "30006")]),
        ({"status": "undelivered"}, [("sent", None), ("undelivered", "30003")]),
    ],
)
def test_stubbed_delivery_failures(
    twilio: Client,
    api: httpx.Client,
    base_url: str,
    ns: str,
    reply: dict[str, Any],
    expected: list[tuple[str, str | None]],
) -> None:
    stub(api, ns, **reply)
    callback = f"{base_url}/ns/{ns}/webhooks/status"
    message = twilio.messages.create(to=TO, from_=FROM, body="doomed", status_callback=callback)
    received = wait_calls(api, len(expected), service="webhook", namespace=ns)
    assert [(c["data"]["MessageStatus"], c["data"].get("ErrorCode")) for c in received] == expected
    for hit in received:
        assert RequestValidator(TOKEN).validate(callback, hit["data"], hit["headers"]["x-twilio-signature"])
    wait_calls(api, len(expected), service="twilio", direction="outbound", namespace=ns)
    fetched = twilio.messages(message.sid).fetch()
    assert fetched.status == expected[-1][0]
    assert fetched.error_code == int(expected[-1][1] or 0)
    assert fetched.error_message


def test_unreachable_callback_target_is_recorded(twilio: Client, api: httpx.Client, ns: str) -> None:
    callback = f"http://127.0.0.1:{free_port()}/status"
    twilio.messages.create(to=TO, from_=FROM, body="nobody listens", status_callback=callback)
    outbound = wait_calls(api, 2, service="twilio", direction="outbound", namespace=ns)
    assert all(c["response"] is None and "Connect" in c["data"]["error"] for c in outbound)
    assert [c["path"] for c in outbound] == [callback, callback]
    assert twilio.messages.create(to=TO, from_=FROM, body="still serving").status == "queued"


def test_callback_target_status_is_recorded(twilio: Client, api: httpx.Client, base_url: str, ns: str) -> None:
    r = api.post(
        "/faults", json={"service": "webhook", "match": {"namespace": ns}, "action": "error", "status": 500, "times": 1}
    )
    assert r.status_code == 201
    callback = f"{base_url}/ns/{ns}/webhooks/flaky"
    twilio.messages.create(to=TO, from_=FROM, body="x", status_callback=callback)
    outbound = wait_calls(api, 2, service="twilio", direction="outbound", namespace=ns)
    assert [c["response"]["status"] for c in outbound] == [500, 200]


def test_invalid_status_callback_url(twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=TO, from_=FROM, body="x", status_callback="not-a-url")
    assert info.value.code == 21609


# -- fault presets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "status", "code"),
    [
        ("rate_limited", 429, 20429),
        ("server_error", 500, 20500),
        ("unavailable", 503, 20503),
        ("unauthorized", 401, 20003),
    ],
)
def test_presets(twilio: Client, api: httpx.Client, ns: str, preset: str, status: int, code: int) -> None:
    fault(api, match={"namespace": ns}, preset=preset)
    with pytest.raises(TwilioRestException) as info:
        twilio.messages.create(to=TO, from_=FROM, body="x")
    assert (info.value.status, info.value.code) == (status, code)
    assert twilio.messages.create(to=TO, from_=FROM, body="x").status == "queued"  # times=1
    first = calls(api, service="twilio", namespace=ns)[0]
    assert first["fault"]["preset"] == preset


def test_rate_limited_on_list(twilio: Client, api: httpx.Client, ns: str) -> None:
    fault(api, match={"namespace": ns, "method": "GET"}, preset="rate_limited")
    # The SDK wraps list errors in a plain TwilioException carrying the response.
    with pytest.raises(TwilioException) as info:
        twilio.messages.list()
    response = info.value.args[1]
    assert response.status_code == 429
    assert json.loads(response.text)["code"] == 20429


# -- pinned credentials and settings ------------------------------------------------------------


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(
        credentials=f"{ACCOUNT}:{TOKEN}, {API_KEY}:key-secret",
        twilio_final_status="undelivered",
        twilio_error_code=30007,
        twilio_callback_delay_ms=1,
    ) as hub:
        yield hub


def test_pinned_credentials(pinned: ThreadedHub) -> None:
    assert client_for(pinned.url).messages.create(to=TO, from_=FROM, body="x").status == "queued"
    with pytest.raises(TwilioRestException) as info:
        client_for(pinned.url, password="wrong").messages.create(to=TO, from_=FROM, body="x")
    assert (info.value.status, info.value.code) == (401, 20003)


def test_settings_final_status_and_api_key_signing(pinned: ThreadedHub) -> None:
    # With API key auth the account's token comes from the pinned "AC...:token" entry.
    client = client_for(pinned.url, API_KEY, "key-secret", account_sid=ACCOUNT)
    hook = f"{pinned.url}/webhooks/pinned"
    sid = client.messages.create(to=TO, from_=FROM, body="x", status_callback=hook).sid
    with httpx.Client(base_url=pinned.url) as hub:
        received = wait_calls(hub, 2, service="webhook")
    assert [(c["data"]["MessageStatus"], c["data"].get("ErrorCode")) for c in received] == [
        ("sent", None),
        ("undelivered", "30007"),
    ]
    assert all(RequestValidator(TOKEN).validate(hook, c["data"], c["headers"]["x-twilio-signature"]) for c in received)
    assert client.messages(sid).fetch().error_code == 30007


def test_callbacks_only_reach_allowed_hosts() -> None:
    settings = Settings(host="127.0.0.1", http_port=0, smtp_port=0, callback_allow="127.0.0.1, *.example.test")
    with ThreadedHub(settings) as hub, httpx.Client(base_url=hub.url) as api:
        twilio = client_for(hub.url)
        twilio.messages.create(to=TO, from_=FROM, body="ok", status_callback=f"{hub.url}/webhooks/allowed")
        twilio.messages.create(to=TO, from_=FROM, body="no", status_callback="http://localhost:9/blocked")
        outbound = wait_calls(api, 4, service="twilio", direction="outbound")
        allowed = [c for c in outbound if c["path"].endswith("/allowed")]
        blocked = [c for c in outbound if c["path"].endswith("/blocked")]
        assert [c["response"]["status"] for c in allowed] == [200, 200]
        assert all(c["response"] is None and "MOCKHUB_CALLBACK_ALLOW" in c["data"]["error"] for c in blocked)
        assert len(blocked) == 2
        # The allowed callbacks did arrive at the target (mockhub's own webhook fake).
        assert api.get("/calls/count", params={"path": "/webhooks/allowed"}).json()["count"] == 2


def test_reset_forgets_stored_messages_of_its_namespace_only(api: httpx.Client, base_url: str) -> None:
    a, b = client_for(f"{base_url}/ns/reset-a"), client_for(f"{base_url}/ns/reset-b")
    kept = b.messages.create(to=TO, from_=FROM, body="b stays").sid
    gone = a.messages.create(to=TO, from_=FROM, body="a goes").sid
    assert api.post("/reset", params={"namespace": "reset-a"}).status_code == 200
    with pytest.raises(TwilioRestException) as info:
        a.messages(gone).fetch()
    assert info.value.code == 20404
    assert a.messages.list() == []
    assert b.messages(kept).fetch().body == "b stays"
    api.post("/reset")
    assert b.messages.list() == []
