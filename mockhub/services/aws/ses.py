"""Amazon SES: the v2 JSON API (`POST /v2/email/outbound-emails`) and the v1 Query API (`POST /`).

v2 takes Simple, Raw and Template content and answers `{"MessageId": ...}`; errors are
`{"message": ...}` with the code in `x-amzn-ErrorType` (`BadRequestException`, ...). v1 takes
`Action=SendEmail | SendRawEmail | SendTemplatedEmail` and answers XML in SES's namespace, errors
as `<ErrorResponse>` (`InvalidParameterValue`, ...). Both need a well-formed SigV4 signature
(`mockhub.services.aws.sigv4`). Raw messages are parsed with the SMTP fake's MIME parser, so every
email lands in `data` with the same keys as an SMTP message (`from`, `to`, `cc`, `bcc`, `subject`,
`text`, `html`, `attachments`). The mailbox simulator's addresses (`bounce@simulator.amazonses.com`,
...) are accepted like any other and their documented outcome is recorded in `data.outcome`.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import orjson

from mockhub.journal import Call
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
    email_summary,
    json_reply,
    route,
    scope_header,
)
from mockhub.services.smtp.mime import parse_message

__all__ = ["SesService"]

NAMESPACE = "http://ses.amazonaws.com/doc/2010-12-01/"
# botocore signs SES (v1 and v2) as `ses`; AWS's own endpoint prefix `email` is accepted too.
SIGNING_NAMES = ("ses", "email")
_MAX_RECIPIENTS = 50
_SIMULATOR = "simulator.amazonses.com"
_SIMULATED = {
    "success": "delivered",
    "bounce": "bounced",
    "complaint": "complained",
    "suppressionlist": "suppressed",
    "ooto": "auto_replied",
}
_TEMPLATE_TAG = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")
_ACTIONS = ("SendEmail", "SendRawEmail", "SendTemplatedEmail", "GetSendQuota")
# The sending quota answered by GetSendQuota (v1) and GetAccount (v2): a production account's defaults.
_QUOTA = {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0}
_THROTTLED = "Maximum sending rate exceeded."
_INTERNAL = "The request processing has failed because of an unknown error, exception or failure."
_UNAVAILABLE = "The request has failed due to a temporary failure of the server."

# Which of the two APIs the current request speaks, so that `error()` (which is not given the
# request: 413, 405, a fault without a preset) answers in that API's shape. Set by the routes'
# `accepts`, which run for every request routed to SES, in the request's own task.
_API: ContextVar[str] = ContextVar("mockhub_ses_api", default="v1")


class SesError(Exception):
    """A send SES refuses: the v1 (Query) code; v2 answers `BadRequestException` unless `v2_code` says."""

    def __init__(self, code: str, message: str, status: int = 400, v2_code: str = "BadRequestException") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.v2_code = v2_code


def _null(field: str) -> SesError:
    return SesError(
        "ValidationError",
        f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null",
    )


def address_problem(address: str) -> str | None:
    """What SES (JavaMail's strict address check) says of a malformed address, None when it passes."""
    spec = address.strip()
    if spec.endswith(">") and "<" in spec:
        spec = spec[spec.rindex("<") + 1 : -1].strip()
    quoted = False
    at = -1
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c == "@":
            at = i
            break
        elif not quoted and (c <= " " or c >= "\x7f"):
            return "Local address contains control or whitespace"
        i += 1
    if at < 0:
        return "Missing final '@domain'"
    domain = spec[at + 1 :]
    if not domain:
        return "Missing domain"
    if any(c <= " " or c >= "\x7f" for c in domain):
        return "Domain contains control or whitespace"
    return None


def _bare(address: str) -> str:
    return email.utils.parseaddr(address)[1].lower() or address.strip().lower()


def simulated_outcome(address: str) -> str:
    """The mailbox simulator's documented outcome for `address`; any other address is delivered."""
    local, _, domain = _bare(address).rpartition("@")
    if domain != _SIMULATOR:
        return "delivered"
    return _SIMULATED.get(local.split("+", 1)[0], "delivered")


def message_id() -> str:
    # SES's ids: the send time in milliseconds (hex), a UUID, and a six-digit suffix.
    return f"0100{int(time.time() * 1000):012x}-{uuid.uuid4()}-000000"


def _render(template: str | None, values: Any) -> str | None:
    """An inline template's `{{name}}` tags filled from TemplateData (missing names render empty)."""
    if template is None:
        return None

    def lookup(m: re.Match[str]) -> str:
        found: Any = values
        for part in m.group(1).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return "" if found is None else str(found)

    return _TEMPLATE_TAG.sub(lookup, template)


class SesService(Service):
    """Amazon SES v2 and v1 sends, validated like SES and recorded as the emails they describe."""

    name = "ses"
    message = True
    label = "Amazon SES"
    color = "#ff9900"
    hosts = ("email.*.amazonaws.com", "email.amazonaws.com")
    urls = {"ses_endpoint": AppUrl(path="", description="endpoint_url for boto3.client('sesv2') and ('ses')")}
    env = (
        EnvVar(name="AWS_ENDPOINT_URL_SES", value="{base}", description="boto3/botocore's SES (v1) endpoint"),
        EnvVar(name="AWS_ENDPOINT_URL_SESV2", value="{base}", description="boto3/botocore's SES v2 endpoint"),
        *q.CREDENTIAL_ENV,
    )
    secret_headers = ("authorization", "x-amz-security-token")
    stub_reply = q.AwsReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        if call.data.get("error") and not call.data.get("from"):
            return f"{call.data.get('action') or call.method} refused: {call.data['error']}"
        if call.data.get("action") in ("GetSendQuota", "GetAccount"):
            return str(call.data["action"])
        return email_summary(call)

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v2/email/outbound-emails", self.send, self.parse_v2, accepts=self._accepts_v2),
            route("GET", "/v2/email/account", self.account, self.parse_account, accepts=self._accepts_v2),
            route(None, "/", self.send, self.parse_v1, accepts=self._accepts_v1),
        ]

    @staticmethod
    def _accepts_v2(scope: Mapping[str, Any]) -> bool:
        _API.set("v2")
        return True

    @staticmethod
    def _accepts_v1(scope: Mapping[str, Any]) -> bool:
        """SES claims `/` when the signature names SES, or an unsigned form POST not addressed to SNS.

        A Query call without a usable signature cannot say which service it is for: SES answers it
        (with the AWS auth error), unless its Host is SNS's (`sns.*.amazonaws.com`).
        """
        service = sigv4.scope_service(scope)
        if service in SIGNING_NAMES:
            _API.set("v1")
            return True
        if service == "sns" or scope.get("method") != "POST":
            return False
        if service is None:
            if (scope_header(scope, b"host") or "").lower().startswith("sns."):
                return False
            content_type = (scope_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
            if content_type not in ("application/x-www-form-urlencoded", ""):
                return False
        _API.set("v1")
        return True

    # -- the two APIs' answers ------------------------------------------------------------------

    @staticmethod
    def _v1_error(code: str, message: str, status: int = 400) -> Reply:
        return q.query_error(NAMESPACE, code, message, status)

    @staticmethod
    def _v2_error(code: str, message: str, status: int = 400) -> Reply:
        rid = q.request_id()
        return json_reply({"message": message}, status, [("x-amzn-errortype", code), ("x-amzn-requestid", rid)])

    def _refuse(self, api: str, exc: SesError, data: dict[str, Any]) -> BadRequest:
        code = exc.code if api == "v1" else exc.v2_code
        reply = self._v1_error(code, exc.message, exc.status) if api == "v1" else self._v2_error(code, exc.message)
        return BadRequest(reply, {**data, "error": code, "message": exc.message})

    def _authorize(self, request: Request, api: str, action: str = "SendEmail") -> sigv4.SigV4:
        try:
            return sigv4.check(request.headers, request.query, SIGNING_NAMES, self.ctx.pinned)
        except sigv4.AuthError as exc:
            if api == "v1":
                reply = self._v1_error(exc.query_code, exc.message, exc.query_status)
                code = exc.query_code
            else:
                reply = self._v2_error(exc.json_code, exc.json_message, exc.json_status)
                code = exc.json_code
            message = exc.message if api == "v1" else exc.json_message
            data: dict[str, Any] = {"api": api, "error": code, "message": message}
            if api == "v2":
                data["action"] = action  # (v1's action is in the body, not read for a refused call)
            raise BadRequest(reply, data) from None

    # -- v1: the Query API ----------------------------------------------------------------------

    def parse_v1(self, request: Request) -> dict[str, Any]:
        signature = self._authorize(request, "v1")
        data: dict[str, Any] = {"api": "v1", "region": signature.region}
        try:
            params = q.request_params(request.method, request.body, request.query_string)
        except q.QueryError as exc:
            raise self._refuse("v1", SesError(exc.code, exc.message, exc.status), data) from None
        action = params.get("Action")
        if not action:
            raise self._refuse("v1", SesError("MissingAction", "Missing Action"), data)
        data["action"] = action
        if action not in _ACTIONS:
            version = params.get("Version", "2010-12-01")
            message = f"Could not find operation {action} for version {version}"
            raise self._refuse("v1", SesError("InvalidAction", message), data)
        if action == "GetSendQuota":
            return data  # nothing to check: a health check's question
        try:
            if action == "SendRawEmail":
                self._v1_raw(params, data)
            else:
                self._v1_simple(params, data, templated=action == "SendTemplatedEmail")
            self._finish(data)
        except SesError as exc:
            raise self._refuse("v1", exc, data) from None
        return data

    def _v1_simple(self, params: Mapping[str, str], data: dict[str, Any], templated: bool) -> None:
        source = params.get("Source")
        if source is None:
            raise _null("source")
        data["from"] = source
        for kind, key in (("to", "ToAddresses"), ("cc", "CcAddresses"), ("bcc", "BccAddresses")):
            data[kind] = q.members(params, f"Destination.{key}") or []
        reply_to = q.members(params, "ReplyToAddresses")
        if reply_to:
            data["reply_to"] = reply_to
        if params.get("ReturnPath"):
            data["return_path"] = params["ReturnPath"]
        if params.get("ConfigurationSetName"):
            data["configuration_set"] = params["ConfigurationSetName"]
        tags = q.member_structs(params, "Tags")
        if tags:
            data["tags"] = {t.get("Name", ""): t.get("Value", "") for t in tags}
        if templated:
            data["content"] = "template"
            if params.get("Template") is None and params.get("TemplateArn") is None:
                raise _null("template")
            if params.get("TemplateData") is None:
                raise _null("templateData")
            data["template"] = params.get("Template") or params.get("TemplateArn")
            data["template_data"] = _template_data(params["TemplateData"])
        else:
            data["content"] = "simple"
            subject = params.get("Message.Subject.Data")
            text, html = params.get("Message.Body.Text.Data"), params.get("Message.Body.Html.Data")
            if subject is None and text is None and html is None:
                raise _null("message")
            if subject is None:
                raise _null("message.subject")
            data.update(subject=subject, text=text, html=html, attachments=[])
        self._check_addresses(data)

    def _v1_raw(self, params: Mapping[str, str], data: dict[str, Any]) -> None:
        data["content"] = "raw"
        encoded = params.get("RawMessage.Data")
        if encoded is None:
            raise _null("rawMessage.data")
        raw = _base64(encoded, "RawMessage.Data")
        self._raw_email(raw, data)
        if params.get("Source"):
            data["source"] = params["Source"]
            data["from"] = data.get("from") or params["Source"]
        destinations = q.members(params, "Destinations")
        if destinations:
            data["rcpt_to"] = destinations
        if params.get("ConfigurationSetName"):
            data["configuration_set"] = params["ConfigurationSetName"]
        tags = q.member_structs(params, "Tags")
        if tags:
            data["tags"] = {t.get("Name", ""): t.get("Value", "") for t in tags}
        self._check_raw(data, bool(params.get("Source")))

    # -- v2: the JSON API -----------------------------------------------------------------------

    def parse_v2(self, request: Request) -> dict[str, Any]:
        signature = self._authorize(request, "v2")
        data: dict[str, Any] = {"api": "v2", "action": "SendEmail", "region": signature.region}
        try:
            body = request.json()
        except ValueError as exc:
            raise self._refuse("v2", SesError("BadRequestException", f"Invalid JSON body: {exc}"), data) from None
        try:
            if not isinstance(body, dict):
                raise SesError("BadRequestException", "The request body must be a JSON object.")
            self._v2_send(body, data)
            self._finish(data)
        except SesError as exc:
            raise self._refuse("v2", exc, data) from None
        return data

    def _v2_send(self, body: dict[str, Any], data: dict[str, Any]) -> None:
        sender = _string(body, "FromEmailAddress")
        if sender is not None:
            data["from"] = sender
        destination = body.get("Destination") or {}
        if not isinstance(destination, dict):
            raise SesError("BadRequestException", "Destination must be an object.")
        for kind, key in (("to", "ToAddresses"), ("cc", "CcAddresses"), ("bcc", "BccAddresses")):
            data[kind] = _strings(destination, key, f"Destination.{key}")
        reply_to = _strings(body, "ReplyToAddresses", "ReplyToAddresses")
        if reply_to:
            data["reply_to"] = reply_to
        for key, field in (
            ("ConfigurationSetName", "configuration_set"),
            ("FeedbackForwardingEmailAddress", "feedback_to"),
        ):
            value = _string(body, key)
            if value is not None:
                data[field] = value
        tags = body.get("EmailTags")
        if tags is not None:
            if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
                raise SesError("BadRequestException", "EmailTags must be a list of {Name, Value} objects.")
            data["tags"] = {str(t.get("Name", "")): str(t.get("Value", "")) for t in tags}
        if isinstance(body.get("ListManagementOptions"), dict):
            data["list_management"] = body["ListManagementOptions"]
        content = body.get("Content")
        if content is None:
            raise SesError("BadRequestException", "Content is required.")
        if not isinstance(content, dict):
            raise SesError("BadRequestException", "Content must be an object.")
        kinds = [k for k in ("Simple", "Raw", "Template") if content.get(k) is not None]
        if len(kinds) != 1:
            raise SesError("BadRequestException", "Content must have exactly one of Simple, Raw or Template.")
        kind = kinds[0]
        part = content[kind]
        if not isinstance(part, dict):
            raise SesError("BadRequestException", f"Content.{kind} must be an object.")
        data["content"] = kind.lower()
        if kind == "Raw":
            encoded = part.get("Data")
            if not isinstance(encoded, str):
                raise SesError("BadRequestException", "Content.Raw.Data is required.")
            envelope = [r for kind in ("to", "cc", "bcc") for r in data[kind]]
            self._raw_email(_base64(encoded, "Content.Raw.Data"), data)
            if envelope:
                # A Destination given with raw content is the envelope; the message's headers stay as written.
                data["rcpt_to"] = envelope
            if sender is not None:
                data["source"] = sender
                data["from"] = data.get("from") or sender
            self._check_raw(data, sender is not None)
            return
        if kind == "Simple":
            subject, text, html = _content(part, "Subject"), None, None
            body_part = part.get("Body")
            if subject is None:
                raise SesError("BadRequestException", "Content.Simple.Subject is required.")
            if not isinstance(body_part, dict):
                raise SesError("BadRequestException", "Content.Simple.Body is required.")
            text, html = _content(body_part, "Text"), _content(body_part, "Html")
            data.update(subject=subject, text=text, html=html)
        else:
            name = part.get("TemplateName") or part.get("TemplateArn")
            inline = part.get("TemplateContent")
            if name is None and not isinstance(inline, dict):
                raise SesError(
                    "BadRequestException", "Content.Template needs TemplateName, TemplateArn or TemplateContent."
                )
            values = _template_data(part.get("TemplateData")) if part.get("TemplateData") is not None else {}
            if name is not None:
                data["template"] = name
            data["template_data"] = values
            if isinstance(inline, dict):
                data.update(
                    subject=_render(_opt_str(inline.get("Subject")), values),
                    text=_render(_opt_str(inline.get("Text")), values),
                    html=_render(_opt_str(inline.get("Html")), values),
                )
        headers = part.get("Headers")
        if isinstance(headers, list) and headers:
            data["headers"] = {str(h.get("Name", "")): str(h.get("Value", "")) for h in headers if isinstance(h, dict)}
        data["attachments"] = _attachments(part.get("Attachments"))
        if sender is None:
            raise SesError("InvalidParameterValue", "Missing required header 'From'.")
        self._check_addresses(data)

    def parse_account(self, request: Request) -> dict[str, Any]:
        signature = self._authorize(request, "v2", "GetAccount")
        return {"api": "v2", "action": "GetAccount", "region": signature.region}

    async def account(self, request: Request) -> Reply:
        """GetAccount: a production account, sending enabled (what start-up health checks look at)."""
        reply = request.stub.reply if request.stub is not None else None
        stubbed = q.AwsReply.model_validate(reply.model_extra or {}) if reply is not None else q.AwsReply()
        if stubbed.error:
            request.data.update(error=stubbed.error, message=stubbed.message or stubbed.error)
            return self._v2_error(stubbed.error, stubbed.message or stubbed.error, stubbed.status or 400)
        account = {
            "DedicatedIpAutoWarmupEnabled": False,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": True,
            "SendQuota": _QUOTA,
            "SendingEnabled": True,
            "SuppressionAttributes": {"SuppressedReasons": []},
        }
        return json_reply(account, headers=[("x-amzn-requestid", q.request_id())])

    # -- what both APIs share -------------------------------------------------------------------

    @staticmethod
    def _raw_email(raw: bytes, data: dict[str, Any]) -> None:
        """A raw message, parsed as the SMTP fake parses one; Bcc from its header, which SES strips."""
        parsed = parse_message(raw)
        bcc = parsed["headers"].get("bcc")
        parsed["bcc"] = [
            address for _, address in email.utils.getaddresses([bcc] if isinstance(bcc, str) else bcc or [])
        ]
        parsed["size"] = len(raw)
        data.update(parsed)

    def _check_raw(self, data: dict[str, Any], has_source: bool) -> None:
        if not has_source and not data.get("from"):
            raise SesError("InvalidParameterValue", "Missing required header 'From'.")
        self._check_addresses(data)

    @staticmethod
    def _check_addresses(data: dict[str, Any]) -> None:
        """Every address SES reads, checked as SES checks them; then the recipients' count."""
        senders = [data[k] for k in ("source", "from") if isinstance(data.get(k), str) and data.get(k)]
        for address in [*senders, *_recipients(data), *data.get("reply_to", [])]:
            problem = address_problem(address)
            if problem is not None:
                raise SesError("InvalidParameterValue", problem)
        recipients = _recipients(data)
        if not recipients:
            raise SesError("InvalidParameterValue", "At least one destination address is required.")
        if len(recipients) > _MAX_RECIPIENTS:
            raise SesError("InvalidParameterValue", f"Recipient count exceeds {_MAX_RECIPIENTS}.")

    @staticmethod
    def _finish(data: dict[str, Any]) -> None:
        """The MessageId, and the mailbox simulator's outcome for each recipient (and for the send)."""
        outcomes = {_bare(r): simulated_outcome(r) for r in _recipients(data)}
        data["outcomes"] = outcomes
        data["outcome"] = next((o for o in outcomes.values() if o != "delivered"), "delivered")
        data["message_id"] = message_id()

    async def send(self, request: Request) -> Reply:
        data = request.data
        api = data.get("api", "v1")
        reply = request.stub.reply if request.stub is not None else None
        stubbed = q.AwsReply.model_validate(reply.model_extra or {}) if reply is not None else q.AwsReply()
        if stubbed.error:
            message = stubbed.message or stubbed.error
            status = stubbed.status or 400
            data.update(error=stubbed.error, message=message)
            if api == "v1":
                return self._v1_error(stubbed.error, message, status)
            return self._v2_error(stubbed.error, message, status)
        if data.get("action") == "GetSendQuota":
            return q.query_result("GetSendQuota", NAMESPACE, _QUOTA)
        if stubbed.message_id:
            data["message_id"] = stubbed.message_id
        if api == "v1":
            return q.query_result(data["action"], NAMESPACE, {"MessageId": data["message_id"]})
        return json_reply({"MessageId": data["message_id"]}, headers=[("x-amzn-requestid", q.request_id())])

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        aws_code = {
            400: "ValidationError",
            403: "AccessDenied",
            404: "NotFound",
            405: "InvalidAction",
            408: "RequestTimeout",
            413: "RequestEntityTooLarge",
            429: "Throttling",
            500: "InternalFailure",
            503: "ServiceUnavailable",
        }.get(status, "InternalFailure" if status >= 500 else "ValidationError")
        if _API.get() == "v2":
            return self._v2_error(
                {429: "TooManyRequestsException", 400: "BadRequestException"}.get(status, aws_code), message, status
            )
        return self._v1_error(aws_code, message, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        v2 = request.path.startswith("/v2/")
        if name == "rate_limited":
            if v2:
                return self._v2_error("TooManyRequestsException", _THROTTLED, 429)
            return self._v1_error("Throttling", _THROTTLED, 400)
        if name == "unauthorized":
            code = "UnrecognizedClientException" if v2 else "InvalidClientTokenId"
            message = "The security token included in the request is invalid."
            return self._v2_error(code, message, 403) if v2 else self._v1_error(code, message, 403)
        code, message, status = {
            "server_error": ("InternalFailure", _INTERNAL, 500),
            "unavailable": ("ServiceUnavailable", _UNAVAILABLE, 503),
            "overloaded": ("ServiceUnavailable", _UNAVAILABLE, 503),
        }[name]
        return self._v2_error(code, message, status) if v2 else self._v1_error(code, message, status)


def _recipients(data: Mapping[str, Any]) -> list[str]:
    """The envelope: a raw send's Destinations when given, else every To, Cc and Bcc."""
    if data.get("rcpt_to"):
        return list(data["rcpt_to"])
    return [r for kind in ("to", "cc", "bcc") for r in data.get(kind) or []]


def _base64(encoded: str, field: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SesError("InvalidParameterValue", f"Value for parameter {field} is not valid base64.") from None


def _template_data(text: Any) -> Any:
    if not isinstance(text, str):
        raise SesError("InvalidParameterValue", "TemplateData must be a JSON object, as a string.")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise SesError("InvalidParameterValue", "Template data must be valid JSON.") from None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _string(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise SesError("BadRequestException", f"{key} must be a string.")
    return value


def _strings(obj: Mapping[str, Any], key: str, field: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SesError("BadRequestException", f"{field} must be a list of strings.")
    return value


def _content(obj: Mapping[str, Any], key: str) -> str | None:
    """`{"Data": ..., "Charset": ...}`'s Data."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("Data"), str):
        raise SesError("BadRequestException", f"{key}.Data is required and must be a string.")
    data: str = value["Data"]
    return data


def _attachments(items: Any) -> list[dict[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise SesError("BadRequestException", "Attachments must be a list.")
    found = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("FileName"), str):
            raise SesError("BadRequestException", f"Attachments[{i}].FileName is required.")
        raw = item.get("RawContent")
        if not isinstance(raw, str):
            raise SesError("BadRequestException", f"Attachments[{i}].RawContent is required.")
        try:
            size = len(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            raise SesError("BadRequestException", f"Attachments[{i}].RawContent is not valid base64.") from None
        found.append(
            {
                "filename": item["FileName"],
                "content_type": item.get("ContentType") or "application/octet-stream",
                "size": size,
                "disposition": (item.get("ContentDisposition") or "ATTACHMENT").lower(),
                "content_id": item.get("ContentId"),
            }
        )
    return found
