"""Amazon SNS: the Query API at `POST /` — `Publish` (SMS to a phone number, to a topic or a
target ARN), and `CreateTopic`, `Subscribe`, `ListTopics` and friends, enough for an
application's start-up code.

Answers are XML in SNS's namespace, errors `<ErrorResponse>` with SNS's codes (`InvalidParameter`
with SNS's own messages, such as a phone number that is not E.164). Topics and subscriptions are
kept per namespace (forgotten on `POST /reset`). mockhub provisions nothing: a Publish to a
well-formed topic ARN nobody created is accepted (`data.topic_created` says whether it was).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mockhub.filters import DataFields
from mockhub.journal import Call, default_summary
from mockhub.rules import Preset
from mockhub.services.aws import query as q
from mockhub.services.aws import sigv4
from mockhub.services.base import (
    AppUrl,
    BadRequest,
    EnvVar,
    Reply,
    Request,
    Route,
    Service,
    ServiceContext,
    route,
    scope_header,
)

__all__ = ["SnsService"]

NAMESPACE = "http://sns.amazonaws.com/doc/2010-03-31/"
SIGNING_NAMES = ("sns",)
ACCOUNT = "123456789012"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):(.+)$")
_MAX_MESSAGE = 256 * 1024
_PAGE = 100
_PROTOCOLS = ("http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose")
# Protocols whose subscriptions wait for the endpoint to confirm.
_CONFIRMED_BY_ENDPOINT = ("http", "https", "email", "email-json")
# SetSMSAttributes' account settings, and the values DefaultSMSType takes.
_SMS_SETTINGS = (
    "MonthlySpendLimit",
    "DeliveryStatusIAMRole",
    "DeliveryStatusSuccessSamplingRate",
    "DefaultSenderID",
    "DefaultSMSType",
    "UsageReportS3Bucket",
)
_SMS_TYPES = ("Promotional", "Transactional")
_SMS_ATTRIBUTES = {
    "AWS.SNS.SMS.SenderID": "sender_id",
    "AWS.SNS.SMS.SMSType": "sms_type",
    "AWS.SNS.SMS.MaxPrice": "max_price",
    "AWS.MM.SMS.OriginationNumber": "origination_number",
    "AWS.MM.SMS.EntityId": "entity_id",
    "AWS.MM.SMS.TemplateId": "template_id",
}
_INTERNAL = "Internal Error"
_UNAVAILABLE = "The request has failed due to a temporary failure of the server."


class SnsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _invalid(message: str) -> SnsError:
    return SnsError("InvalidParameter", f"Invalid parameter: {message}")


def _null(name: str) -> SnsError:
    return SnsError(
        "ValidationError",
        f"1 validation error detected: Value null at '{name}' failed to satisfy constraint: Member must not be null",
    )


@dataclass
class Topic:
    arn: str
    name: str
    attributes: dict[str, str]
    tags: dict[str, str]
    subscriptions: list[dict[str, str]] = field(default_factory=list)
    # False for a topic only known from a Subscribe to it: it has subscriptions, but was not created here.
    created: bool = True


@dataclass
class Account:
    """What SNS keeps for one namespace: its topics (by ARN) and its SMS preferences."""

    topics: dict[str, Topic] = field(default_factory=dict)
    sms: dict[str, str] = field(default_factory=dict)

    def created(self, arn: str) -> Topic | None:
        topic = self.topics.get(arn)
        return topic if topic is not None and topic.created else None


class SnsService(Service):
    """Amazon SNS publishes (SMS, topics), validated like SNS, with topics kept per namespace."""

    name = "sns"
    message = True
    label = "Amazon SNS"
    color = "#e8590c"
    hosts = ("sns.*.amazonaws.com", "sns.amazonaws.com")
    urls = {"sns_endpoint": AppUrl(path="", description="endpoint_url for boto3.client('sns')")}
    env = (
        EnvVar(name="AWS_ENDPOINT_URL_SNS", value="{base}", description="boto3/botocore's SNS endpoint"),
        *q.CREDENTIAL_ENV,
    )
    secret_headers = ("authorization", "x-amz-security-token")
    # The form body is percent-encoded: `contains` reads the decoded message (and subject) instead.
    fields = DataFields(to=("to",), text=("message", "subject"), subject=("subject",), files=())
    stub_reply = q.AwsReply

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._accounts: dict[str, Account] = {}  # by namespace
        self._sequence = itertools.count(10_000_000_000_000_000_000)
        self._parsers: dict[str, Callable[[Mapping[str, str], dict[str, Any], str], None]] = {
            "Publish": self._publish,
            "CreateTopic": self._create_topic,
            "Subscribe": self._subscribe,
            "ListTopics": self._list_topics,
            "DeleteTopic": self._delete_topic,
            "GetTopicAttributes": self._known_topic,
            "ListSubscriptionsByTopic": self._known_topic,
            "ListSubscriptions": self._list_topics,
            "Unsubscribe": self._unsubscribe,
            "SetSMSAttributes": self._set_sms_attributes,
            "GetSMSAttributes": self._get_sms_attributes,
            "CheckIfPhoneNumberIsOptedOut": self._check_opted_out,
        }

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        action = data.get("action")
        if data.get("error"):
            return f"{action or call.method} refused: {data['error']}"
        if action == "Publish":
            return f"{'SMS' if data.get('phone_number') else 'Publish'} → {', '.join(data.get('to') or [])}: " + str(
                data.get("message", "")
            )
        if action == "CreateTopic":
            return f"CreateTopic {data.get('topic_name')}"
        if action == "Subscribe":
            return f"Subscribe {data.get('protocol')}:{data.get('endpoint')} → {data.get('topic_arn')}"
        return str(action) if action else default_summary(call)

    def routes(self) -> list[Route]:
        return [route(None, "/", self.answer, self.parse, accepts=self._accepts)]

    @staticmethod
    def _accepts(scope: Mapping[str, Any]) -> bool:
        """SNS claims `/` when the signature names SNS, or (unsigned) when the Host is SNS's."""
        service = sigv4.scope_service(scope)
        if service == "sns":
            return True
        return (
            service is None
            and scope.get("method") == "POST"
            and (scope_header(scope, b"host") or "").lower().startswith("sns.")
        )

    def reset(self, namespace: str | None) -> None:
        if namespace is None:
            self._accounts.clear()
        else:
            self._accounts.pop(namespace, None)

    def _account(self, namespace: str) -> Account:
        account = self._accounts.get(namespace)
        if account is None:
            account = self._accounts[namespace] = Account()
        return account

    # -- parsing: every check, no state changed (a fault may still answer instead) ---------------

    def _refuse(self, exc: SnsError, data: dict[str, Any]) -> BadRequest:
        return BadRequest(
            q.query_error(NAMESPACE, exc.code, exc.message, exc.status),
            {**data, "error": exc.code, "message": exc.message},
        )

    def parse(self, request: Request) -> dict[str, Any]:
        try:
            signature = sigv4.check(request.headers, request.query, SIGNING_NAMES, self.ctx.pinned)
        except sigv4.AuthError as exc:
            reply = q.query_error(NAMESPACE, exc.query_code, exc.message, exc.query_status)
            raise BadRequest(reply, {"error": exc.query_code, "message": exc.message}) from None
        data: dict[str, Any] = {"region": signature.region}
        try:
            try:
                params = q.request_params(request.method, request.body, request.query_string)
            except q.QueryError as exc:
                raise SnsError(exc.code, exc.message, exc.status) from None
            action = params.get("Action")
            if not action:
                raise SnsError("MissingAction", "Missing Action")
            data["action"] = action
            if action not in self._parsers:
                version = params.get("Version", "2010-03-31")
                raise SnsError("InvalidAction", f"Could not find operation {action} for version {version}")
            self._parsers[action](params, data, request.namespace)
        except SnsError as exc:
            raise self._refuse(exc, data) from None
        return data

    def _topic_arn(self, arn: str | None, name: str, region: str) -> str:
        if arn is None:
            raise _null(name[0].lower() + name[1:])
        m = _ARN.match(arn)
        if m is None or m.group(1) != region:
            raise _invalid(name)
        return arn

    def _publish(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        message = params.get("Message")
        if message is None:
            raise _null("message")
        subject = params.get("Subject")
        data["message"] = message
        if subject is not None:
            data["subject"] = subject
            if not subject.strip():
                raise _invalid("Subject")
        if not message:
            raise _invalid("Empty message")
        targets = {k: params[k] for k in ("TopicArn", "TargetArn", "PhoneNumber") if params.get(k)}
        if not targets:
            raise _invalid("TopicArn or TargetArn Reason: no value for required parameter")
        if len(targets) > 1:
            raise _invalid("TopicArn Reason: Only one of TopicArn, TargetArn or PhoneNumber may be specified")
        [(kind, target)] = targets.items()
        data["to"] = [target]
        attributes = self._attributes(params)
        if attributes:
            data["message_attributes"] = attributes
        size = len(message.encode()) + sum(
            len(n.encode()) + len(str(v.get("StringValue") or v.get("BinaryValue") or "").encode())
            for n, v in attributes.items()
        )
        if size > _MAX_MESSAGE:
            raise _invalid("Message too long")
        structure = params.get("MessageStructure")
        if structure is not None:
            data["message_structure"] = structure
        if structure == "json":
            try:
                messages = orjson.loads(message)
            except orjson.JSONDecodeError:
                raise _invalid("Message Structure - JSON message body failed to parse") from None
            if not isinstance(messages, dict) or "default" not in messages:
                raise _invalid("Message Structure - No default entry in JSON message body")
            data["messages"] = messages
        for key, name in (("MessageGroupId", "message_group_id"), ("MessageDeduplicationId", "deduplication_id")):
            if params.get(key):
                data[name] = params[key]
        if kind == "PhoneNumber":
            if not _E164.match(target):
                raise _invalid(f"PhoneNumber Reason: {target} is not valid to publish to")
            data["phone_number"] = target
            for attribute, key in _SMS_ATTRIBUTES.items():
                if attribute in attributes:
                    data[key] = attributes[attribute].get("StringValue")
            # The account's defaults (SetSMSAttributes) apply where the message sets none.
            defaults = self._account(namespace).sms
            for setting, key in (("DefaultSenderID", "sender_id"), ("DefaultSMSType", "sms_type")):
                if data.get(key) is None and setting in defaults:
                    data[key] = defaults[setting]
            sms_type = data.get("sms_type")
            if sms_type is not None and sms_type not in _SMS_TYPES:
                raise SnsError(
                    "ParameterValueInvalid",
                    f"The message attribute 'AWS.SNS.SMS.SMSType' has an invalid value: {sms_type}. "
                    "Valid values are Promotional and Transactional.",
                )
        else:
            arn = self._topic_arn(target, kind, data["region"])
            data["topic_arn" if kind == "TopicArn" else "target_arn"] = arn
            endpoint = kind == "TargetArn" and ":endpoint/" in arn
            if not endpoint:
                data["topic_created"] = self._account(namespace).created(arn) is not None
                fifo = arn.endswith(".fifo")
                if fifo and "message_group_id" not in data:
                    raise _invalid("The MessageGroupId parameter is required for FIFO topics")
                if not fifo and "deduplication_id" in data:
                    raise _invalid(
                        "MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter "
                        "that is not valid for this topic type"
                    )
                if fifo:
                    data["sequence_number"] = str(next(self._sequence))
        data["message_id"] = str(uuid.uuid4())

    @staticmethod
    def _attributes(params: Mapping[str, str]) -> dict[str, dict[str, str]]:
        attributes = q.message_attributes(params)
        for name, value in attributes.items():
            kind = value.get("DataType")
            if not kind:
                raise SnsError(
                    "ParameterValueInvalid",
                    f"The message attribute '{name}' must contain non-empty message attribute type.",
                )
            base = kind.split(".", 1)[0]
            if base not in ("String", "Number", "Binary"):
                raise SnsError(
                    "ParameterValueInvalid",
                    f"The message attribute '{name}' has an invalid message attribute type, the set of supported "
                    "type prefixes is Binary, Number, and String.",
                )
            field = "BinaryValue" if base == "Binary" else "StringValue"
            if not value.get(field):
                raise SnsError(
                    "ParameterValueInvalid",
                    f"The message attribute '{name}' must contain non-empty message attribute value for message "
                    f"attribute type '{kind}'.",
                )
            if base == "Number":
                try:
                    float(value[field])
                except ValueError:
                    raise SnsError(
                        "ParameterValueInvalid", f"Could not cast message attribute '{name}' value to number."
                    ) from None
            if base == "Binary":
                try:
                    base64.b64decode(value[field], validate=True)
                except (binascii.Error, ValueError):
                    raise SnsError(
                        "ParameterValueInvalid", f"The message attribute '{name}' has an invalid binary value."
                    ) from None
        return attributes

    def _create_topic(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        name = params.get("Name")
        if name is None:
            raise _null("name")
        data["topic_name"] = name
        attributes = q.entries(params, "Attributes")
        if attributes:
            data["attributes"] = attributes
        tags = {t.get("Key", ""): t.get("Value", "") for t in q.member_structs(params, "Tags")}
        if tags:
            data["tags"] = tags
        fifo = attributes.get("FifoTopic", "false").lower() == "true"
        base = name[: -len(".fifo")] if name.endswith(".fifo") else name
        if not _TOPIC_NAME.match(base) or name.endswith(".fifo") != fifo:
            raise _invalid("Topic Name")
        arn = f"arn:aws:sns:{data['region']}:{ACCOUNT}:{name}"
        data["topic_arn"] = arn
        data["created"] = self._account(namespace).created(arn) is None

    def _subscribe(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        arn = self._topic_arn(params.get("TopicArn"), "TopicArn", data["region"])
        data["topic_arn"] = arn
        protocol = params.get("Protocol")
        if protocol is None:
            raise _null("protocol")
        data["protocol"] = protocol
        endpoint = params.get("Endpoint")
        if endpoint is not None:
            data["endpoint"] = endpoint
            data["to"] = [endpoint]
        if protocol not in _PROTOCOLS:
            raise _invalid(f"Amazon SNS does not support this protocol string: {protocol}")
        if not endpoint:
            raise _invalid("Endpoint")
        if protocol in ("http", "https") and not endpoint.lower().startswith(f"{protocol}://"):
            raise _invalid("Endpoint must match the specified protocol")
        if protocol in ("email", "email-json") and "@" not in endpoint:
            raise _invalid("Email address")
        if protocol == "sms" and not _E164.match(endpoint):
            raise _invalid(f"SMS endpoint Reason: {endpoint} is not a valid phone number")
        attributes = q.entries(params, "Attributes")
        if attributes:
            data["attributes"] = attributes
        sub_arn = f"{arn}:{uuid.uuid4()}"
        data["subscription_arn"] = sub_arn
        pending = protocol in _CONFIRMED_BY_ENDPOINT
        data["pending_confirmation"] = pending
        returned = pending and params.get("ReturnSubscriptionArn", "false").lower() != "true"
        data["returned_arn"] = "pending confirmation" if returned else sub_arn

    def _list_topics(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        token = params.get("NextToken")
        if token is not None:
            if not token.isdigit():
                raise _invalid("NextToken")
            data["next_token"] = token

    def _delete_topic(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        data["topic_arn"] = self._topic_arn(params.get("TopicArn"), "TopicArn", data["region"])

    def _known_topic(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        arn = self._topic_arn(params.get("TopicArn"), "TopicArn", data["region"])
        data["topic_arn"] = arn
        if self._account(namespace).created(arn) is None:
            raise SnsError("NotFound", "Topic does not exist", 404)

    def _unsubscribe(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        arn = params.get("SubscriptionArn")
        if arn is None:
            raise _null("subscriptionArn")
        data["subscription_arn"] = arn
        m = _ARN.match(arn)
        if m is None or ":" not in m.group(3):
            raise _invalid("SubscriptionArn")

    def _set_sms_attributes(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        attributes = q.entries(params, "attributes")
        data["attributes"] = attributes
        for key, value in attributes.items():
            if key not in _SMS_SETTINGS:
                raise _invalid(f"{key} Reason: is not a valid attribute")
            if key == "DefaultSMSType" and value not in _SMS_TYPES:
                raise _invalid(f"DefaultSMSType Reason: {value} is not a valid value; use Promotional or Transactional")

    def _get_sms_attributes(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        names = q.members(params, "attributes")
        if names:
            data["names"] = names

    def _check_opted_out(self, params: Mapping[str, str], data: dict[str, Any], namespace: str) -> None:
        number = params.get("phoneNumber")
        if number is None:
            raise _null("phoneNumber")
        data["phone_number"] = number
        if not _E164.match(number):
            raise _invalid("PhoneNumber Reason: input incorrectly formatted")

    # -- answering: state changes here, after faults and stubs had their say ----------------------

    async def answer(self, request: Request) -> Reply:
        data = request.data
        reply = request.stub.reply if request.stub is not None else None
        stubbed = q.AwsReply.model_validate(reply.model_extra or {}) if reply is not None else q.AwsReply()
        if stubbed.error:
            message = stubbed.message or stubbed.error
            data.update(error=stubbed.error, message=message)
            return q.query_error(NAMESPACE, stubbed.error, message, stubbed.status or 400)
        action: str = data["action"]
        account = self._account(request.namespace)
        topics = account.topics
        result: dict[str, Any] | None
        if action == "Publish":
            if stubbed.message_id:
                data["message_id"] = stubbed.message_id
            result = {"MessageId": data["message_id"], "SequenceNumber": data.get("sequence_number")}
        elif action == "CreateTopic":
            arn = data["topic_arn"]
            if arn in topics:
                topics[arn].created = True
            else:
                topics[arn] = Topic(
                    arn, data["topic_name"], dict(data.get("attributes") or {}), dict(data.get("tags") or {})
                )
            result = {"TopicArn": arn}
        elif action == "Subscribe":
            arn = data["topic_arn"]
            topic = topics.get(arn)
            data["topic_created"] = topic is not None and topic.created
            if topic is None:
                # Not created here: remembered anyway, so that its subscriptions can be listed.
                topic = topics[arn] = Topic(arn, arn.rsplit(":", 1)[-1], {}, {}, created=False)
            topic.subscriptions.append(
                {
                    "SubscriptionArn": data["returned_arn"],
                    "Owner": ACCOUNT,
                    "Protocol": data["protocol"],
                    "Endpoint": data["endpoint"],
                    "TopicArn": arn,
                }
            )
            result = {"SubscriptionArn": data["returned_arn"]}
        elif action == "ListTopics":
            region = data["region"]
            arns = [arn for arn, topic in topics.items() if topic.created and arn.split(":")[3] == region]
            start = int(data.get("next_token", "0"))
            page = arns[start : start + _PAGE]
            more = start + _PAGE < len(arns)
            result = {"Topics": [{"TopicArn": a} for a in page], "NextToken": str(start + _PAGE) if more else None}
        elif action == "DeleteTopic":
            topics.pop(data["topic_arn"], None)
            result = None
        elif action == "GetTopicAttributes":
            topic = topics[data["topic_arn"]]
            attributes = {
                "TopicArn": topic.arn,
                "Owner": ACCOUNT,
                "DisplayName": "",
                "SubscriptionsConfirmed": str(
                    sum(s["SubscriptionArn"] != "pending confirmation" for s in topic.subscriptions)
                ),
                "SubscriptionsPending": str(
                    sum(s["SubscriptionArn"] == "pending confirmation" for s in topic.subscriptions)
                ),
                "SubscriptionsDeleted": "0",
                **topic.attributes,
            }
            result = {"Attributes": q.XmlMap(attributes)}
        elif action == "ListSubscriptionsByTopic":
            result = {"Subscriptions": list(topics[data["topic_arn"]].subscriptions)}
        elif action == "ListSubscriptions":
            region = data["region"]
            subscriptions = [s for t in topics.values() for s in t.subscriptions if t.arn.split(":")[3] == region]
            start = int(data.get("next_token", "0"))
            more = start + _PAGE < len(subscriptions)
            result = {
                "Subscriptions": subscriptions[start : start + _PAGE],
                "NextToken": str(start + _PAGE) if more else None,
            }
        elif action == "Unsubscribe":
            arn = data["subscription_arn"]
            found = [t for t in topics.values() if any(s["SubscriptionArn"] == arn for s in t.subscriptions)]
            data["subscription_known"] = bool(found)
            for topic in found:
                topic.subscriptions = [s for s in topic.subscriptions if s["SubscriptionArn"] != arn]
            result = None
        elif action == "SetSMSAttributes":
            account.sms.update(data["attributes"])
            result = {}
        elif action == "GetSMSAttributes":
            names = data.get("names")
            chosen = {k: v for k, v in account.sms.items() if names is None or k in names}
            result = {"attributes": q.XmlMap(chosen)}
        else:  # CheckIfPhoneNumberIsOptedOut: nobody has opted out of mockhub
            result = {"isOptedOut": False}
        return q.query_result(action, NAMESPACE, result)

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        aws_code = {
            400: "ValidationError",
            403: "AuthorizationError",
            404: "NotFound",
            405: "InvalidAction",
            408: "RequestTimeout",
            413: "RequestEntityTooLarge",
            429: "Throttling",
            503: "ServiceUnavailable",
        }.get(status, "InternalError" if status >= 500 else "InvalidParameter")
        return q.query_error(NAMESPACE, aws_code, message, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        code, message, status = {
            "rate_limited": ("Throttling", "Rate exceeded", 400),
            "unauthorized": ("InvalidClientTokenId", "The security token included in the request is invalid.", 403),
            "server_error": ("InternalError", _INTERNAL, 500),
            "unavailable": ("ServiceUnavailable", _UNAVAILABLE, 503),
            "overloaded": ("ServiceUnavailable", _UNAVAILABLE, 503),
        }[name]
        return q.query_error(NAMESPACE, code, message, status)
