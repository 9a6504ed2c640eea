"""The Postmark Email API fake, driven with `postmarker` and with plain `requests` as Postmark's docs show."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import pytest
import requests
import support
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError
from support import add_fault, add_stub, extra_hub

from mockhub import MockHub
from mockhub.server import ThreadedHub

calls = partial(support.calls, service="postmark")

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
NO_TOKEN = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either "
    "X-Postmark-Server-Token or X-Postmark-Account-Token."
)


def postmark(base_url: str, token: str = "server-token") -> PostmarkClient:
    return PostmarkClient(server_token=token, root_api_url=base_url + "/")


def post(base_url: str, path: str, body: Any, token: str | None = "server-token", **headers: str) -> requests.Response:
    """A request as Postmark's curl examples send it."""
    sent = {**JSON_HEADERS, **headers}
    if token is not None:
        sent["X-Postmark-Server-Token"] = token
    return requests.post(base_url + path, json=body, headers=sent, timeout=10)


def message(**changes: Any) -> dict[str, Any]:
    """A valid /email body, with fields replaced (or removed, when given None)."""
    body: dict[str, Any] = {
        "From": "sender@example.com",
        "To": "receiver@example.com",
        "Subject": "Postmark test",
        "TextBody": "Hello dear Postmark user.",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def assert_accepted(answer: dict[str, Any], to: str | None) -> None:
    assert answer["ErrorCode"] == 0
    assert str(uuid.UUID(answer["MessageID"])) == answer["MessageID"]
    # Seven fractional digits and a zone, as Postmark writes it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}(Z|[+-]\d\d:\d\d)", answer["SubmittedAt"])
    datetime.fromisoformat(answer["SubmittedAt"])
    assert answer.get("To") == to


def test_send_with_postmarker(api: httpx.Client, base_url: str) -> None:
    answer = postmark(base_url).emails.send(
        From="Alerts <alerts@example.com>",
        To="ops@example.com, Dev Team <dev@example.com>",
        Cc="boss@example.com",
        Bcc="audit@example.com",
        Subject="Disk full on db-1",
        TextBody="Free space is 0%",
        HtmlBody="<p>Free space is <b>0%</b></p>",
        ReplyTo="noreply@example.com",
        Headers={"X-Incident": "42"},
        Tag="alerts",
        Metadata={"host": "db-1"},
        TrackOpens=True,
        TrackLinks="HtmlOnly",
        MessageStream="outbound",
    )
    assert_accepted(answer, "ops@example.com, Dev Team <dev@example.com>")
    assert answer["Message"] == "OK"

    [call] = calls(api)
    assert call["path"] == "/email"
    assert call["headers"]["x-postmark-server-token"] == "server-token"
    data = call["data"]
    assert data["from"] == "alerts@example.com"
    assert data["from_name"] == "Alerts"
    assert data["to"] == ["ops@example.com", "dev@example.com"]
    assert data["cc"] == ["boss@example.com"]
    assert data["bcc"] == ["audit@example.com"]
    assert data["subject"] == "Disk full on db-1"
    assert data["text"] == "Free space is 0%"
    assert data["html"] == "<p>Free space is <b>0%</b></p>"
    assert data["reply_to"] == ["noreply@example.com"]
    assert data["headers"] == {"X-Incident": "42"}
    assert data["tag"] == "alerts"
    assert data["metadata"] == {"host": "db-1"}
    assert data["track_opens"] is True
    assert data["track_links"] == "HtmlOnly"
    assert data["message_stream"] == "outbound"
    assert data["message_id"] == answer["MessageID"]
    assert data["test_mode"] is False
    assert call["summary"] == "Disk full on db-1 → ops@example.com, dev@example.com, boss@example.com"
    # The filters that find SMTP mail find it, Bcc recipients included.
    for who in ("dev@example.com", "audit@example.com"):
        assert len(calls(api, to=who, subject="disk full")) == 1
    assert api.get("/calls/count", params={"service": "postmark", "contains": "Free space"}).json()["count"] == 1
    assert calls(api, to="nobody@example.com") == []


def test_plain_requests_as_the_docs_show(api: httpx.Client, base_url: str) -> None:
    r = post(base_url, "/email", message(HtmlBody="<strong>Hello</strong>", MessageStream="broadcast"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert set(answer) == {"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}
    assert_accepted(answer, "receiver@example.com")
    data = calls(api)[0]["data"]
    assert data["html"] == "<strong>Hello</strong>"
    assert data["message_stream"] == "broadcast"
    # A trailing slash answers too, and a message's stream defaults to "outbound".
    r = post(base_url, "/email/", message())
    assert r.status_code == 200
    assert calls(api)[-1]["data"]["message_stream"] == "outbound"


def test_keys_are_read_case_insensitively_and_nulls_are_absent(api: httpx.Client, base_url: str) -> None:
    body = {"from": "a@example.com", "to": "b@example.com", "subject": "lower", "textBody": "x", "Cc": None}
    r = post(base_url, "/email", body)
    assert r.status_code == 200, r.text
    data = calls(api)[0]["data"]
    assert (data["to"], data["cc"], data["subject"]) == (["b@example.com"], [], "lower")


def test_address_lists(api: httpx.Client, base_url: str) -> None:
    to = '"Receiver, Jr." <jr@example.com>, , plain@example.com,'
    r = post(base_url, "/email", message(To=to))
    assert r.status_code == 200
    assert r.json()["To"] == to
    assert calls(api)[0]["data"]["to"] == ["jr@example.com", "plain@example.com"]
    r = post(base_url, "/email", message(From="Unquoted, display-name <from@example.com>"))
    assert r.json() == {"ErrorCode": 300, "Message": "Invalid 'From' address: 'Unquoted'."}


def test_a_cc_only_message_answers_without_to(api: httpx.Client, base_url: str) -> None:
    r = post(base_url, "/email", message(To=None, Cc="cc@example.com"))
    assert r.status_code == 200
    assert "To" not in r.json()
    assert calls(api)[0]["data"]["cc"] == ["cc@example.com"]


def test_attachments(api: httpx.Client, base_url: str) -> None:
    pdf = b"%PDF-1.4 fake report \x00\x01\x02"
    png = b"\x89PNG\r\n\x1a\n fake"
    email = postmark(base_url).emails.Email(
        From="reports@example.com",
        To="a@example.com",
        Subject="Weekly report",
        HtmlBody='<img src="cid:logo.png">',
    )
    email.attach_binary(pdf, "report.pdf")
    email.attach(
        {
            "Name": "logo.png",
            "Content": base64.b64encode(png).decode(),
            "ContentType": "image/png",
            "ContentID": "cid:logo.png",
        }
    )
    assert email.send()["ErrorCode"] == 0
    assert calls(api)[0]["data"]["attachments"] == [
        {"filename": "report.pdf", "content_type": "application/pdf", "size": len(pdf)},
        {"filename": "logo.png", "content_type": "image/png", "size": len(png), "content_id": "logo.png"},
    ]


def test_batch_answers_each_message_in_a_200_list(api: httpx.Client, base_url: str) -> None:
    answers = postmark(base_url).emails.send_batch(
        {"From": "a@example.com", "To": "one@example.com", "Subject": "First", "TextBody": "1"},
        {"From": "a@example.com", "To": "not-an-address", "Subject": "Second", "TextBody": "2"},
        {"From": "a@example.com", "To": "three@example.com", "Subject": "Third", "HtmlBody": "<p>3</p>"},
    )
    assert len(answers) == 3
    assert_accepted(answers[0], "one@example.com")
    # A rejected message is answered inside the list, with only its ErrorCode and Message.
    assert answers[1] == {"ErrorCode": 300, "Message": "Invalid 'To' address: 'not-an-address'."}
    assert_accepted(answers[2], "three@example.com")
    assert answers[0]["MessageID"] != answers[2]["MessageID"]

    [call] = calls(api)
    assert call["path"] == "/email/batch"
    assert call["response"]["status"] == 200
    data = call["data"]
    assert data["batch"] is True
    assert data["to"] == ["one@example.com", "three@example.com"]
    assert data["subjects"] == ["First", "Third"]
    assert [m.get("error_code") for m in data["messages"]] == [None, 300, None]
    assert data["messages"][0]["message_id"] == answers[0]["MessageID"]
    assert call["summary"].startswith("batch of 3: First → one@example.com")
    # The message that was not sent is not found by its recipient; the others are.
    assert len(calls(api, to="three@example.com", subject="third")) == 1
    assert calls(api, subject="second") == []


def test_batch_needs_a_list_and_at_most_500(api: httpx.Client, base_url: str) -> None:
    r = post(base_url, "/email/batch", message())
    assert (r.status_code, r.json()["ErrorCode"]) == (422, 403)
    r = post(base_url, "/email/batch", [message()] * 501)
    assert r.status_code == 422
    assert r.json() == {
        "ErrorCode": 410,
        "Message": "You may only send up to 500 messages in a single batched request.",
    }
    assert [c["data"]["error_code"] for c in calls(api)] == [403, 410]


def test_with_template_through_postmarker_trailing_slash(api: httpx.Client, base_url: str) -> None:
    answer = postmark(base_url).emails.send_with_template(
        TemplateId=1234567,
        TemplateModel={"name": "Ada", "product": "mockhub"},
        From="welcome@example.com",
        To="ada@example.com",
        Tag="welcome",
    )
    assert_accepted(answer, "ada@example.com")
    [call] = calls(api)
    assert call["path"] == "/email/withTemplate/"  # postmarker's own path
    data = call["data"]
    assert data["template_id"] == 1234567
    assert data["template_model"] == {"name": "Ada", "product": "mockhub"}
    assert data["inline_css"] is True
    assert data["to"] == ["ada@example.com"]
    assert call["summary"] == "template 1234567 → ada@example.com"
    assert len(calls(api, to="ada@example.com")) == 1
    assert api.get("/calls/count", params={"service": "postmark", "contains": "mockhub"}).json()["count"] == 1


def test_with_template_alias_without_slash(api: httpx.Client, base_url: str) -> None:
    r = post(
        base_url,
        "/email/withTemplate",
        {"From": "a@example.com", "To": "b@example.com", "TemplateAlias": "welcome", "TemplateModel": {}},
    )
    assert r.status_code == 200
    assert_accepted(r.json(), "b@example.com")
    assert calls(api)[0]["data"]["template_alias"] == "welcome"


def test_batch_with_templates(api: httpx.Client, base_url: str) -> None:
    answers = postmark(base_url).emails.send_template_batch(
        {"From": "a@example.com", "To": "one@example.com", "TemplateAlias": "receipt", "TemplateModel": {"n": 1}},
        {
            "From": "a@example.com",
            "To": "two@example.com",
            "TemplateModel": {"n": 2},
            "TemplateId": None,
            "TemplateAlias": "x",
        },
    )
    assert [a["ErrorCode"] for a in answers] == [0, 0]
    [call] = calls(api)
    assert call["path"] == "/email/batchWithTemplates/"
    assert [m["template_model"] for m in call["data"]["messages"]] == [{"n": 1}, {"n": 2}]
    # Without a TemplateId or TemplateAlias, one message of the batch is refused inside the list.
    r = post(
        base_url,
        "/email/batchWithTemplates",
        {"Messages": [{"From": "a@example.com", "To": "b@example.com", "TemplateModel": {}}]},
    )
    assert r.status_code == 200
    assert r.json()[0]["ErrorCode"] == 1101
    r = post(base_url, "/email/batchWithTemplates", [])  # the messages go in {"Messages": [...]}
    assert (r.status_code, r.json()["ErrorCode"]) == (422, 403)


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (message(From=None), 300, "Invalid 'From' address: ''."),
        (message(From="not an address"), 300, "Invalid 'From' address: 'not'."),
        (message(To="invalid@localhost"), 300, "Invalid 'To' address: 'invalid@localhost'."),
        (message(Cc="user@+"), 300, "Invalid 'Cc' address: 'user@+'."),
        (message(To=None), 300, "Zero recipients specified"),
        (message(TextBody=None), 300, "Provide either email TextBody or HtmlBody or both."),
        (
            message(To=", ".join(f"r{i}@example.com" for i in range(51))),
            300,
            "Maximum of 50 recipients allowed per email message",
        ),
        (message(Metadata={"a-key-longer-than-twenty": "x"}), 300, "Invalid metadata content."),
        (message(Attachments=[{"Name": "a.txt", "Content": "%%%", "ContentType": "text/plain"}]), 300, "base64"),
        (message(Attachments=[{"Name": "setup.exe", "Content": "aGk=", "ContentType": "x"}]), 411, "not allowed"),
        (message(To=["receiver@example.com"]), 403, "Invalid request field(s): 'To'."),
        (message(TrackOpens="yes"), 403, "Invalid request field(s): 'TrackOpens'."),
        (message(TrackLinks="Always"), 403, "Invalid request field(s): 'TrackLinks'."),
        (message(Headers={"X-A": "1"}), 403, "Invalid request field(s): 'Headers'."),
    ],
)
def test_validation_errors(api: httpx.Client, base_url: str, body: dict[str, Any], code: int, text: str) -> None:
    with pytest.raises(ClientError) as raised:
        postmark(base_url).emails._send(**body)
    assert raised.value.error_code == code
    assert text in str(raised.value)
    r = post(base_url, "/email", body)
    assert r.status_code == 422
    assert r.json()["ErrorCode"] == code and text in r.json()["Message"]
    for call in calls(api):
        assert call["response"]["status"] == 422
        assert call["data"]["error_code"] == code
        assert text in call["data"]["error_message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"From": "a@example.com", "To": "b@example.com", "TemplateModel": {}}, 1101),
        ({"From": "a@example.com", "To": "b@example.com", "TemplateId": 1}, 1109),
        ({"From": "a@example.com", "To": "b@example.com", "TemplateId": 1, "TemplateModel": {}, "HtmlBody": "x"}, 1123),
        ({"From": "a@example.com", "To": "b@example.com", "TemplateId": "one", "TemplateModel": {}}, 403),
        ({"From": "a@example.com", "To": "b@example.com", "TemplateId": 1, "TemplateModel": []}, 403),
    ],
)
def test_template_errors(api: httpx.Client, base_url: str, body: dict[str, Any], code: int) -> None:
    with pytest.raises(ClientError) as raised:
        postmark(base_url).emails._send_with_template(**body)
    assert raised.value.error_code == code
    assert calls(api)[0]["response"]["status"] == 422


def test_inactive_recipients(api: httpx.Client, base_url: str) -> None:
    pm = postmark(base_url)
    # Every recipient inactive: Postmark's 406, naming them (postmark.js reads the list from this text).
    with pytest.raises(ClientError) as raised:
        pm.emails.send(From="a@example.com", To="Gone <Gone@inactive.postmark.test>", TextBody="x")
    assert raised.value.error_code == 406
    assert "Found inactive addresses: gone@inactive.postmark.test. Inactive recipients are" in str(raised.value)
    # Some inactive: sent to the others, the answer says who was skipped.
    answer = pm.emails.send(From="a@example.com", To="gone@inactive.postmark.test, ok@example.com", TextBody="x")
    assert answer["ErrorCode"] == 0
    assert answer["Message"].startswith(
        "Message OK, but will not deliver to these inactive addresses: gone@inactive.postmark.test."
    )
    # In a batch, the inactive message is refused inside the 200 list.
    answers = pm.emails.send_batch(
        {"From": "a@example.com", "To": "gone@inactive.postmark.test", "TextBody": "x"},
        {"From": "a@example.com", "To": "ok@example.com", "TextBody": "x"},
    )
    assert [a["ErrorCode"] for a in answers] == [406, 0]
    assert "a recipient that has been marked as inactive" in answers[0]["Message"]
    refused, partial, batch = calls(api)
    assert refused["response"]["status"] == 422
    assert refused["data"]["inactive"] == ["gone@inactive.postmark.test"]
    assert refused["data"]["error"] == "inactive_recipient"
    assert partial["data"]["inactive"] == ["gone@inactive.postmark.test"]
    assert batch["data"]["to"] == ["ok@example.com"]


def test_bounce_testing_domain_suppresses_hard_bounces(api: httpx.Client, base_url: str, ns: str) -> None:
    def send(to: str, **extra: Any) -> requests.Response:
        return post(base_url, "/email", message(To=to, **extra), **{"X-Mockhub-Namespace": ns})

    # The first send is accepted; the hard bounce makes the address inactive for later sends.
    assert send("HardBounce@bounce-testing.postmarkapp.com").status_code == 200
    assert send("soft_bounce@bounce-testing.postmarkapp.com").status_code == 200
    header = [{"Name": "X-PM-Bounce-Type", "Value": "Transient"}]
    assert send("anyone@bounce-testing.postmarkapp.com", Headers=header).status_code == 200
    r = send("hardbounce@bounce-testing.postmarkapp.com")
    assert (r.status_code, r.json()["ErrorCode"]) == (422, 406)
    assert "Found inactive addresses: hardbounce@bounce-testing.postmarkapp.com." in r.json()["Message"]
    for to in ("soft_bounce@bounce-testing.postmarkapp.com", "anyone@bounce-testing.postmarkapp.com"):
        assert send(to).status_code == 200  # not hard bounces: still active
    recorded = calls(api, namespace=ns)
    assert recorded[0]["data"]["bounces"] == {"hardbounce@bounce-testing.postmarkapp.com": "HardBounce"}
    assert recorded[1]["data"]["bounces"] == {"soft_bounce@bounce-testing.postmarkapp.com": "SoftBounce"}
    assert recorded[2]["data"]["bounces"] == {"anyone@bounce-testing.postmarkapp.com": "Transient"}
    # Other namespaces have their own suppression list, and a reset forgets it.
    assert post(base_url, "/email", message(To="hardbounce@bounce-testing.postmarkapp.com")).status_code == 200
    api.post("/reset", params={"namespace": ns}).raise_for_status()
    assert send("hardbounce@bounce-testing.postmarkapp.com").status_code == 200


def test_test_token_validates_without_sending(api: httpx.Client, base_url: str) -> None:
    answer = postmark(base_url, "POSTMARK_API_TEST").emails.send(
        From="a@example.com", To="gone@inactive.postmark.test", TextBody="x"
    )
    assert answer["ErrorCode"] == 0
    assert answer["Message"] == "Test job accepted"
    assert calls(api)[0]["data"]["test_mode"] is True
    batch = postmark(base_url, "POSTMARK_API_TEST").emails.send_batch(message(), message(To="bad"))
    assert [(a["ErrorCode"], a["Message"]) for a in batch] == [
        (0, "Test job accepted"),
        (300, "Invalid 'To' address: 'bad'."),
    ]
    with pytest.raises(ClientError) as raised:  # still validated
        postmark(base_url, "POSTMARK_API_TEST").emails._send(**message(To="bad"))
    assert raised.value.error_code == 300


def test_missing_token_malformed_json_and_media_types(api: httpx.Client, base_url: str) -> None:
    for token in (None, ""):
        r = post(base_url, "/email", message(), token=token)
        assert r.status_code == 401
        assert r.json() == {"ErrorCode": 10, "Message": NO_TOKEN}
    r = post(base_url, "/email", message(), **{"X-Postmark-Account-Token": "acct"})
    assert (r.status_code, r.json()["ErrorCode"]) == (401, 10)
    assert "Account API Token" in r.json()["Message"]

    r = requests.post(
        base_url + "/email",
        data=b'{"From": "a@example.com", "To": ',
        headers={**JSON_HEADERS, "X-Postmark-Server-Token": "t"},
        timeout=10,
    )
    assert r.status_code == 422
    assert r.json() == {"ErrorCode": 402, "Message": "Invalid JSON."}

    r = requests.post(
        base_url + "/email", data=b"From=a", headers={"X-Postmark-Server-Token": "t", "Accept": "application/json"}
    )
    assert r.status_code == 415
    r = post(base_url, "/email", message(), Accept="text/html")
    assert r.status_code == 415
    assert "ErrorCode" in r.json()

    recorded = calls(api)
    assert [c["response"]["status"] for c in recorded] == [401, 401, 401, 422, 415, 415]
    assert recorded[3]["data"]["error"] == "invalid_json"
    assert recorded[3]["body"].startswith('{"From"')  # the malformed body is kept
    # The server keeps answering.
    assert post(base_url, "/email", message()).status_code == 200


def test_wrong_method_and_unknown_fields(api: httpx.Client, base_url: str) -> None:
    r = requests.get(base_url + "/email", headers={**JSON_HEADERS, "X-Postmark-Server-Token": "t"}, timeout=10)
    assert r.status_code == 405
    assert set(r.json()) == {"ErrorCode", "Message"}
    # A field Postmark does not know is ignored, not refused.
    assert post(base_url, "/email", message(FutureOption="x")).status_code == 200


@pytest.mark.parametrize(
    ("preset", "status", "code"),
    [("rate_limited", 429, 429), ("server_error", 500, 500), ("unavailable", 503, 100), ("unauthorized", 401, 10)],
)
def test_presets(api: httpx.Client, base_url: str, preset: str, status: int, code: int) -> None:
    add_fault(api, "postmark", action="error", preset=preset)
    with pytest.raises(ClientError) as raised:
        postmark(base_url).emails._send(**message())
    assert raised.value.error_code == code
    assert raised.value.__cause__ is not None
    assert raised.value.__cause__.response.status_code == status  # type: ignore[attr-defined]
    [call] = calls(api)
    assert call["response"]["status"] == status
    assert call["fault"]["preset"] == preset
    assert call["data"]["to"] == ["receiver@example.com"]  # the email is recorded, though refused
    assert postmark(base_url).emails._send(**message())["ErrorCode"] == 0  # the fault fired once


def test_a_fault_matching_a_recipient(api: httpx.Client, base_url: str) -> None:
    add_fault(api, "postmark", action="error", status=503, match={"to": "ops@example.com"}, times=None)
    r = post(base_url, "/email", message(To="ops@example.com"))
    assert r.status_code == 503
    assert r.json()["ErrorCode"] == 100
    assert post(base_url, "/email", message(To="dev@example.com")).status_code == 200


def test_stub_answers_a_postmark_error(api: httpx.Client, base_url: str) -> None:
    add_stub(api, "postmark", match={"to": "bounced@example.com"}, reply={"error_code": 406})
    with pytest.raises(ClientError) as raised:
        postmark(base_url).emails.send(From="a@example.com", To="Bounced@example.com", TextBody="x")
    assert raised.value.error_code == 406
    assert "Found inactive addresses: bounced@example.com." in str(raised.value)
    add_stub(api, "postmark", match={"subject": "quota"}, reply={"error_code": 405, "message": "Not allowed to send."})
    answers = postmark(base_url).emails.send_batch(
        {"From": "a@example.com", "To": "b@example.com", "Subject": "quota", "TextBody": "x"}
    )
    assert answers == [{"ErrorCode": 405, "Message": "Not allowed to send."}]
    stubbed, batch = calls(api)
    assert stubbed["response"]["status"] == 422
    assert stubbed["stub"] is not None
    assert stubbed["data"]["error_code"] == 406
    assert batch["data"]["messages"][0]["error_code"] == 405
    # Others are still accepted.
    assert postmark(base_url).emails.send(From="a@example.com", To="c@example.com", TextBody="x")["ErrorCode"] == 0


def test_raw_stub(api: httpx.Client, base_url: str) -> None:
    add_stub(
        api, "postmark", response={"status": 200, "json": {"ErrorCode": 0, "Message": "stubbed", "MessageID": "x"}}
    )
    assert (
        postmark(base_url).emails.send(From="a@example.com", To="b@example.com", TextBody="x")["Message"] == "stubbed"
    )


def test_namespace_header_and_path(api: httpx.Client, base_url: str) -> None:
    r = post(base_url, "/email", message(Subject="scoped"), **{"X-Mockhub-Namespace": "mail-team"})
    assert r.status_code == 200
    assert post(f"{base_url}/ns/other-team", "/email", message(Subject="by path")).status_code == 200
    assert calls(api, namespace="mail-team")[0]["data"]["subject"] == "scoped"
    assert calls(api, namespace="other-team")[0]["data"]["subject"] == "by path"


def test_catalogue_and_env(api: httpx.Client, base_url: str) -> None:
    info = api.get("/services/postmark").json()
    assert info["hosts"] == ["api.postmarkapp.com"]
    assert "x-postmark-server-token" in info["secret_headers"]
    assert "POST /email/withTemplate/" in info["routes"]
    env = MockHub(base_url).env()
    assert env["POSTMARK_API_URL"] == base_url + "/"  # joined with "email" by clients such as anymail
    assert postmark(base_url, env["POSTMARK_SERVER_TOKEN"]).emails._send(**message())["ErrorCode"] == 0
    assert MockHub(base_url, namespace="team-a").env()["POSTMARK_API_URL"] == base_url + "/ns/team-a/"


def test_a_body_past_the_limit_gets_postmarks_shape() -> None:
    with extra_hub(max_body_bytes=2048) as small:
        with pytest.raises(ClientError) as raised:
            postmark(small.url).emails._send(**message(TextBody="x" * 4096))
        assert raised.value.__cause__.response.status_code == 413  # type: ignore[union-attr]
        assert raised.value.error_code == 0
        assert postmark(small.url).emails._send(**message())["ErrorCode"] == 0


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="pm-good-token") as running:
        yield running


