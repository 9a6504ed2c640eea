"""The Resend fake, driven with the official `resend` Python SDK, the official Node SDK, and httpx for raw bodies."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import resend
import support
from resend.exceptions import (
    ApplicationError,
    InvalidApiKeyError,
    MissingApiKeyError,
    MissingRequiredFieldsError,
    RateLimitError,
    ResendError,
    ValidationError,
)
from support import add_fault, add_stub, extra_hub, run_node

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="resend")
KEY = "re_test_123"


def point_sdk(url: str, key: str | None = KEY) -> None:
    resend.api_url = url
    resend.api_key = key


@pytest.fixture
def sdk(base_url: str) -> Iterator[str]:
    """The Python SDK's module-level settings pointed at mockhub, and put back afterwards."""
    saved = (resend.api_url, resend.api_key)
    point_sdk(base_url)
    yield base_url
    resend.api_url, resend.api_key = saved


def email(**changes: Any) -> Any:
    """A valid send, with keys replaced (or removed when given None)."""
    params: dict[str, Any] = {
        "from": "Acme <alerts@example.com>",
        "to": ["ops@example.com"],
        "subject": "Disk full on db-1",
        "html": "<p>Free space is <b>0%</b></p>",
    }
    params.update(changes)
    return {k: v for k, v in params.items() if v is not None}


def headers(key: str = KEY, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **extra}


# -- sending -------------------------------------------------------------------------------------
def test_send_and_retrieve_an_email(api: httpx.Client, sdk: str) -> None:
    sent = resend.Emails.send(
        email(
            to=["ops@example.com", "Dev Team <dev@example.com>"],
            cc="boss@example.com",
            bcc=["audit@example.com"],
            reply_to="support@example.com",
            text="Free space is 0%",
            tags=[{"name": "category", "value": "alert_email"}],
            headers={"X-Entity-Ref-ID": "123"},
        )
    )
    email_id = sent["id"]
    assert len(email_id) == 36 and email_id.count("-") == 4
    assert sent["http_headers"]["ratelimit-limit"] == "10"

    [call] = calls(api)
    assert call["path"] == "/emails"
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert call["headers"]["user-agent"].startswith("resend-python:")
    data = call["data"]
    assert data["from"] == "alerts@example.com"
    assert data["from_name"] == "Acme"
    assert data["to"] == ["ops@example.com", "dev@example.com"]
    assert data["cc"] == ["boss@example.com"]
    assert data["bcc"] == ["audit@example.com"]
    assert data["reply_to"] == ["support@example.com"]
    assert data["subject"] == "Disk full on db-1"
    assert data["text"] == "Free space is 0%"
    assert data["html"] == "<p>Free space is <b>0%</b></p>"
    assert data["tags"] == [{"name": "category", "value": "alert_email"}]
    assert data["headers"] == {"X-Entity-Ref-ID": "123"}
    assert data["id"] == email_id
    assert call["summary"] == "Disk full on db-1 → ops@example.com, dev@example.com, boss@example.com"
    # The filters that find SMTP mail find it, bcc included.
    assert len(calls(api, to="dev@example.com", subject="disk full")) == 1
    assert len(calls(api, to="audit@example.com")) == 1
    assert api.get("/calls/count", params={"service": "resend", "contains": "Free space"}).json()["count"] == 1
    assert calls(api, to="nobody@example.com") == []

    got = resend.Emails.get(email_id)
    assert got["object"] == "email"
    assert got["id"] == email_id
    assert got["from"] == "Acme <alerts@example.com>"
    assert got["to"] == ["ops@example.com", "Dev Team <dev@example.com>"]
    assert got["cc"] == ["boss@example.com"] and got["bcc"] == ["audit@example.com"]
    assert got["reply_to"] == ["support@example.com"]
    assert got["subject"] == "Disk full on db-1"
    assert got["html"] == "<p>Free space is <b>0%</b></p>" and got["text"] == "Free space is 0%"
    assert got["last_event"] == "delivered"
    assert got["scheduled_at"] is None
    assert got["tags"] == [{"name": "category", "value": "alert_email"}]
    assert got["created_at"].endswith("+00")
    # Retrieving is recorded, but is not an email: the `to` filter does not count it.
    assert [c["method"] for c in calls(api)] == ["POST", "GET"]
    assert len(calls(api, to="ops@example.com")) == 1


