"""The Amazon SES fake, driven with the official `boto3` clients `sesv2` (JSON API) and `ses` (Query API).

Retries are off (`total_max_attempts=1`) wherever a test expects an error, so that botocore's retry
of throttling and 5xx answers does not hide them; one test checks the retry itself.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.message import EmailMessage
from functools import partial
from typing import Any

import boto3
import httpx
import pytest
import support
from botocore.config import Config
from botocore.exceptions import ClientError
from support import add_fault, add_stub, extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="ses")
NO_RETRIES = Config(retries={"total_max_attempts": 1})
SES_NS = "http://ses.amazonaws.com/doc/2010-12-01/"


def client(kind: str, url: str, key: str = "AKIDEXAMPLE", retries: bool = False) -> Any:
    return boto3.client(
        kind,
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id=key,
        aws_secret_access_key="secret",
        config=None if retries else NO_RETRIES,
    )


def simple(**changes: Any) -> dict[str, Any]:
    """A valid SES v2 SendEmail with Simple content."""
    args: dict[str, Any] = {
        "FromEmailAddress": "Alerts <alerts@example.com>",
        "Destination": {"ToAddresses": ["ops@example.com"]},
        "Content": {"Simple": {"Subject": {"Data": "Disk full"}, "Body": {"Text": {"Data": "db-1 is full"}}}},
    }
    args.update(changes)
    return args


def v1_simple(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "Source": "alerts@example.com",
        "Destination": {"ToAddresses": ["ops@example.com"]},
        "Message": {"Subject": {"Data": "Disk full"}, "Body": {"Text": {"Data": "db-1 is full"}}},
    }
    args.update(changes)
    return args


def signed(service: str = "ses", **extra: str) -> dict[str, str]:
    """Headers of a well-formed SigV4 signature (mockhub does not verify it), for raw requests."""
    return {
        "authorization": f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/{service}/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'ab' * 32}",
        "x-amz-date": "20260101T000000Z",
        **extra,
    }


def mime_with_attachment() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Reports <reports@example.com>"
    msg["To"] = "boss@example.com, Dev Team <dev@example.com>"
    msg["Cc"] = "audit@example.com"
    msg["Bcc"] = "archive@example.com"
    msg["Subject"] = "Weekly report"
    msg.set_content("The report is attached.")
    msg.add_alternative("<p>The report is <b>attached</b>.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 weekly\x00\x01", maintype="application", subtype="pdf", filename="report.pdf")
    return msg.as_bytes()


# -- v2 -------------------------------------------------------------------------------------------


def test_v2_simple_send(api: httpx.Client, base_url: str) -> None:
    ses = client("sesv2", base_url)
    answer = ses.send_email(
        **simple(
            Destination={
                "ToAddresses": ["ops@example.com"],
                "CcAddresses": ["cc@example.com"],
                "BccAddresses": ["b@example.com"],
            },
            ReplyToAddresses=["noreply@example.com"],
            ConfigurationSetName="transactional",
            EmailTags=[{"Name": "team", "Value": "db"}],
            Content={
                "Simple": {
                    "Subject": {"Data": "Disk full"},
                    "Body": {"Text": {"Data": "db-1 is full"}, "Html": {"Data": "<p>db-1 is <b>full</b></p>"}},
                    "Headers": [{"Name": "X-Priority", "Value": "1"}],
                    "Attachments": [
                        {"FileName": "df.txt", "RawContent": b"98%", "ContentType": "text/plain"},
                    ],
                }
            },
        )
    )
    message_id = answer["MessageId"]
    assert message_id.startswith("0100") and message_id.endswith("-000000")
    [call] = calls(api)
    assert call["path"] == "/v2/email/outbound-emails"
    assert call["response"]["status"] == 200
    data = call["data"]
    assert data["api"] == "v2" and data["content"] == "simple" and data["region"] == "eu-west-1"
    assert data["from"] == "Alerts <alerts@example.com>"
    assert (data["to"], data["cc"], data["bcc"]) == (["ops@example.com"], ["cc@example.com"], ["b@example.com"])
    assert data["subject"] == "Disk full"
    assert data["text"] == "db-1 is full"
    assert data["html"] == "<p>db-1 is <b>full</b></p>"
    assert data["reply_to"] == ["noreply@example.com"]
    assert data["configuration_set"] == "transactional"
    assert data["tags"] == {"team": "db"}
    assert data["headers"] == {"X-Priority": "1"}
    assert data["attachments"] == [
        {"filename": "df.txt", "content_type": "text/plain", "size": 3, "disposition": "attachment", "content_id": None}
    ]
    assert data["message_id"] == message_id
    assert data["outcome"] == "delivered"
    # The filters that find SMTP mail find it; Bcc recipients count as recipients.
    assert len(calls(api, to="b@example.com", subject="disk full")) == 1
    assert len(calls(api, contains="db-1 is full")) == 1
    assert calls(api, to="nobody@example.com") == []
    assert call["summary"] == "Disk full → ops@example.com, cc@example.com"


def test_v2_raw_mime_with_attachment(api: httpx.Client, base_url: str) -> None:
    raw = mime_with_attachment()
    answer = client("sesv2", base_url).send_email(Content={"Raw": {"Data": raw}})
    [call] = calls(api)
    data = call["data"]
    assert data["message_id"] == answer["MessageId"]
    assert data["content"] == "raw"
    # The SMTP fake's parser: the same keys an SMTP message has.
    assert data["from"] == "Reports <reports@example.com>"
    assert data["to"] == ["boss@example.com", "Dev Team <dev@example.com>"]
    assert data["cc"] == ["audit@example.com"]
    assert data["bcc"] == ["archive@example.com"]
    assert data["subject"] == "Weekly report"
    assert data["text"].strip() == "The report is attached."
    assert data["html"].strip() == "<p>The report is <b>attached</b>.</p>"
    [attachment] = data["attachments"]
    assert attachment["filename"] == "report.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(b"%PDF-1.4 weekly\x00\x01")
    assert data["headers"]["subject"] == "Weekly report"
    assert data["size"] == len(raw)
    assert sorted(data["outcomes"]) == sorted(
        ["boss@example.com", "dev@example.com", "audit@example.com", "archive@example.com"]
    )
    assert len(calls(api, to="dev@example.com", subject="weekly")) == 1


def test_v2_template_content(api: httpx.Client, base_url: str) -> None:
    ses = client("sesv2", base_url)
    ses.send_email(**simple(Content={"Template": {"TemplateName": "welcome", "TemplateData": '{"name": "Ada"}'}}))
    ses.send_email(
        **simple(
            Content={
                "Template": {
                    "TemplateContent": {"Subject": "Hi {{name}}", "Text": "Welcome, {{ name }} of {{team.name}}"},
                    "TemplateData": '{"name": "Ada", "team": {"name": "db"}}',
                }
            }
        )
    )
    named, inline = calls(api)
    assert named["data"]["template"] == "welcome"
    assert named["data"]["template_data"] == {"name": "Ada"}
    assert inline["data"]["subject"] == "Hi Ada"
    assert inline["data"]["text"] == "Welcome, Ada of db"
    assert [c["id"] for c in calls(api, subject="hi ada")] == [inline["id"]]


def test_v2_validation_errors(api: httpx.Client, base_url: str) -> None:
    ses = client("sesv2", base_url)
    cases: list[tuple[dict[str, Any], str]] = [
        (simple(Destination={"ToAddresses": ["not-an-address"]}), "Missing final '@domain'"),
        (simple(FromEmailAddress="ops team@example.com"), "Local address contains control or whitespace"),
        (simple(Destination={"ToAddresses": ["ops@"]}), "Missing domain"),
        (simple(Destination={}), "At least one destination address is required."),
        (simple(Destination={"ToAddresses": [f"u{i}@example.com" for i in range(51)]}), "Recipient count exceeds 50."),
        (
            {"Content": simple()["Content"], "Destination": {"ToAddresses": ["a@example.com"]}},
            "Missing required header 'From'.",
        ),
        ({"Content": {"Raw": {"Data": b"Subject: no sender\r\n\r\nhi"}}}, "Missing required header 'From'."),
    ]
    for args, message in cases:
        with pytest.raises(ses.exceptions.BadRequestException) as raised:
            ses.send_email(**args)
        assert raised.value.response["Error"] == {"Code": "BadRequestException", "Message": message}
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    recorded = calls(api)
    assert len(recorded) == len(cases)
    assert all(c["data"]["error"] == "BadRequestException" and c["response"]["status"] == 400 for c in recorded)
    assert recorded[0]["data"]["to"] == ["not-an-address"]  # what was sent is kept


def test_v2_malformed_json_and_content(api: httpx.Client, base_url: str) -> None:
    url = f"{base_url}/v2/email/outbound-emails"
    headers = signed(**{"content-type": "application/json"})
    r = httpx.post(url, content=b'{"Content": ', headers=headers)
    assert r.status_code == 400
    assert r.headers["x-amzn-errortype"] == "BadRequestException"
    assert r.json()["message"].startswith("Invalid JSON body")
    r = httpx.post(url, json=["not", "an", "object"], headers=headers)
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (400, "BadRequestException")
    r = httpx.post(url, json={"Content": {"Simple": {}, "Raw": {"Data": "eA=="}}}, headers=headers)
    assert r.json() == {"message": "Content must have exactly one of Simple, Raw or Template."}
    r = httpx.post(url, json={"Content": {"Raw": {"Data": "%%% not base64"}}}, headers=headers)
    assert r.json() == {"message": "Value for parameter Content.Raw.Data is not valid base64."}
    assert [c["data"]["error"] for c in calls(api)] == ["BadRequestException"] * 4


# -- v1 -------------------------------------------------------------------------------------------


def test_v1_send_email(api: httpx.Client, base_url: str) -> None:
    ses = client("ses", base_url)
    answer = ses.send_email(
        **v1_simple(
            Destination={"ToAddresses": ["ops@example.com", "dev@example.com"], "BccAddresses": ["audit@example.com"]},
            Message={
                "Subject": {"Data": "Disk full", "Charset": "UTF-8"},
                "Body": {"Text": {"Data": "db-1 is full"}, "Html": {"Data": "<p>db-1</p>"}},
            },
            ReplyToAddresses=["noreply@example.com"],
            Tags=[{"Name": "team", "Value": "db"}],
            ConfigurationSetName="ops",
        )
    )
    [call] = calls(api)
    assert call["path"] == "/"
    data = call["data"]
    assert data["message_id"] == answer["MessageId"]
    assert data["api"] == "v1" and data["action"] == "SendEmail"
    assert data["from"] == "alerts@example.com"
    assert data["to"] == ["ops@example.com", "dev@example.com"]
    assert data["bcc"] == ["audit@example.com"]
    assert (data["subject"], data["text"], data["html"]) == ("Disk full", "db-1 is full", "<p>db-1</p>")
    assert data["reply_to"] == ["noreply@example.com"]
    assert data["tags"] == {"team": "db"}
    assert data["configuration_set"] == "ops"
    # The answer is XML in SES's namespace, with a RequestId.
    body = call["response"]["body"]
    assert body.startswith(f'<SendEmailResponse xmlns="{SES_NS}"><SendEmailResult><MessageId>')
    assert "<ResponseMetadata><RequestId>" in body
    assert answer["ResponseMetadata"]["RequestId"] in body
    assert len(calls(api, to="audit@example.com", subject="disk")) == 1


def test_v1_raw_and_templated(api: httpx.Client, base_url: str) -> None:
    ses = client("ses", base_url)
    raw = mime_with_attachment()
    ses.send_raw_email(RawMessage={"Data": raw}, Destinations=["boss@example.com"], Source="reports@example.com")
    ses.send_templated_email(
        Source="alerts@example.com",
        Destination={"ToAddresses": ["ops@example.com"]},
        Template="outage",
        TemplateData='{"host": "db-1"}',
    )
    rawcall, templated = calls(api)
    assert rawcall["data"]["action"] == "SendRawEmail"
    assert rawcall["data"]["rcpt_to"] == ["boss@example.com"]
    assert rawcall["data"]["source"] == "reports@example.com"
    assert rawcall["data"]["subject"] == "Weekly report"
    assert rawcall["data"]["attachments"][0]["filename"] == "report.pdf"
    assert list(rawcall["data"]["outcomes"]) == ["boss@example.com"]  # the envelope, not the headers
    assert "<SendRawEmailResult>" in rawcall["response"]["body"]
    assert templated["data"]["template"] == "outage"
    assert templated["data"]["template_data"] == {"host": "db-1"}
    assert "<SendTemplatedEmailResult>" in templated["response"]["body"]


def test_v1_validation_errors(api: httpx.Client, base_url: str) -> None:
    ses = client("ses", base_url)
    with pytest.raises(ClientError) as raised:
        ses.send_email(**v1_simple(Source="alerts"))
    assert raised.value.response["Error"] == {
        "Type": "Sender",
        "Code": "InvalidParameterValue",
        "Message": "Missing final '@domain'",
    }
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        ses.send_raw_email(RawMessage={"Data": b"To: a@example.com\r\nSubject: x\r\n\r\nbody"})
    assert raised.value.response["Error"]["Message"] == "Missing required header 'From'."
    with pytest.raises(ClientError) as raised:
        ses.send_email(**v1_simple(Destination={"ToAddresses": []}))
    assert raised.value.response["Error"]["Message"] == "At least one destination address is required."
    # An action this fake does not implement is refused as AWS refuses an unknown one.
    with pytest.raises(ClientError) as raised:
        ses.list_identities()
    assert raised.value.response["Error"]["Code"] == "InvalidAction"
    assert [c["data"]["error"] for c in calls(api)] == ["InvalidParameterValue"] * 3 + ["InvalidAction"]
    body = calls(api)[0]["response"]["body"]
    assert body.startswith(f'<ErrorResponse xmlns="{SES_NS}"><Error><Type>Sender</Type>')


def test_v1_malformed_form(api: httpx.Client, base_url: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = httpx.post(f"{base_url}/", content=b"Action=SendEmail&Source=%FF%FE", headers=signed(**form))
    assert r.status_code == 404  # AWS documents MalformedQueryString as a 404
    assert "<Code>MalformedQueryString</Code>" in r.text
    r = httpx.post(f"{base_url}/", content=b"Version=2010-12-01", headers=signed(**form))
    assert (r.status_code, "<Code>MissingAction</Code>" in r.text) == (400, True)
    r = httpx.post(f"{base_url}/", content=b"Action=SendEmail&just-a-word", headers=signed(**form))
    assert "<Code>MalformedQueryString</Code>" in r.text
    r = httpx.post(f"{base_url}/", content=b"Action=SendRawEmail&RawMessage.Data=%%%", headers=signed(**form))
    assert "is not valid base64" in r.text
    r = httpx.post(f"{base_url}/", data={"Action": "SendEmail", "Version": "2010-12-01"}, headers=signed())
    assert "Value null at &apos;source&apos;" in r.text or "Value null at 'source'" in r.text
    assert len(calls(api)) == 5


# -- both -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sesv2", "ses"])
def test_namespace_root_as_endpoint(api: httpx.Client, base_url: str, kind: str) -> None:
    ses = client(kind, f"{base_url}/ns/mail-team")
    if kind == "sesv2":
        ses.send_email(**simple())
    else:
        ses.send_email(**v1_simple())
    [call] = calls(api, namespace="mail-team")
    assert call["path"] == ("/v2/email/outbound-emails" if kind == "sesv2" else "/")
    assert call["data"]["subject"] == "Disk full"


@pytest.mark.parametrize(
    ("address", "outcome"),
    [
        ("success@simulator.amazonses.com", "delivered"),
        ("bounce@simulator.amazonses.com", "bounced"),
        ("complaint+label@simulator.amazonses.com", "complained"),
        ("suppressionlist@simulator.amazonses.com", "suppressed"),
        ("ooto@simulator.amazonses.com", "auto_replied"),
        ("ops@example.com", "delivered"),
    ],
)
def test_mailbox_simulator(api: httpx.Client, base_url: str, address: str, outcome: str) -> None:
    # The send itself succeeds, as at AWS; the outcome is what the simulator documents.
    client("sesv2", base_url).send_email(**simple(Destination={"ToAddresses": [address]}))
    client("ses", base_url).send_email(**v1_simple(Destination={"ToAddresses": ["ops@example.com", address]}))
    v2, v1 = calls(api)
    assert v2["data"]["outcome"] == outcome
    assert v2["data"]["outcomes"] == {address: outcome}
    assert v1["data"]["outcome"] == outcome
    assert v1["data"]["outcomes"] == {"ops@example.com": "delivered", address: outcome}
    assert v2["data"]["message_id"] and v1["data"]["message_id"]


def test_missing_and_garbled_signatures(api: httpx.Client, base_url: str) -> None:
    v2 = f"{base_url}/v2/email/outbound-emails"
    # No Authorization at all.
    r = httpx.post(v2, json=simple())
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
    assert r.json() == {"message": "Missing Authentication Token"}
    r = httpx.post(f"{base_url}/", data={"Action": "SendEmail"})
    assert r.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token" in r.text
    assert f'xmlns="{SES_NS}"' in r.text
    # Garbage.
    r = httpx.post(v2, json=simple(), headers={"authorization": "Bearer nonsense"})
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "IncompleteSignatureException")
    assert r.json()["message"].startswith("Authorization header requires 'Credential' parameter.")
    r = httpx.post(f"{base_url}/", data={"Action": "SendEmail"}, headers={"authorization": "AWS4-HMAC-SHA256 junk"})
    assert r.status_code == 400
    assert "<Code>IncompleteSignature</Code>" in r.text and "missing equal-sign" in r.text
    # Well-formed, but scoped to another service, or not a signature.
    r = httpx.post(v2, json=simple(), headers=signed("s3"))
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert r.json()["message"].startswith("Credential should be scoped to correct service: 'ses'")
    bad = signed()
    bad["authorization"] = bad["authorization"].replace("ab" * 32, "xyz")
    r = httpx.post(f"{base_url}/", data={"Action": "SendEmail"}, headers=bad)
    assert (r.status_code, "<Code>SignatureDoesNotMatch</Code>" in r.text) == (403, True)
    r = httpx.post(v2, json=simple(), headers={**signed(), "x-amz-date": "yesterday"})
    assert r.json()["message"].startswith("Date must be in ISO-8601 'basic format'")
    codes = [c["data"]["error"] for c in calls(api)]
    assert codes == [
        "MissingAuthenticationTokenException",
        "MissingAuthenticationToken",
        "IncompleteSignatureException",
        "IncompleteSignature",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignatureException",
    ]


def test_root_is_left_to_others_without_a_form(api: httpx.Client, base_url: str) -> None:
    # GET / and a JSON POST to / without a signature are not taken for Query calls: mockhub's own 404.
    assert httpx.get(f"{base_url}/").json()["error"]["code"] == "not_found"
    assert httpx.post(f"{base_url}/", json={"hello": 1}).json()["error"]["code"] == "not_found"
    assert calls(api) == []


@pytest.fixture(scope="module")
def pinned() -> Iterator[ThreadedHub]:
    with extra_hub(credentials="AKIDGOOD") as running:
        yield running


def test_pinned_access_keys(pinned: ThreadedHub) -> None:
    with pytest.raises(ClientError) as raised:
        client("sesv2", pinned.url, key="AKIDWRONG").send_email(**simple())
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as raised:
        client("ses", pinned.url, key="AKIDWRONG").send_email(**v1_simple())
    assert raised.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert client("sesv2", pinned.url, key="AKIDGOOD").send_email(**simple())["MessageId"]


@pytest.mark.parametrize(
    ("preset", "status", "v1_code", "v2_code"),
    [
        ("rate_limited", (400, 429), "Throttling", "TooManyRequestsException"),
        ("server_error", (500, 500), "InternalFailure", "InternalFailure"),
        ("unavailable", (503, 503), "ServiceUnavailable", "ServiceUnavailable"),
        ("unauthorized", (403, 403), "InvalidClientTokenId", "UnrecognizedClientException"),
    ],
)
def test_presets(
    api: httpx.Client, base_url: str, preset: str, status: tuple[int, int], v1_code: str, v2_code: str
) -> None:
    add_fault(api, "ses", preset=preset, times=2)
    v2 = client("sesv2", base_url)
    with pytest.raises(ClientError) as raised:
        v2.send_email(**simple())
    assert raised.value.response["Error"]["Code"] == v2_code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status[1]
    with pytest.raises(ClientError) as raised:
        client("ses", base_url).send_email(**v1_simple())
    assert raised.value.response["Error"]["Code"] == v1_code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status[0]
    if preset == "rate_limited":
        assert raised.value.response["Error"]["Message"] == "Maximum sending rate exceeded."
    faulted = calls(api)
    assert len(faulted) == 2 and all(c["fault"] is not None for c in faulted)
    assert faulted[0]["data"]["subject"] == "Disk full"  # the email is recorded though the answer failed


def test_throttled_send_is_retried_by_botocore(api: httpx.Client, base_url: str) -> None:
    add_fault(api, "ses", preset="rate_limited")  # once
    ses = client("sesv2", base_url, retries=True)
    with pytest.raises(ses.exceptions.TooManyRequestsException):
        client("sesv2", base_url).send_email(**simple())
    add_fault(api, "ses", preset="rate_limited")
    answer = ses.send_email(**simple())
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert [c["response"]["status"] for c in calls(api)] == [429, 429, 200]


def test_fault_without_preset_answers_in_each_apis_shape(api: httpx.Client, base_url: str) -> None:
    add_fault(api, "ses", status=500, times=2)
    with pytest.raises(ClientError) as raised:
        client("sesv2", base_url).send_email(**simple())
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert raised.value.response["Error"]["Message"].startswith("mockhub fault")
    with pytest.raises(ClientError) as raised:
        client("ses", base_url).send_email(**v1_simple())
    assert raised.value.response["Error"]["Code"] == "InternalFailure"
    assert raised.value.response["Error"]["Type"] == "Receiver"


def test_stubs(api: httpx.Client, base_url: str) -> None:
    add_stub(
        api,
        "ses",
        match={"to": "unverified@example.com"},
        reply={"error": "MessageRejected", "message": "Email address is not verified."},
    )
    v2 = client("sesv2", base_url)
    with pytest.raises(v2.exceptions.MessageRejected) as raised:
        v2.send_email(**simple(Destination={"ToAddresses": ["unverified@example.com"]}))
    assert raised.value.response["Error"]["Message"] == "Email address is not verified."
    with pytest.raises(ClientError) as raised:
        client("ses", base_url).send_email(**v1_simple(Destination={"ToAddresses": ["unverified@example.com"]}))
    assert raised.value.response["Error"]["Code"] == "MessageRejected"
    assert v2.send_email(**simple())["MessageId"]  # other recipients are not stubbed
    add_stub(api, "ses", reply={"message_id": "fixed-id"}, times=1)
    assert v2.send_email(**simple())["MessageId"] == "fixed-id"
    stubbed = calls(api)
    assert [c["stub"] is not None for c in stubbed] == [True, True, False, True]
    assert stubbed[0]["data"]["error"] == "MessageRejected"
    assert stubbed[3]["data"]["message_id"] == "fixed-id"
    # A raw response stub answers verbatim.
    add_stub(api, "ses", response={"status": 200, "json": {"MessageId": "raw-stub"}}, times=1)
    assert v2.send_email(**simple())["MessageId"] == "raw-stub"


def test_catalogue_and_env(api: httpx.Client, base_url: str) -> None:
    [info] = [s for s in api.get("/services").json()["services"] if s["name"] == "ses"]
    assert info["label"] == "Amazon SES"
    assert "email.*.amazonaws.com" in info["hosts"]
    assert {"POST /v2/email/outbound-emails", "GET /v2/email/account", "* /"} <= set(info["routes"])
    assert "authorization" in info["secret_headers"]
    assert "message_id" in info["stub_reply"]["properties"]
    from mockhub import MockHub

    env = MockHub(base_url, namespace="team").env()
    assert env["AWS_ENDPOINT_URL_SESV2"] == env["AWS_ENDPOINT_URL_SES"] == f"{base_url}/ns/team"


def test_base64_attachment_sizes_are_decoded(api: httpx.Client, base_url: str) -> None:
    content = {"Simple": {"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}}}
    content["Simple"]["Attachments"] = [{"FileName": "a.bin", "RawContent": base64.b64encode(b"12345").decode()}]
    r = httpx.post(
        f"{base_url}/v2/email/outbound-emails",
        json={
            "FromEmailAddress": "a@example.com",
            "Destination": {"ToAddresses": ["b@example.com"]},
            "Content": content,
        },
        headers=signed(),
    )
    assert r.status_code == 200 and r.json()["MessageId"]
    assert calls(api)[0]["data"]["attachments"][0]["size"] == 5


@pytest.mark.parametrize("kind", ["sesv2", "ses"])
def test_raw_envelope_and_sender_beside_the_headers(api: httpx.Client, base_url: str, kind: str) -> None:
    raw = b"To: list@example.com\r\nSubject: digest\r\n\r\nhello"
    if kind == "sesv2":
        client(kind, base_url).send_email(
            FromEmailAddress="digest@example.com",
            Destination={"ToAddresses": ["one@example.com"], "BccAddresses": ["two@example.com"]},
            Content={"Raw": {"Data": raw}},
        )
    else:
        client(kind, base_url).send_raw_email(
            Source="digest@example.com", Destinations=["one@example.com", "two@example.com"], RawMessage={"Data": raw}
        )
    data = calls(api)[0]["data"]
    assert data["to"] == ["list@example.com"]  # as the message says
    assert data["rcpt_to"] == ["one@example.com", "two@example.com"]  # who it was sent to
    assert data["from"] == data["source"] == "digest@example.com"
    assert list(data["outcomes"]) == ["one@example.com", "two@example.com"]
    assert len(calls(api, to="two@example.com")) == len(calls(api, to="list@example.com")) == 1


def test_the_env_points_boto3_at_the_namespace(
    api: httpx.Client, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mockhub import MockHub

    for name, value in MockHub(base_url, namespace="env-team").env().items():
        monkeypatch.setenv(name, value)
    # No endpoint_url and no credentials in code: boto3 reads AWS_ENDPOINT_URL_SESV2 and the keys.
    session = boto3.session.Session()  # a fresh one: the default session would keep these credentials
    session.client("sesv2", region_name="us-east-1").send_email(**simple())
    session.client("ses", region_name="us-east-1").send_email(**v1_simple())
    assert [c["data"]["api"] for c in calls(api, namespace="env-team")] == ["v2", "v1"]


def test_non_ascii_content_in_both_apis(api: httpx.Client, base_url: str) -> None:
    message = {"Subject": {"Data": "Störung: Café ☕"}, "Body": {"Text": {"Data": "Grüße"}}}
    client("ses", base_url).send_email(**v1_simple(Message=message))
    client("sesv2", base_url).send_email(**simple(Content={"Simple": message}))
    assert [c["data"]["subject"] for c in calls(api)] == ["Störung: Café ☕"] * 2
    assert len(calls(api, subject="café", contains="Grüße")) == 2


def test_quota_for_start_up_health_checks(api: httpx.Client, base_url: str) -> None:
    quota = client("ses", base_url).get_send_quota()
    assert (quota["Max24HourSend"], quota["MaxSendRate"], quota["SentLast24Hours"]) == (50000.0, 14.0, 0.0)
    account = client("sesv2", base_url).get_account()
    assert account["SendingEnabled"] is True and account["ProductionAccessEnabled"] is True
    assert account["SendQuota"]["MaxSendRate"] == 14.0
    assert [c["summary"] for c in calls(api)] == ["GetSendQuota", "GetAccount"]
    # Unsigned, the account answers as any SES v2 call does.
    r = httpx.get(f"{base_url}/v2/email/account")
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "MissingAuthenticationTokenException")
    add_fault(api, "ses", preset="unavailable", match={"path": "/v2/email/account"})
    with pytest.raises(ClientError) as raised:
        client("sesv2", base_url).get_account()
    assert raised.value.response["Error"]["Code"] == "ServiceUnavailable"