def test_pinned_tokens(pinned: ThreadedHub) -> None:
    with pytest.raises(ClientError) as raised:
        postmark(pinned.url, "pm-wrong").emails._send(**message())
    assert raised.value.error_code == 10
    assert "Request does not contain a valid Server token." in str(raised.value)
    assert postmark(pinned.url, "pm-good-token").emails._send(**message())["Message"] == "OK"
    # Postmark's test token is accepted whatever the server's tokens are.
    assert postmark(pinned.url, "POSTMARK_API_TEST").emails._send(**message())["Message"] == "Test job accepted"


NODE_SCRIPT = """
import * as postmark from "postmark";

const host = process.env.PM_HOST;
const client = new postmark.ServerClient("server-token", { requestHost: host, useHttps: false });
const out = {};
out.sent = await client.sendEmail({
  From: "alerts@example.com", To: "ops@example.com", Subject: "From Node", TextBody: "db-1 is down",
});
out.batch = await client.sendEmailBatch([
  { From: "a@example.com", To: "one@example.com", Subject: "b1", TextBody: "1" },
  { From: "a@example.com", To: "bad", Subject: "b2", TextBody: "2" },
]);
out.template = await client.sendEmailWithTemplate({
  From: "a@example.com", To: "ada@example.com", TemplateAlias: "welcome", TemplateModel: { name: "Ada" },
});
out.templates = await client.sendEmailBatchWithTemplates([
  { From: "a@example.com", To: "t@example.com", TemplateId: 7, TemplateModel: {} },
]);
const failures = {
  inactive: () => client.sendEmail({ From: "a@example.com", To: "gone@inactive.postmark.test", TextBody: "x" }),
  invalid: () => client.sendEmail({ From: "a@example.com", To: "bad", TextBody: "x" }),
  token: () => new postmark.ServerClient("", { requestHost: host, useHttps: false }).sendEmail({}),
  unauthorized: () =>
    new postmark.ServerClient("nope", { requestHost: host + "/ns/pinned", useHttps: false }).sendEmail({}),
};
for (const [name, send] of Object.entries(failures)) {
  try {
    await send();
    out[name] = "no error";
  } catch (err) {
    out[name] = { name: err.name, code: err.code, statusCode: err.statusCode, recipients: err.recipients };
  }
}
console.log(JSON.stringify(out));
"""