def test_attachments_content_and_path(api: httpx.Client, sdk: str) -> None:
    pdf = b"%PDF-1.4 fake report \x00\x01\x02"
    resend.Emails.send(
        email(
            attachments=[
                {"filename": "report.pdf", "content": list(pdf)},  # the Python SDK's bytes form
                {"filename": "b64.txt", "content": base64.b64encode(b"hello").decode(), "content_type": "text/plain"},
                {"path": "https://example.com/files/invoice.pdf"},
                {"filename": "logo.png", "content": base64.b64encode(b"png").decode(), "content_id": "logo"},
            ]
        )
    )
    assert calls(api)[0]["data"]["attachments"] == [
        {"filename": "report.pdf", "content_type": "application/octet-stream", "size": len(pdf)},
        {"filename": "b64.txt", "content_type": "text/plain", "size": 5},
        {
            "filename": "invoice.pdf",
            "content_type": "application/octet-stream",
            "size": None,
            "path": "https://example.com/files/invoice.pdf",
        },
        {"filename": "logo.png", "content_type": "application/octet-stream", "size": 3, "content_id": "logo"},
    ]


def test_scheduled_email(api: httpx.Client, sdk: str) -> None:
    sent = resend.Emails.send(email(scheduled_at="2030-08-05T11:52:01.858Z"))
    got = resend.Emails.get(sent["id"])
    assert got["scheduled_at"] == "2030-08-05T11:52:01.858Z"
    assert got["last_event"] == "scheduled"
    assert resend.Emails.send(email(scheduled_at="in 1 min"))["id"]
    with pytest.raises(ValidationError) as raised:
        resend.Emails.send(email(scheduled_at="2030-13-45 nonsense"))
    assert "scheduled_at" in raised.value.message


def test_resends_test_addresses_set_last_event(api: httpx.Client, sdk: str) -> None:
    bounced = resend.Emails.send(email(to="bounced+signup@resend.dev"))
    complained = resend.Emails.send(email(to="complained@resend.dev"))
    assert resend.Emails.get(bounced["id"])["last_event"] == "bounced"
    assert resend.Emails.get(complained["id"])["last_event"] == "complained"


def test_template_needs_no_subject(api: httpx.Client, sdk: str) -> None:
    resend.Emails.send(
        {"from": "a@example.com", "to": "b@example.com", "template": {"id": "welcome", "variables": {"NAME": "Ada"}}}
    )
    assert calls(api)[0]["data"]["template"] == {"id": "welcome", "variables": {"NAME": "Ada"}}
    with pytest.raises(ValidationError) as raised:
        resend.Emails.send({"from": "a@example.com", "to": "b@example.com", "template": {"id": "x"}, "html": "<p/>"})
    assert raised.value.code == 422


# -- batch ---------------------------------------------------------------------------------------
def test_batch(api: httpx.Client, sdk: str) -> None:
    sent = resend.Batch.send(
        [
            email(to=["foo@example.com"], subject="hello world", html="<h1>it works!</h1>"),
            email(to="bar@example.com", subject="world hello", text="plain it works"),
        ]
    )
    ids = [item["id"] for item in sent["data"]]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert "errors" not in sent
    [call] = calls(api)
    assert call["path"] == "/emails/batch"
    data = call["data"]
    assert data["ids"] == ids
    assert [e["to"] for e in data["emails"]] == [["foo@example.com"], ["bar@example.com"]]
    assert data["to"] == ["foo@example.com", "bar@example.com"]
    assert data["subjects"] == ["hello world", "world hello"]
    assert call["summary"].startswith("batch of 2: hello world → ")
    # Each email of the batch is found by the common filters, and each is retrievable.
    assert len(calls(api, to="bar@example.com", subject="world hello")) == 1
    assert len(calls(api, contains="plain it works")) == 1
    assert resend.Emails.get(ids[1])["subject"] == "world hello"


