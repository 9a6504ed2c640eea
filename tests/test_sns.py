"""The Amazon SNS fake, driven with the official `boto3` client `sns` (the Query API at `POST /`).

Retries are off (`total_max_attempts=1`) so that botocore's retry of throttling and 5xx answers
does not hide them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import boto3
import httpx
import pytest
import support
from botocore.config import Config
from botocore.exceptions import ClientError
from support import add_fault, add_stub

calls = partial(support.calls, service="sns")
SNS_NS = "http://sns.amazonaws.com/doc/2010-03-31/"
REGION = "us-east-1"


def sns(url: str) -> Any:
    return boto3.client(
        "sns",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def signed(**extra: str) -> dict[str, str]:
    return {
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/sns/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'cd' * 32}",
        "x-amz-date": "20260101T000000Z",
        **extra,
    }


def arn(name: str) -> str:
    return f"arn:aws:sns:{REGION}:123456789012:{name}"


def test_publish_sms(api: httpx.Client, base_url: str) -> None:
    answer = sns(base_url).publish(
        PhoneNumber="+15551234567",
        Message="Your code is 123456",
        MessageAttributes={
            "AWS.SNS.SMS.SenderID": {"DataType": "String", "StringValue": "ACME"},
            "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
            "priority": {"DataType": "Number", "StringValue": "2"},
        },
    )
    [call] = calls(api)
    assert call["path"] == "/"
    data = call["data"]
    assert data["message_id"] == answer["MessageId"]
    assert data["action"] == "Publish"
    assert data["phone_number"] == "+15551234567"
    assert data["to"] == ["+15551234567"]
    assert data["message"] == "Your code is 123456"
    assert data["sender_id"] == "ACME"
    assert data["sms_type"] == "Transactional"
    assert data["message_attributes"]["priority"] == {"DataType": "Number", "StringValue": "2"}
    body = call["response"]["body"]
    assert body.startswith(f'<PublishResponse xmlns="{SNS_NS}"><PublishResult><MessageId>{answer["MessageId"]}')
    assert answer["ResponseMetadata"]["RequestId"] in body
    # The common filters: the phone number is the recipient, the message the text.
    assert len(calls(api, to="+15551234567", contains="code is")) == 1
    assert calls(api, to="+15550000000") == []
    assert call["summary"] == "SMS → +15551234567: Your code is 123456"


@pytest.mark.parametrize("number", ["5551234567", "+0123456", "+1555abc4567", "+1234567890123456", "12"])
def test_phone_numbers_must_be_e164(api: httpx.Client, base_url: str, number: str) -> None:
    client = sns(base_url)
    with pytest.raises(client.exceptions.InvalidParameterException) as raised:
        client.publish(PhoneNumber=number, Message="hi")
    assert raised.value.response["Error"] == {
        "Type": "Sender",
        "Code": "InvalidParameter",
        "Message": f"Invalid parameter: PhoneNumber Reason: {number} is not valid to publish to",
    }
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    [call] = calls(api)
    assert call["data"]["error"] == "InvalidParameter"
    assert call["data"]["to"] == [number]


def test_topics_for_start_up_code(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    topic = client.create_topic(
        Name="alerts", Attributes={"DisplayName": "Alerts"}, Tags=[{"Key": "team", "Value": "db"}]
    )
    assert topic["TopicArn"] == arn("alerts")
    assert client.create_topic(Name="alerts")["TopicArn"] == arn("alerts")  # idempotent
    fifo = client.create_topic(Name="orders.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    assert [t["TopicArn"] for t in client.list_topics()["Topics"]] == [arn("alerts"), fifo]

    email = client.subscribe(TopicArn=topic["TopicArn"], Protocol="email", Endpoint="ops@example.com")
    assert email["SubscriptionArn"] == "pending confirmation"
    queue = client.subscribe(
        TopicArn=topic["TopicArn"], Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:alerts"
    )
    assert queue["SubscriptionArn"].startswith(arn("alerts") + ":")
    returned = client.subscribe(
        TopicArn=topic["TopicArn"], Protocol="https", Endpoint="https://example.com/hook", ReturnSubscriptionArn=True
    )
    assert returned["SubscriptionArn"].startswith(arn("alerts") + ":")
    subscriptions = client.list_subscriptions_by_topic(TopicArn=topic["TopicArn"])["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [
        ("email", "ops@example.com"),
        ("sqs", "arn:aws:sqs:us-east-1:123456789012:alerts"),
        ("https", "https://example.com/hook"),
    ]
    attributes = client.get_topic_attributes(TopicArn=topic["TopicArn"])["Attributes"]
    assert attributes["DisplayName"] == "Alerts"
    assert (attributes["SubscriptionsPending"], attributes["SubscriptionsConfirmed"]) == ("1", "2")

    published = client.publish(TopicArn=topic["TopicArn"], Message="db-1 down", Subject="Outage")
    ordered = client.publish(TopicArn=fifo, Message="order 7", MessageGroupId="orders", MessageDeduplicationId="7")
    assert ordered["SequenceNumber"]
    target = client.publish(TargetArn=arn("endpoint/APNS/app/1234"), Message="push")
    assert published["MessageId"] and target["MessageId"]
    publishes = calls(api, path="/", contains="db-1 down")
    [call] = publishes
    assert call["data"]["topic_arn"] == arn("alerts")
    assert call["data"]["topic_created"] is True
    assert call["data"]["subject"] == "Outage"
    assert len(calls(api, subject="outage")) == 1

    client.delete_topic(TopicArn=fifo)
    assert [t["TopicArn"] for t in client.list_topics()["Topics"]] == [arn("alerts")]
    with pytest.raises(client.exceptions.NotFoundException) as raised:
        client.get_topic_attributes(TopicArn=fifo)
    assert raised.value.response["Error"]["Message"] == "Topic does not exist"


def test_publish_to_a_topic_nobody_created(api: httpx.Client, base_url: str) -> None:
    # mockhub provisions nothing: a well-formed ARN is accepted, and the call says it was unknown.
    sns(base_url).publish(TopicArn=arn("made-by-terraform"), Message="hello")
    assert calls(api)[0]["data"]["topic_created"] is False


def test_topics_are_kept_per_namespace_and_reset(api: httpx.Client, base_url: str) -> None:
    a, b = sns(f"{base_url}/ns/team-a"), sns(f"{base_url}/ns/team-b")
    a.create_topic(Name="alerts")
    assert [t["TopicArn"] for t in a.list_topics()["Topics"]] == [arn("alerts")]
    assert b.list_topics()["Topics"] == []
    assert len(calls(api, namespace="team-a")) == 2
    api.post("/reset", params={"namespace": "team-a"}).raise_for_status()
    assert a.list_topics()["Topics"] == []


def test_list_topics_pages(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    for i in range(105):
        client.create_topic(Name=f"t{i:03}")
    first = client.list_topics()
    assert len(first["Topics"]) == 100 and first["NextToken"]
    second = client.list_topics(NextToken=first["NextToken"])
    assert [t["TopicArn"] for t in second["Topics"]] == [arn(f"t{i:03}") for i in range(100, 105)]
    assert "NextToken" not in second


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda c: c.publish(TopicArn=arn("a"), Message=""), "InvalidParameter", "Invalid parameter: Empty message"),
        (
            lambda c: c.publish(Message="x"),
            "InvalidParameter",
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
        ),
        (lambda c: c.publish(TopicArn="not-an-arn", Message="x"), "InvalidParameter", "Invalid parameter: TopicArn"),
        (
            lambda c: c.publish(TopicArn=arn("o.fifo"), Message="x"),
            "InvalidParameter",
            "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
        ),
        (
            lambda c: c.publish(TopicArn=arn("a"), Message="{", MessageStructure="json"),
            "InvalidParameter",
            "Invalid parameter: Message Structure - JSON message body failed to parse",
        ),
        (
            lambda c: c.publish(TopicArn=arn("a"), Message='{"sms": "x"}', MessageStructure="json"),
            "InvalidParameter",
            "Invalid parameter: Message Structure - No default entry in JSON message body",
        ),
        (
            lambda c: c.publish(TopicArn=arn("a"), Message="x" * (256 * 1024 + 1)),
            "InvalidParameter",
            "Invalid parameter: Message too long",
        ),
        (
            lambda c: c.publish(
                TopicArn=arn("a"), Message="x", MessageAttributes={"k": {"DataType": "Text", "StringValue": "v"}}
            ),
            "ParameterValueInvalid",
            "The message attribute 'k' has an invalid message attribute type, the set of supported type prefixes "
            "is Binary, Number, and String.",
        ),
        (
            lambda c: c.publish(
                TopicArn=arn("a"), Message="x", MessageAttributes={"n": {"DataType": "Number", "StringValue": "many"}}
            ),
            "ParameterValueInvalid",
            "Could not cast message attribute 'n' value to number.",
        ),
        (lambda c: c.create_topic(Name="bad name!"), "InvalidParameter", "Invalid parameter: Topic Name"),
        (lambda c: c.create_topic(Name="orders.fifo"), "InvalidParameter", "Invalid parameter: Topic Name"),
        (
            lambda c: c.subscribe(TopicArn=arn("a"), Protocol="carrier-pigeon", Endpoint="x"),
            "InvalidParameter",
            "Invalid parameter: Amazon SNS does not support this protocol string: carrier-pigeon",
        ),
        (
            lambda c: c.subscribe(TopicArn=arn("a"), Protocol="https", Endpoint="http://example.com"),
            "InvalidParameter",
            "Invalid parameter: Endpoint must match the specified protocol",
        ),
    ],
)
def test_validation_errors(api: httpx.Client, base_url: str, call: Any, code: str, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        call(sns(base_url))
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["Error"]["Message"] == message
    [recorded] = calls(api)
    assert recorded["data"]["error"] == code
    assert recorded["response"]["status"] == 400
    assert f'<ErrorResponse xmlns="{SNS_NS}">' in recorded["response"]["body"]


def test_missing_and_garbled_signatures(api: httpx.Client, base_url: str) -> None:
    sns_host = {"host": "sns.us-east-1.amazonaws.com"}
    # Unsigned: the Host says which service is meant.
    r = httpx.post(f"{base_url}/", data={"Action": "Publish"}, headers=sns_host)
    assert r.status_code == 403
    assert f'<ErrorResponse xmlns="{SNS_NS}">' in r.text
    assert "<Code>MissingAuthenticationToken</Code>" in r.text
    r = httpx.post(f"{base_url}/", data={"Action": "Publish"}, headers={**sns_host, "authorization": "garbage"})
    assert r.status_code == 400 and "<Code>IncompleteSignature</Code>" in r.text
    # Signed for SNS but garbled further on: still SNS's to answer.
    r = httpx.post(
        f"{base_url}/",
        data={"Action": "Publish"},
        headers={"authorization": "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sns/aws4_request"},
    )
    assert r.status_code == 400 and "Authorization header requires 'Signature' parameter." in r.text
    r = httpx.post(f"{base_url}/", data={"Action": "Publish"}, headers={**signed(), "x-amz-date": "20250101T000000Z"})
    assert r.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in r.text
    assert "Date in Credential scope does not match" in r.text
    assert [c["data"]["error"] for c in calls(api)] == [
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "IncompleteSignature",
        "SignatureDoesNotMatch",
    ]


def test_malformed_form(api: httpx.Client, base_url: str) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = httpx.post(f"{base_url}/", content=b"Action=Publish&Message=%C3%28&what", headers=signed(**form))
    assert r.status_code == 404 and "<Code>MalformedQueryString</Code>" in r.text
    r = httpx.post(f"{base_url}/", content=b"", headers=signed(**form))
    assert r.status_code == 400 and "<Code>MissingAction</Code>" in r.text
    r = httpx.post(f"{base_url}/", data={"Action": "Publish", "PhoneNumber": "+15551234567"}, headers=signed())
    assert "Value null at &apos;message&apos;" in r.text or "Value null at 'message'" in r.text
    r = httpx.post(f"{base_url}/", data={"Action": "OptInPhoneNumber"}, headers=signed())
    assert "<Code>InvalidAction</Code>" in r.text
    assert len(calls(api)) == 4


@pytest.mark.parametrize(
    ("preset", "status", "code"),
    [
        ("rate_limited", 400, "Throttling"),
        ("server_error", 500, "InternalError"),
        ("unavailable", 503, "ServiceUnavailable"),
        ("unauthorized", 403, "InvalidClientTokenId"),
    ],
)
def test_presets(api: httpx.Client, base_url: str, preset: str, status: int, code: str) -> None:
    add_fault(api, "sns", preset=preset)
    with pytest.raises(ClientError) as raised:
        sns(base_url).publish(PhoneNumber="+15551234567", Message="hi")
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    [call] = calls(api)
    assert call["fault"] is not None and call["data"]["phone_number"] == "+15551234567"
    assert sns(base_url).publish(PhoneNumber="+15551234567", Message="hi")["MessageId"]  # the fault fired once


def test_a_failed_create_topic_creates_nothing(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    add_fault(api, "sns", preset="server_error", match={"data": {"action": "CreateTopic"}})
    with pytest.raises(client.exceptions.InternalErrorException):
        client.create_topic(Name="alerts")
    assert client.list_topics()["Topics"] == []


def test_stubs(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    add_stub(
        api,
        "sns",
        match={"to": "+15550000000"},
        reply={"error": "InvalidParameter", "message": "Invalid parameter: PhoneNumber Reason: opted out"},
    )
    with pytest.raises(client.exceptions.InvalidParameterException) as raised:
        client.publish(PhoneNumber="+15550000000", Message="hi")
    assert raised.value.response["Error"]["Message"] == "Invalid parameter: PhoneNumber Reason: opted out"
    add_stub(api, "sns", reply={"message_id": "fixed-id"}, times=1)
    assert client.publish(PhoneNumber="+15551234567", Message="hi")["MessageId"] == "fixed-id"
    stubbed, fixed = calls(api)
    assert stubbed["stub"] is not None and stubbed["data"]["error"] == "InvalidParameter"
    assert fixed["data"]["message_id"] == "fixed-id"


def test_ses_and_sns_share_the_root(api: httpx.Client, base_url: str) -> None:
    # Both Query APIs answer POST /; the SigV4 scope tells them apart.
    ses = boto3.client(
        "ses",
        endpoint_url=base_url,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    ses.send_email(
        Source="a@example.com",
        Destination={"ToAddresses": ["b@example.com"]},
        Message={"Subject": {"Data": "s"}, "Body": {"Text": {"Data": "t"}}},
    )
    sns(base_url).publish(PhoneNumber="+15551234567", Message="hi")
    assert [c["service"] for c in support.calls(api)] == ["ses", "sns"]


def test_catalogue_and_env(api: httpx.Client, base_url: str) -> None:
    [info] = [s for s in api.get("/services").json()["services"] if s["name"] == "sns"]
    assert info["label"] == "Amazon SNS" and "sns.*.amazonaws.com" in info["hosts"]
    from mockhub import MockHub

    env = MockHub(base_url, namespace="team").env()
    assert env["AWS_ENDPOINT_URL_SNS"] == f"{base_url}/ns/team"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]  # boto3 signs nothing without


def test_query_api_over_get(api: httpx.Client, base_url: str) -> None:
    # The Query protocol also takes its parameters in a GET's query string.
    sns(base_url).create_topic(Name="alerts")
    r = httpx.get(f"{base_url}/", params={"Action": "ListTopics", "Version": "2010-03-31"}, headers=signed())
    assert r.status_code == 200
    assert f"<TopicArn>{arn('alerts')}</TopicArn>" in r.text
    r = httpx.put(f"{base_url}/", params={"Action": "ListTopics"}, headers=signed())
    assert r.status_code == 400 and "<Code>InvalidAction</Code>" in r.text


def test_throttled_exception_by_stub(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    add_stub(api, "sns", reply={"error": "Throttled", "status": 429, "message": "Rate exceeded"}, times=1)
    with pytest.raises(client.exceptions.ThrottledException) as raised:
        client.publish(PhoneNumber="+15551234567", Message="hi")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_sms_settings_and_subscriptions_admin(api: httpx.Client, base_url: str) -> None:
    client = sns(base_url)
    client.set_sms_attributes(attributes={"DefaultSMSType": "Transactional", "DefaultSenderID": "ACME"})
    assert client.get_sms_attributes()["attributes"] == {"DefaultSMSType": "Transactional", "DefaultSenderID": "ACME"}
    assert client.get_sms_attributes(attributes=["DefaultSenderID"])["attributes"] == {"DefaultSenderID": "ACME"}
    # The account's defaults apply to an SMS that sets none; the message's own attributes win.
    client.publish(PhoneNumber="+15551234567", Message="a")
    client.publish(
        PhoneNumber="+15551234567",
        Message="b",
        MessageAttributes={"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Promotional"}},
    )
    first, second = calls(api)[-2:]
    assert (first["data"]["sms_type"], first["data"]["sender_id"]) == ("Transactional", "ACME")
    assert second["data"]["sms_type"] == "Promotional"
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.set_sms_attributes(attributes={"DefaultSMSType": "Urgent"})
    assert client.check_if_phone_number_is_opted_out(phoneNumber="+15551234567")["isOptedOut"] is False

    topic = client.create_topic(Name="alerts")["TopicArn"]
    queue = client.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q")
    client.subscribe(TopicArn=arn("not-created"), Protocol="sms", Endpoint="+15551234567")
    assert {s["TopicArn"] for s in client.list_subscriptions()["Subscriptions"]} == {topic, arn("not-created")}
    # A topic only subscribed to is not listed as created.
    assert [t["TopicArn"] for t in client.list_topics()["Topics"]] == [topic]
    client.unsubscribe(SubscriptionArn=queue["SubscriptionArn"])
    assert client.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
    assert calls(api)[-2]["data"]["subscription_known"] is True