def test_official_node_sdk(api: httpx.Client, base_url: str) -> None:
    import json

    add_fault(api, "postmark", action="error", preset="unauthorized", match={"namespace": "pinned"})
    host = base_url.removeprefix("http://")
    out = json.loads(support.run_node(NODE_SCRIPT, {"PM_HOST": host}))
    assert_accepted(out["sent"], "ops@example.com")
    assert [a["ErrorCode"] for a in out["batch"]] == [0, 300]
    assert_accepted(out["template"], "ada@example.com")
    assert [a["ErrorCode"] for a in out["templates"]] == [0]
    # The SDK raises its own error classes from Postmark's statuses and codes.
    assert out["inactive"] == {
        "name": "InactiveRecipientsError",
        "code": 406,
        "statusCode": 422,
        "recipients": ["gone@inactive.postmark.test"],
    }
    assert out["invalid"]["name"] == "InvalidEmailRequestError" and out["invalid"]["code"] == 300
    assert out["unauthorized"]["name"] == "InvalidAPIKeyError" and out["unauthorized"]["statusCode"] == 401
    assert out["token"] != "no error"  # the SDK refuses an empty token before sending
    assert len(calls(api, to="ops@example.com", subject="from node")) == 1
    assert calls(api, namespace="pinned")[0]["response"]["status"] == 401