def test_batch_strict_rejects_the_whole_batch(api: httpx.Client, sdk: str) -> None:
    with pytest.raises(MissingRequiredFieldsError) as raised:
        resend.Batch.send([email(), email(to=None)])
    assert raised.value.message == "Missing `to` field."
    [call] = calls(api)
    assert call["response"]["status"] == 422
    assert call["data"]["index"] == 1


def test_batch_permissive_sends_the_valid_ones(api: httpx.Client, sdk: str) -> None:
    sent = resend.Batch.send(
        [email(), email(to=None), email(**{"from": "not an address"})], {"batch_validation": "permissive"}
    )
    assert len(sent["data"]) == 1
    assert sent["errors"] == [
        {"index": 1, "message": "Missing `to` field."},
        {
            "index": 2,
            "message": "Invalid `from` field. The email address needs to follow the `email@example.com` or "
            "`Name <email@example.com>` format.",
        },
    ]
    [call] = calls(api)
    assert call["headers"]["x-batch-validation"] == "permissive"
    assert call["data"]["ids"] == [sent["data"][0]["id"]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"attachments": [{"filename": "a.txt", "content": "aGk="}]}, "`attachments`"),
        ({"scheduled_at": "in 1 min"}, "`scheduled_at`"),
    ],
)
def test_batch_refuses_attachments_and_scheduling(
    api: httpx.Client, sdk: str, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        resend.Batch.send([email(**change)])
    assert message in raised.value.message


def test_batch_limit_and_shape(api: httpx.Client) -> None:
    r = api.post("/emails/batch", json=[email()] * 101, headers=headers())
    assert r.status_code == 422
    assert r.json()["name"] == "validation_error" and "100" in r.json()["message"]
    assert api.post("/emails/batch", json=[email()] * 100, headers=headers()).status_code == 200
    r = api.post("/emails/batch", json=email(), headers=headers())
    assert r.status_code == 422 and r.json()["name"] == "validation_error"


# -- validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "error", "status", "message"),
    [
        (email(**{"from": None}), MissingRequiredFieldsError, 422, "Missing `from` field."),
        (email(to=None), MissingRequiredFieldsError, 422, "Missing `to` field."),
        (email(to=[]), MissingRequiredFieldsError, 422, "Missing `to` field."),
        (email(subject=None), MissingRequiredFieldsError, 422, "Missing `subject` field."),
        (email(html=None), ValidationError, 422, "Missing `html` or `text` field."),
        # Resend checks `to`, then the content, then `subject`, then `from`.
        ({"from": "x@example.com", "to": "a@example.com"}, ValidationError, 422, "Missing `html` or"),
        ({"text": "t"}, MissingRequiredFieldsError, 422, "Missing `to` field."),
        ({"to": "a@example.com", "text": "t"}, MissingRequiredFieldsError, 422, "Missing `subject` field."),
        (
            email(**{"from": "Acme alerts@example.com"}),
            ValidationError,
            422,
            "Invalid `from` field. The email address needs to follow the `email@example.com` or "
            "`Name <email@example.com>` format.",
        ),
        (email(to=["ok@example.com", "nope"]), ValidationError, 422, "Invalid `to` field."),
        (email(cc="a@b"), ValidationError, 422, "Invalid `cc` field."),
        (email(bcc=[42]), ValidationError, 422, "The `bcc` field must be"),
        (email(reply_to="x"), ValidationError, 422, "Invalid `reply_to` field."),
        (email(to=[f"u{i}@example.com" for i in range(51)]), ValidationError, 422, "maximum is 50"),
        (email(subject=7), ValidationError, 422, "The `subject` field must be a `string`."),
        (email(html=["x"]), ValidationError, 422, "The `html` field must be a `string`."),
        (email(tags=[{"name": "has space", "value": "x"}]), ValidationError, 422, "Tags should only contain"),
        (email(tags=[{"name": "ok", "value": "é"}]), ValidationError, 422, "Tags should only contain"),
        (email(tags=[{"name": "n" * 257}]), ValidationError, 422, "Tags should only contain"),
        (email(tags=[{"value": "x"}]), MissingRequiredFieldsError, 422, "Missing `name` field in `tags`."),
        (email(headers={"X-A": 1}), ValidationError, 422, "The `headers` field"),
    ],
)
def test_validation_errors(
    api: httpx.Client, sdk: str, params: Any, error: type[ResendError], status: int, message: str
) -> None:
    with pytest.raises(error) as raised:
        resend.Emails.send(params)
    assert type(raised.value) is error
    assert raised.value.code == status
    assert raised.value.message.startswith(message) or message in raised.value.message
    [call] = calls(api)
    assert call["response"]["status"] == status
    body = json.loads(call["response"]["body"])
    assert set(body) == {"statusCode", "name", "message"} and body["statusCode"] == status
    assert call["data"]["error"] == raised.value.error_type
    # Nothing was sent, so nothing is kept.
    assert "id" not in call["data"]