# -- the official Python SDK (postmark-python, imported as `postmark`) ------------------------------


def official(base_url: str, token: str = "server-token") -> Any:
    import postmark.sync

    # retries=0: the SDK retries 429 and 5xx answers itself, with back-off.
    return postmark.sync.ServerClient(token, retries=0, base_url=base_url)


def test_official_sdk_sends(api: httpx.Client, base_url: str) -> None:
    with official(base_url) as client:
        sent = client.outbound.send(
            {
                "sender": "Alerts <alerts@example.com>",
                "to": "ops@example.com",
                "subject": "From the official SDK",
                "text_body": "db-1 is down",
                "metadata": {"host": "db-1"},
                "headers": [{"Name": "X-Incident", "Value": "42"}],
                "attachments": [{"Name": "log.txt", "Content": "aGk=", "ContentType": "text/plain"}],
            }
        )
        assert sent.success and sent.to == "ops@example.com" and sent.message == "OK"
        assert str(uuid.UUID(sent.message_id)) == sent.message_id
        templated = client.outbound.send_with_template(
            {
                "sender": "a@example.com",
                "to": "ada@example.com",
                "template_alias": "welcome",
                "template_model": {"n": 1},
            }
        )
        assert templated.success
        batch = client.outbound.send_batch(
            [
                {"sender": "a@example.com", "to": "one@example.com", "subject": "1", "text_body": "1"},
                {"sender": "a@example.com", "to": "two@example.com", "subject": "2", "html_body": "<p>2</p>"},
            ]
        )
        assert [r.to for r in batch] == ["one@example.com", "two@example.com"]
        templates = client.outbound.send_batch_with_template(
            [{"sender": "a@example.com", "to": "t@example.com", "template_id": 7, "template_model": {}}]
        )
        assert templates[0].success
    one, template, many, many_templates = calls(api)
    assert one["path"] == "/email" and one["headers"]["x-postmark-client"] == "postmark-python"
    assert one["data"]["attachments"] == [{"filename": "log.txt", "content_type": "text/plain", "size": 2}]
    assert (template["path"], template["data"]["template_alias"]) == ("/email/withTemplate", "welcome")
    assert (many["path"], many["data"]["to"]) == ("/email/batch", ["one@example.com", "two@example.com"])
    assert many_templates["path"] == "/email/batchWithTemplates"
    assert len(calls(api, to="ops@example.com", subject="official sdk")) == 1