@pytest.mark.parametrize(
    "attachment",
    [{"filename": "a.txt"}, {"filename": "a.txt", "content": "%%% not base64"}, {"path": "/etc/passwd"}],
)
def test_invalid_attachment(api: httpx.Client, sdk: str, attachment: dict[str, Any]) -> None:
    with pytest.raises(ResendError) as raised:
        resend.Emails.send(email(attachments=[attachment]))
    assert raised.value.code == 422
    assert raised.value.error_type == "invalid_attachment"


def test_malformed_json_and_wrong_shapes(api: httpx.Client) -> None:
    r = api.post(
        "/emails", content=b'{"from": "a@example.com",', headers=headers(**{"content-type": "application/json"})
    )
    assert r.status_code == 400
    assert r.json()["name"] == "validation_error" and r.json()["statusCode"] == 400
    r = api.post("/emails", json=[email()], headers=headers())
    assert r.status_code == 422 and r.json()["name"] == "validation_error"
    r = api.put("/emails", json=email(), headers=headers())
    assert r.status_code == 405
    assert r.json() == {
        "statusCode": 405,
        "name": "method_not_allowed",
        "message": "Method is not allowed for the requested path.",
    }
    recorded = calls(api)
    assert [c["response"]["status"] for c in recorded] == [400, 422, 405]
    assert recorded[0]["data"]["error"] == "invalid_json"
    # The server is still up and sending.
    assert api.post("/emails", json=email(), headers=headers()).status_code == 200


# -- auth ----------------------------------------------------------------------------------------
def test_missing_and_invalid_keys(api: httpx.Client, sdk: str) -> None:
    point_sdk(sdk, "")
    with pytest.raises(MissingApiKeyError) as missing:
        resend.Emails.send(email())
    assert missing.value.code == 401 and missing.value.error_type == "missing_api_key"
    point_sdk(sdk, "sk_not_a_resend_key")
    with pytest.raises(ValidationError) as invalid:
        resend.Emails.send(email())
    assert invalid.value.code == 400 and invalid.value.message == "API key is invalid"
    r = api.post("/emails", json=email())
    assert r.status_code == 401
    assert r.json() == {
        "statusCode": 401,
        "name": "missing_api_key",
        "message": "Missing API key in the authorization header.",
    }
    assert api.get(f"/emails/{'0' * 8}-0000-4000-8000-{'0' * 12}", headers={"authorization": "Basic abc"}).json()[
        "message"
    ] == ("API key is invalid")
    assert [c["data"]["error"] for c in calls(api)] == [
        "missing_api_key",
        "validation_error",
        "missing_api_key",
        "validation_error",
    ]


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="re_good") as running:
        yield running


def test_pinned_keys(pinned: ThreadedHub) -> None:
    r = httpx.post(f"{pinned.url}/emails", json=email(), headers=headers("re_wrong"))
    assert r.status_code == 400 and r.json()["message"] == "API key is invalid"
    assert httpx.post(f"{pinned.url}/emails", json=email(), headers=headers("re_good")).status_code == 200