def test_official_sdk_raises_its_exceptions(api: httpx.Client, base_url: str) -> None:
    from postmark.exceptions import (
        InactiveRecipientException,
        RateLimitException,
        ServerException,
        ValidationException,
    )

    with official(base_url) as client:
        with pytest.raises(InactiveRecipientException) as inactive:
            client.outbound.send({"sender": "a@example.com", "to": "gone@inactive.postmark.test", "text_body": "x"})
        assert (inactive.value.error_code, inactive.value.http_status) == (406, 422)
        assert inactive.value.inactive_recipients == ["gone@inactive.postmark.test"]
        with pytest.raises(ValidationException) as invalid:
            client.outbound.send({"sender": "a@example.com", "to": "b@example.com"})  # no body
        assert invalid.value.error_code == 300
        for preset, raised, status in (
            ("rate_limited", RateLimitException, 429),
            ("server_error", ServerException, 500),
            ("unavailable", ServerException, 503),
        ):
            add_fault(api, "postmark", action="error", preset=preset)
            with pytest.raises(raised) as failure:
                client.outbound.send({"sender": "a@example.com", "to": "b@example.com", "text_body": "x"})
            assert failure.value.http_status == status
    # A namespace in the base URL is kept (the SDK's httpx joins paths under it).
    with official(f"{base_url}/ns/sdk-team") as client:
        assert client.outbound.send({"sender": "a@example.com", "to": "b@example.com", "text_body": "x"}).success
    assert len(calls(api, namespace="sdk-team")) == 1


def test_official_sdk_bad_token(pinned: ThreadedHub) -> None:
    from postmark.exceptions import InvalidAPIKeyException

    with official(pinned.url, "pm-wrong") as client, pytest.raises(InvalidAPIKeyException) as raised:
        client.outbound.send({"sender": "a@example.com", "to": "b@example.com", "text_body": "x"})
    assert (raised.value.error_code, raised.value.http_status) == (10, 401)