# -- retrieval -----------------------------------------------------------------------------------
def test_unknown_id_and_namespaces(api: httpx.Client, sdk: str) -> None:
    missing = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
    with pytest.raises(ResendError) as raised:
        resend.Emails.get(missing)
    assert raised.value.code == 404 and raised.value.error_type == "not_found"
    r = api.get("/emails/not-a-uuid", headers=headers())
    assert r.status_code == 422 and r.json()["name"] == "invalid_parameter"

    # Emails are kept per namespace, and a reset forgets them.
    point_sdk(f"{sdk}/ns/team-a")
    kept = resend.Emails.send(email())["id"]
    assert resend.Emails.get(kept)["id"] == kept
    point_sdk(f"{sdk}/ns/team-b")
    with pytest.raises(ResendError):
        resend.Emails.get(kept)
    point_sdk(f"{sdk}/ns/team-a")
    api.post("/reset").raise_for_status()
    with pytest.raises(ResendError) as gone:
        resend.Emails.get(kept)
    assert gone.value.code == 404


def test_list_emails_newest_first_with_pages(api: httpx.Client, sdk: str) -> None:
    ids = [resend.Emails.send(email(subject=f"n{i}"))["id"] for i in range(5)]
    listed = resend.Emails.list()
    assert listed["object"] == "list" and listed["has_more"] is False
    assert [e["id"] for e in listed["data"]] == ids[::-1]
    first = listed["data"][0]
    assert first["subject"] == "n4" and first["to"] == ["ops@example.com"] and first["last_event"] == "delivered"
    assert "html" not in first
    page = resend.Emails.list({"limit": 2})
    assert [e["id"] for e in page["data"]] == [ids[4], ids[3]] and page["has_more"] is True
    page = resend.Emails.list({"limit": 2, "after": ids[3]})
    assert [e["id"] for e in page["data"]] == [ids[2], ids[1]] and page["has_more"] is True
    page = resend.Emails.list({"limit": 2, "before": ids[1]})
    assert [e["id"] for e in page["data"]] == [ids[3], ids[2]] and page["has_more"] is True
    with pytest.raises(ValidationError):
        resend.Emails.list({"limit": 101})
    assert calls(api)[-2]["summary"] == "list emails"


def test_cancel_and_reschedule(api: httpx.Client, sdk: str) -> None:
    scheduled = resend.Emails.send(email(scheduled_at="2030-08-05T11:52:01.858Z"))["id"]
    updated = resend.Emails.update({"id": scheduled, "scheduled_at": "2030-09-01T08:00:00.000Z"})
    assert updated["object"] == "email" and updated["id"] == scheduled
    assert resend.Emails.get(scheduled)["scheduled_at"] == "2030-09-01T08:00:00.000Z"
    assert resend.Emails.cancel(scheduled)["id"] == scheduled
    assert resend.Emails.get(scheduled)["last_event"] == "canceled"
    sent = resend.Emails.send(email())["id"]
    with pytest.raises(ValidationError) as raised:
        resend.Emails.cancel(sent)
    assert raised.value.code == 422
    with pytest.raises(ResendError) as missing:
        resend.Emails.cancel("4ef9a417-02e9-4d39-ad75-9611e0fcc33c")
    assert missing.value.code == 404
    # A fault stops the cancel: the email stays scheduled.
    again = resend.Emails.send(email(scheduled_at="in 1 hour"))["id"]
    add_fault(api, "resend", preset="server_error", match={"path": "/emails/*/cancel"})
    with pytest.raises(ApplicationError):
        resend.Emails.cancel(again)
    assert resend.Emails.get(again)["last_event"] == "scheduled"


# -- idempotency ---------------------------------------------------------------------------------
def test_idempotency_key(api: httpx.Client, sdk: str) -> None:
    first = resend.Emails.send(email(), {"idempotency_key": "welcome-user/123"})
    again = resend.Emails.send(email(), {"idempotency_key": "welcome-user/123"})
    assert again["id"] == first["id"]
    with pytest.raises(ResendError) as raised:
        resend.Emails.send(email(subject="changed"), {"idempotency_key": "welcome-user/123"})
    assert raised.value.code == 409 and raised.value.error_type == "invalid_idempotent_request"
    # Another key (or none) sends another email.
    assert resend.Emails.send(email(), {"idempotency_key": "welcome-user/456"})["id"] != first["id"]
    assert resend.Emails.send(email())["id"] != first["id"]

    recorded = calls(api, path="/emails")
    assert recorded[0]["data"]["idempotency_key"] == "welcome-user/123"
    assert recorded[1]["data"] == {"idempotency_key": "welcome-user/123", "replay_of": [first["id"]]}
    assert recorded[1]["summary"] == f"idempotent replay of {first['id']}"
    assert recorded[2]["response"]["status"] == 409
    # The replay sent nothing: the recipient got three emails, not four.
    assert len(calls(api, to="ops@example.com")) == 3

    batch = [email(to="a@example.com"), email(to="b@example.com")]
    sent = resend.Batch.send(batch, {"idempotency_key": "team-quota/1"})
    assert resend.Batch.send(batch, {"idempotency_key": "team-quota/1"})["data"] == sent["data"]
    # Keys are per endpoint.
    assert resend.Emails.send(email(), {"idempotency_key": "team-quota/1"})["id"] not in str(sent["data"])

    r = api.post("/emails", json=email(), headers=headers(**{"idempotency-key": "k" * 257}))
    assert r.status_code == 400 and r.json()["name"] == "invalid_idempotency_key"


# -- rules: presets, faults, stubs ----------------------------------------------------------------
def test_rate_limited_preset(api: httpx.Client, sdk: str) -> None:
    add_fault(api, "resend", preset="rate_limited")
    with pytest.raises(RateLimitError) as raised:
        resend.Emails.send(email())
    assert raised.value.code == 429 and raised.value.error_type == "rate_limit_exceeded"
    assert raised.value.headers["retry-after"] == "1"
    assert raised.value.headers["ratelimit-remaining"] == "0"
    assert raised.value.headers["ratelimit-limit"] == "10"
    assert "ratelimit-reset" in raised.value.headers
    assert resend.Emails.send(email())["id"]  # the fault fired once
    first = calls(api)[0]
    assert first["fault"] is not None and first["response"]["status"] == 429


@pytest.mark.parametrize(
    ("preset", "error", "status", "name"),
    [
        ("server_error", ApplicationError, 500, "application_error"),
        ("unavailable", ResendError, 503, "service_unavailable"),
        ("overloaded", ResendError, 503, "service_unavailable"),
        ("unauthorized", InvalidApiKeyError, 403, "invalid_api_key"),
    ],
)
def test_error_presets(
    api: httpx.Client, sdk: str, preset: str, error: type[ResendError], status: int, name: str
) -> None:
    add_fault(api, "resend", preset=preset)
    with pytest.raises(error) as raised:
        resend.Emails.send(email())
    assert type(raised.value) is error
    assert raised.value.code == status and raised.value.error_type == name
    # A fault stops the send: nothing is kept to retrieve.
    [call] = calls(api)
    assert call["data"].get("id") is None


def test_a_fault_on_one_path_and_a_transport_fault(api: httpx.Client, sdk: str) -> None:
    add_fault(api, "resend", match={"path": "/emails/batch"}, status=502)
    sent = resend.Emails.send(email())  # not the batch: unaffected
    with pytest.raises(ResendError) as raised:
        resend.Batch.send([email()])
    assert raised.value.code == 502
    add_fault(api, "resend", action="reset")
    with pytest.raises(ResendError) as reset:
        resend.Emails.get(sent["id"])
    assert reset.value.error_type == "HttpClientError"
    assert resend.Emails.get(sent["id"])["id"] == sent["id"]
    statuses = [c["response"]["status"] if c["response"] else None for c in calls(api)]
    assert statuses == [200, 502, None, 200]


def test_stubs(api: httpx.Client, sdk: str) -> None:
    add_stub(api, "resend", reply={"last_event": "bounced"}, times=2)
    sent = resend.Emails.send(email())
    assert resend.Emails.get(sent["id"])["last_event"] == "bounced"
    assert calls(api, path="/emails")[0]["data"]["last_event"] == "bounced"
    # A GET renders no reply stub and does not spend one: the second send is the stub's second time.
    assert resend.Emails.get(resend.Emails.send(email())["id"])["last_event"] == "bounced"
    assert resend.Emails.get(resend.Emails.send(email())["id"])["last_event"] == "delivered"  # used up

    add_stub(api, "resend", response={"status": 200, "json": {"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}})
    assert resend.Emails.send(email())["id"] == "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"


def test_catalogue_and_env(api: httpx.Client, base_url: str) -> None:
    [info] = [s for s in api.get("/services").json()["services"] if s["name"] == "resend"]
    assert info["hosts"] == ["api.resend.com"]
    assert "POST /emails/batch" in info["routes"] and "GET /emails/{email_id}" in info["routes"]
    assert info["stub_reply"]["properties"]["last_event"]
    from mockhub import MockHub

    env = MockHub(base_url).env()
    assert env["RESEND_BASE_URL"] == base_url and env["RESEND_API_URL"] == base_url
    assert env["RESEND_API_KEY"].startswith("re_")


# -- the Node SDK --------------------------------------------------------------------------------
NODE_SCRIPT = """
import { Resend } from "resend";
const resend = new Resend("re_node_key");
const out = {};
out.sent = await resend.emails.send({
  from: "Acme <onboarding@example.com>", to: ["delivered@example.com"], subject: "hello from node",
  html: "<p>it works!</p>", replyTo: "support@example.com",
  attachments: [{ filename: "note.txt", content: Buffer.from("hello") }],
});
out.got = await resend.emails.get(out.sent.data.id);
out.batch = await resend.batch.send([
  { from: "a@example.com", to: "foo@example.com", subject: "one", text: "1" },
  { from: "a@example.com", to: "bar@example.com", subject: "two", text: "2" },
]);
out.invalid = await resend.emails.send({ from: "nope", to: "x@example.com", subject: "s", text: "t" });
out.missing = await resend.emails.send({ from: "a@example.com", subject: "s", text: "t" });
out.unknown = await resend.emails.get("4ef9a417-02e9-4d39-ad75-9611e0fcc33c");
out.idem1 = await resend.emails.send({ from: "a@example.com", to: "i@example.com", subject: "i", text: "i" },
  { idempotencyKey: "node-1" });
out.idem2 = await resend.emails.send({ from: "a@example.com", to: "i@example.com", subject: "i", text: "i" },
  { idempotencyKey: "node-1" });
out.idem3 = await resend.emails.send({ from: "a@example.com", to: "i@example.com", subject: "other", text: "i" },
  { idempotencyKey: "node-1" });
out.limited = await resend.emails.send({ from: "a@example.com", to: "r@example.com", subject: "r", text: "r" });
console.log(JSON.stringify(out));
"""


def test_node_sdk(api: httpx.Client, base_url: str) -> None:
    # The fault is there before the script starts, and only the script's last send matches it.
    add_fault(api, "resend", preset="rate_limited", match={"to": "r@example.com"})
    out = json.loads(run_node(NODE_SCRIPT, {"RESEND_BASE_URL": base_url}))
    email_id = out["sent"]["data"]["id"]
    assert out["sent"]["error"] is None
    got = out["got"]["data"]
    assert got["id"] == email_id and got["object"] == "email"
    assert got["subject"] == "hello from node" and got["reply_to"] == ["support@example.com"]
    assert len(out["batch"]["data"]["data"]) == 2
    assert out["invalid"]["error"]["name"] == "validation_error"
    assert out["invalid"]["error"]["statusCode"] == 422
    assert out["missing"]["error"] == {
        "statusCode": 422,
        "name": "missing_required_field",
        "message": "Missing `to` field.",
    }
    assert out["unknown"]["error"] == {"statusCode": 404, "name": "not_found", "message": "Email not found"}
    assert out["idem2"]["data"]["id"] == out["idem1"]["data"]["id"]
    assert out["idem3"]["error"]["name"] == "invalid_idempotent_request"
    assert out["limited"]["error"]["name"] == "rate_limit_exceeded"
    assert out["limited"]["headers"]["retry-after"] == "1"

    [sent] = calls(api, path="/emails", subject="hello from node")
    assert sent["headers"]["user-agent"].startswith("resend-node:")
    assert sent["data"]["attachments"] == [
        {"filename": "note.txt", "content_type": "application/octet-stream", "size": 5}
    ]
    [batch] = calls(api, path="/emails/batch")
    assert batch["headers"]["x-batch-validation"] == "strict"
    assert batch["data"]["subjects"] == ["one", "two"]
