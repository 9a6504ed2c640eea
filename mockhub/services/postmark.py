"""Postmark Email API: `POST /email`, `/email/batch`, `/email/withTemplate`, `/email/batchWithTemplates`.

Authenticated by `X-Postmark-Server-Token` (`POSTMARK_API_TEST` is Postmark's test token: validated,
answered "Test job accepted", recorded with `data.test_mode`). Answers 200
`{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}` (the batch endpoints: a list of
those, a rejected message answered inside the 200 list as `{"ErrorCode", "Message"}`), and errors as
Postmark does: HTTP 422 with an API `ErrorCode` (300 invalid email request, 402 invalid JSON, 403
invalid field, 406 inactive recipient, 410 too many batch messages, 411 forbidden attachment type,
1101/1109/1123 template errors), 401 with ErrorCode 10 for a bad token, 415 without JSON headers.
Recipients at `inactive.postmark.test`, or that hard-bounced at Postmark's `bounce-testing.postmarkapp.com`
(a per-namespace suppression list), are inactive.
Each email lands in `data` with the same keys as an SMTP message (`from`, `to`, `cc`, `bcc`,
`subject`, `text`, `html`, `attachments`), so the `to` / `subject` / `contains` filters find it.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mockhub.journal import Call
from mockhub.rules import Preset
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
)

__all__ = ["PostmarkReply", "PostmarkService"]

TEST_TOKEN = "POSTMARK_API_TEST"
# Recipients at this domain are inactive (as if they had hard-bounced or complained): the fake's
# documented stand-in for Postmark's per-server suppression list.
INACTIVE_DOMAIN = "inactive.postmark.test"
# Postmark's black-hole domain: a message to <BounceType>@ it "bounces" at once (an unknown local part
# is a HardBounce), and a hard bounce puts the address on the suppression list: later sends are 406.
BOUNCE_DOMAIN = "bounce-testing.postmarkapp.com"
_BOUNCE_TYPES = {
    t.lower(): t
    for t in [
        "HardBounce",
        "Transient",
        "Unsubscribe",
        "Subscribe",
        "AutoResponder",
        "AddressChange",
        "DnsError",
        "SpamNotification",
        "OpenRelayTest",
        "Unknown",
        "SoftBounce",
        "VirusNotification",
        "ChallengeVerification",
        "BadEmailAddress",
        "SpamComplaint",
        "ManuallyDeactivated",
        "Unconfirmed",
        "Blocked",
        "SMTPApiError",
        "InboundError",
        "DMARCPolicy",
        "TemplateRenderingFailed",
    ]
}
MAX_RECIPIENTS = 50
MAX_BATCH = 500

_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[\w-]+(\.[\w-]+)+$")
_TRACK_LINKS = ("None", "HtmlAndText", "HtmlOnly", "TextOnly")
# Postmark refuses these attachment extensions (ErrorCode 411).
_FORBIDDEN_EXTENSIONS = frozenset(
    {
        *("vbs", "exe", "bin", "bat", "chm", "com", "cpl", "crt", "hlp", "hta", "inf", "ins", "isp", "jse", "lnk"),
        *("mdb", "pcd", "pif", "reg", "scr", "sct", "shs", "vbe", "vba", "wsf", "wsh", "wsl", "msc", "msi", "msp"),
        "mst",
    }
)
_NO_TOKEN = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either "
    "X-Postmark-Server-Token or X-Postmark-Account-Token."
)
_BAD_TOKEN = "Request does not contain a valid Server token."
_INACTIVE_TAIL = (
    "Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
)

# The string fields of a message, by their lower-case name (Postmark reads keys case-insensitively).
_STRINGS = ("From", "To", "Cc", "Bcc", "Subject", "HtmlBody", "TextBody", "ReplyTo", "Tag", "MessageStream")
_TEMPLATE_FORBIDS = ("Subject", "HtmlBody", "TextBody")
_KNOWN = {
    name.lower(): name
    for name in (
        *_STRINGS,
        "Headers",
        "TrackOpens",
        "TrackLinks",
        "Metadata",
        "Attachments",
        "TemplateId",
        "TemplateAlias",
        "TemplateModel",
        "InlineCss",
    )
}


class PostmarkReply(BaseModel):
    """Postmark's own fields of a stub's `reply`: answer an API error instead of accepting the email."""

    model_config = ConfigDict(extra="forbid")

    error_code: int | None = Field(
        None, description="a Postmark ErrorCode to answer (10: HTTP 401; 406 names the call's recipients; others 422)"
    )
    message: str | None = Field(None, description="the error's Message (default: Postmark's text for the code)")


class Rejected(Exception):
    """One message Postmark would refuse: its ErrorCode, Message and HTTP status (422 unless told)."""

    def __init__(self, code: int, message: str, slug: str, status: int = 422) -> None:
        super().__init__(message)
        self.code, self.message, self.slug, self.status = code, message, slug, status


def _body(code: int, message: str) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message}


def _reply(status: int, code: int, message: str) -> Reply:
    return json_reply(_body(code, message), status)


def _submitted_at() -> str:
    # Postmark's form: seven fractional digits and a zone, e.g. 2014-02-17T07:25:01.4178645-05:00.
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond * 10:07d}Z"


def _invalid_field(name: str) -> Rejected:
    return Rejected(403, f"Invalid request field(s): '{name}'.", "invalid_field")


def _addresses(field: str, value: str | None) -> list[tuple[str, str]]:
    """The (display name, address) pairs of a comma-separated address field; 300 for a bad one."""
    if value is None or not value.strip():
        return []
    found: list[tuple[str, str]] = []
    # getaddresses keeps a quoted display name with a comma in it together, as Postmark does.
    for name, address in email.utils.getaddresses([value]):
        if not name and not address:
            continue  # an empty entry of the list ("a@example.com, , b@example.com")
        if not _ADDRESS.match(address):
            shown = address or value.strip()
            raise Rejected(300, f"Invalid '{field}' address: '{shown}'.", "invalid_email_request")
        found.append((name, address))
    return found


def _inactive_message(addresses: list[str], batch: bool) -> str:
    found = ", ".join(addresses)
    if batch:
        # The batch answer's wording, as Postmark's docs show it for one message of a batch.
        return (
            "You tried to send to a recipient that has been marked as inactive. "
            f"Found inactive addresses: {found}. {_INACTIVE_TAIL} "
        )
    return (
        "You tried to send to recipient(s) that have been marked as inactive. "
        f"Found inactive addresses: {found}. {_INACTIVE_TAIL}"
    )


_DEFAULT_MESSAGES = {
    10: _BAD_TOKEN,
    300: "Invalid email request.",
    402: "Invalid JSON.",
    405: "Not allowed to send.",
    409: "JSON required.",
    410: f"You may only send up to {MAX_BATCH} messages in a single batched request.",
    411: "Attachment file type not allowed.",
    412: "Account is pending.",
    413: "This account is not approved to send email.",
    429: "Rate limit exceeded.",
    1101: "The 'TemplateId' or 'TemplateAlias' associated with this request is not valid or was not found.",
}


class PostmarkService(Service):
    """Validates a send like Postmark's Email API and records the email it describes."""

    name = "postmark"
    message = True
    label = "Postmark"
    color = "#e0a800"
    hosts = ("api.postmarkapp.com",)
    urls = {
        "postmark_base": AppUrl(
            path="", description="the API root (`PostmarkClient(server_token, root_api_url=...)`); mail goes to /email"
        )
    }
    env = (
        EnvVar(name="POSTMARK_API_URL", value="{urls.postmark_base}/"),
        EnvVar(name="POSTMARK_SERVER_TOKEN", value="mockhub-postmark-token"),
    )
    secret_headers = ("x-postmark-server-token", "x-postmark-account-token")
    stub_reply = PostmarkReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        line = email_summary(call)
        template = data.get("template_alias") or data.get("template_id")
        if template is not None and not call.subjects():
            # A templated email's subject is Postmark's to render: name the template instead.
            line = line.replace("(no subject)", f"template {template}", 1)
        messages = data.get("messages")
        if isinstance(messages, list) and data.get("batch"):
            return f"batch of {len(messages)}: {line}"
        return line

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens = self.ctx.pinned
        # Per namespace: the addresses that hard-bounced (at the bounce-testing domain), now inactive.
        self._suppressed: dict[str, set[str]] = {}

    def reset(self, namespace: str | None) -> None:
        if namespace is None:
            self._suppressed.clear()
        else:
            self._suppressed.pop(namespace, None)

    def routes(self) -> list[Route]:
        out: list[Route] = []
        for path, handler, parser in (
            ("/email", self.send, self.parse_single),
            ("/email/batch", self.send, self.parse_batch),
            ("/email/withTemplate", self.send, self.parse_template),
            ("/email/batchWithTemplates", self.send, self.parse_template_batch),
        ):
            # postmarker posts /email/withTemplate/ and /email/batchWithTemplates/: both forms answer.
            out.append(route("POST", path, handler, parser))
            out.append(route("POST", path + "/", handler, parser))
        return out

    # -- the request as a whole ----------------------------------------------------------------

    def _authorize(self, request: Request) -> bool:
        """Checks the token and the JSON headers; True for Postmark's test token."""
        token = (request.headers.get("x-postmark-server-token") or "").strip()
        account = (request.headers.get("x-postmark-account-token") or "").strip()
        if not token:
            raise BadRequest(
                _reply(401, 10, _BAD_TOKEN if account else _NO_TOKEN), {"error": "unauthorized", "error_code": 10}
            )
        if account:
            message = "Please do not include Account API Token for Server API Token calls."
            raise BadRequest(_reply(401, 10, message), {"error": "unauthorized", "error_code": 10})
        test_mode = token == TEST_TOKEN
        if not test_mode and self._tokens is not None and token not in self._tokens:
            raise BadRequest(_reply(401, 10, _BAD_TOKEN), {"error": "unauthorized", "error_code": 10})
        accept = request.headers.get("accept", "").lower()
        # Postmark answers 415 unless the request is JSON and accepts JSON (a wildcard accepts it).
        accepts_json = not accept or any(
            part.split(";")[0].strip() in ("application/json", "application/*", "*/*") for part in accept.split(",")
        )
        if request.content_type != "application/json" or not accepts_json:
            message = "Unsupported Media Type: send 'Content-Type: application/json' and 'Accept: application/json'."
            raise BadRequest(_reply(415, 409, message), {"error": "unsupported_media_type", "error_code": 409})
        return test_mode

    def _json(self, request: Request) -> Any:
        try:
            return request.json()
        except ValueError as exc:
            raise BadRequest(_reply(422, 402, "Invalid JSON."), {"error": "invalid_json", "error_code": 402}) from exc

    def parse_single(self, request: Request) -> dict[str, Any]:
        return self._parse_one(request, template=False)

    def parse_template(self, request: Request) -> dict[str, Any]:
        return self._parse_one(request, template=True)

    def parse_batch(self, request: Request) -> dict[str, Any]:
        test_mode = self._authorize(request)
        body = self._json(request)
        if not isinstance(body, list):
            raise self._refused(_invalid_field("Messages"), {"test_mode": test_mode})
        return self._parse_many(request, body, template=False, test_mode=test_mode)

    def parse_template_batch(self, request: Request) -> dict[str, Any]:
        test_mode = self._authorize(request)
        body = self._json(request)
        messages = {k.lower(): v for k, v in body.items()}.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            raise self._refused(_invalid_field("Messages"), {"test_mode": test_mode})
        return self._parse_many(request, messages, template=True, test_mode=test_mode)

    def _parse_one(self, request: Request, template: bool) -> dict[str, Any]:
        test_mode = self._authorize(request)
        body = self._json(request)
        data: dict[str, Any] = {"test_mode": test_mode}
        try:
            self._message(body, template, data)
            if not test_mode:
                self._check_inactive(data, self._suppressed.get(request.namespace, set()), batch=False)
        except Rejected as exc:
            # What was read before the problem is recorded too (the sender, the recipients).
            for key in ("message_id", "submitted_at"):
                data.pop(key, None)
            raise self._refused(exc, data) from exc
        return data

    def _parse_many(self, request: Request, bodies: list[Any], template: bool, test_mode: bool) -> dict[str, Any]:
        if len(bodies) > MAX_BATCH:
            raise self._refused(Rejected(410, _DEFAULT_MESSAGES[410], "too_many_batch_messages"), {})
        messages: list[dict[str, Any]] = []
        suppressed = self._suppressed.get(request.namespace, set())
        for body in bodies:
            one: dict[str, Any] = {"test_mode": test_mode}
            try:
                self._message(body, template, one)
                if not test_mode:
                    self._check_inactive(one, suppressed, batch=True)
            except Rejected as exc:
                for key in ("message_id", "submitted_at"):
                    one.pop(key, None)
                one.update({"error": exc.slug, "error_code": exc.code, "error_message": exc.message})
            messages.append(one)
        sent = [m for m in messages if "error_code" not in m]
        data: dict[str, Any] = {"batch": True, "test_mode": test_mode, "messages": messages}
        for key in ("to", "cc", "bcc"):
            data[key] = list(dict.fromkeys(a for m in sent for a in m.get(key, [])))
        subjects = list(dict.fromkeys(m["subject"] for m in sent if m.get("subject")))
        if subjects:
            data["subject"] = subjects[0]
            if len(subjects) > 1:
                data["subjects"] = subjects
        for key in ("text", "html"):
            values = [m[key] for m in sent if isinstance(m.get(key), str)]
            if values:
                data[key] = values if len(values) > 1 else values[0]
        senders = list(dict.fromkeys(m["from"] for m in sent if m.get("from")))
        if senders:
            data["from"] = senders[0]
        return data

    @staticmethod
    def _refused(exc: Rejected, data: dict[str, Any]) -> BadRequest:
        return BadRequest(
            _reply(exc.status, exc.code, exc.message),
            {**data, "error": exc.slug, "error_code": exc.code, "error_message": exc.message},
        )

    # -- one message -----------------------------------------------------------------------------

    def _message(self, body: Any, template: bool, data: dict[str, Any]) -> None:
        """Fills one message's `data`; raises Rejected for what Postmark refuses (`data` keeps what was read)."""
        if not isinstance(body, dict):
            raise _invalid_field("Message")
        fields: dict[str, Any] = {}
        for key, value in body.items():
            canonical = _KNOWN.get(str(key).lower())
            if canonical is not None and value is not None:
                fields[canonical] = value
        for name in _STRINGS:
            if name in fields and not isinstance(fields[name], str):
                raise _invalid_field(name)

        senders = _addresses("From", fields.get("From"))
        if not senders:
            raise Rejected(300, f"Invalid 'From' address: '{fields.get('From', '')}'.", "invalid_email_request")
        # Postmark accepts several From addresses and sends from the first.
        sender_name, data["from"] = senders[0]
        if sender_name:
            data["from_name"] = sender_name
        total = 0
        for field in ("To", "Cc", "Bcc"):
            found = _addresses(field, fields.get(field))
            data[field.lower()] = [address for _, address in found]
            total += len(found)
        if "To" in fields:
            data["to_header"] = fields["To"]
        if total == 0:
            raise Rejected(300, "Zero recipients specified", "invalid_email_request")
        if total > MAX_RECIPIENTS:
            raise Rejected(
                300, f"Maximum of {MAX_RECIPIENTS} recipients allowed per email message", "invalid_email_request"
            )
        reply_to = _addresses("ReplyTo", fields.get("ReplyTo"))
        if reply_to:
            data["reply_to"] = [address for _, address in reply_to]

        if template:
            self._template(fields, data)
        else:
            if not fields.get("HtmlBody") and not fields.get("TextBody"):
                raise Rejected(300, "Provide either email TextBody or HtmlBody or both.", "invalid_email_request")
        if fields.get("Subject"):
            data["subject"] = fields["Subject"]
        if fields.get("TextBody"):
            data["text"] = fields["TextBody"]
        if fields.get("HtmlBody"):
            data["html"] = fields["HtmlBody"]
        if fields.get("Tag"):
            data["tag"] = fields["Tag"]
        data["message_stream"] = fields.get("MessageStream") or "outbound"

        if "TrackOpens" in fields:
            if not isinstance(fields["TrackOpens"], bool):
                raise _invalid_field("TrackOpens")
            data["track_opens"] = fields["TrackOpens"]
        if "TrackLinks" in fields:
            if fields["TrackLinks"] not in _TRACK_LINKS:
                raise _invalid_field("TrackLinks")
            data["track_links"] = fields["TrackLinks"]
        if "Headers" in fields:
            data["headers"] = self._headers(fields["Headers"])
        if "Metadata" in fields:
            data["metadata"] = self._metadata(fields["Metadata"])
        data["attachments"] = self._attachments(fields["Attachments"]) if "Attachments" in fields else []
        data["message_id"] = str(uuid.uuid4())
        data["submitted_at"] = _submitted_at()

    @staticmethod
    def _template(fields: dict[str, Any], data: dict[str, Any]) -> None:
        for name in _TEMPLATE_FORBIDS:
            if fields.get(name):
                raise Rejected(
                    1123,
                    "A field was included in the request body that is not allowed when sending with a template: "
                    f"'{name}'.",
                    "template_field_not_allowed",
                )
        template_id, alias = fields.get("TemplateId"), fields.get("TemplateAlias")
        if template_id is not None and (isinstance(template_id, bool) or not isinstance(template_id, int)):
            raise _invalid_field("TemplateId")
        if alias is not None and not isinstance(alias, str):
            raise _invalid_field("TemplateAlias")
        if template_id is None and not alias:
            raise Rejected(1101, _DEFAULT_MESSAGES[1101], "template_not_found")
        model = fields.get("TemplateModel")
        if model is None:
            raise Rejected(1109, "No Template data received: 'TemplateModel' is required.", "no_template_data")
        if not isinstance(model, dict):
            raise _invalid_field("TemplateModel")
        # TemplateId wins when both are given (Postmark's docs).
        if template_id is not None:
            data["template_id"] = template_id
        elif alias:
            data["template_alias"] = alias
        data["template_model"] = model
        inline = fields.get("InlineCss", True)
        if not isinstance(inline, bool):
            raise _invalid_field("InlineCss")
        data["inline_css"] = inline

    @staticmethod
    def _headers(headers: Any) -> dict[str, str]:
        if not isinstance(headers, list):
            raise _invalid_field("Headers")
        found: dict[str, str] = {}
        for header in headers:
            name = header.get("Name") if isinstance(header, dict) else None
            value = header.get("Value") if isinstance(header, dict) else None
            if not isinstance(name, str) or not name or isinstance(value, (dict, list)):
                raise _invalid_field("Headers")
            found[name] = "" if value is None else str(value)
        return found

    @staticmethod
    def _metadata(metadata: Any) -> dict[str, Any]:
        if not isinstance(metadata, dict):
            raise _invalid_field("Metadata")
        seen = {str(k).lower() for k in metadata}
        if (
            len(metadata) > 10
            or len(seen) < len(metadata)
            or any(len(str(k)) > 20 for k in metadata)
            or any(len(str(v)) > 80 for v in metadata.values())
        ):
            raise Rejected(
                300,
                "Invalid metadata content. Field names are limited to 20 characters, values to 80 characters, "
                "and a message may carry at most 10 fields.",
                "invalid_email_request",
            )
        return metadata

    @staticmethod
    def _attachments(attachments: Any) -> list[dict[str, Any]]:
        if not isinstance(attachments, list):
            raise _invalid_field("Attachments")
        found: list[dict[str, Any]] = []
        for attachment in attachments:
            if not isinstance(attachment, dict):
                raise _invalid_field("Attachments")
            name = attachment.get("Name") or ""
            content = attachment.get("Content")
            content_type = attachment.get("ContentType") or "application/octet-stream"
            content_id = attachment.get("ContentID") or None
            if not isinstance(name, str) or not isinstance(content_type, str):
                raise _invalid_field("Attachments")
            if not isinstance(content, str) or not content:
                raise Rejected(300, f"Attachment '{name}' has no Content.", "invalid_email_request")
            try:
                size = len(base64.b64decode(content, validate=True))
            except (binascii.Error, ValueError):
                raise Rejected(
                    300, f"Attachment '{name}' Content is not valid base64.", "invalid_email_request"
                ) from None
            extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            if extension in _FORBIDDEN_EXTENSIONS:
                raise Rejected(411, f"Attachment file type not allowed: '{name}'.", "forbidden_attachment_type")
            entry: dict[str, Any] = {"filename": name, "content_type": content_type, "size": size}
            if isinstance(content_id, str):
                entry["content_id"] = content_id.removeprefix("cid:")
            found.append(entry)
        return found

    @staticmethod
    def _check_inactive(data: dict[str, Any], suppressed: set[str], batch: bool) -> None:
        """Inactive recipients are not sent to; all of them inactive is a 406. Notes the test bounces."""
        recipients = list(dict.fromkeys(a.lower() for key in ("to", "cc", "bcc") for a in data.get(key, [])))
        inactive = [a for a in recipients if a.endswith("@" + INACTIVE_DOMAIN) or a in suppressed]
        header = next((v for k, v in data.get("headers", {}).items() if k.lower() == "x-pm-bounce-type"), None)
        bounces: dict[str, str] = {}
        for address in recipients:
            local, _, domain = address.rpartition("@")
            if domain == BOUNCE_DOMAIN and address not in inactive:
                kind = _BOUNCE_TYPES.get((header or local).replace("_", "").replace("-", "").lower(), "HardBounce")
                # Postmark simulates no spam complaint: it becomes a hard bounce.
                bounces[address] = "HardBounce" if kind == "SpamComplaint" else kind
        if bounces:
            data["bounces"] = bounces
        if not inactive:
            return
        data["inactive"] = inactive
        if len(inactive) == len(recipients):
            raise Rejected(406, _inactive_message(inactive, batch), "inactive_recipient")

    # -- answers ---------------------------------------------------------------------------------

    async def send(self, request: Request) -> Reply:
        data = request.data
        stub = request.stub.reply if request.stub is not None else None
        forced = PostmarkReply.model_validate(stub.model_extra or {}) if stub is not None else PostmarkReply()
        if data.get("batch"):
            reply = self._answer_batch(data, forced)
            for message in data["messages"]:
                self._note_bounces(request.namespace, message)
            return reply
        if forced.error_code is not None:
            code = forced.error_code
            message = forced.message or self._stub_message(code, data, batch=False)
            data.pop("message_id", None)
            data.pop("submitted_at", None)
            status = 401 if code == 10 else 422
            raise BadRequest(
                _reply(status, code, message), {"error": "stubbed", "error_code": code, "error_message": message}
            )
        self._note_bounces(request.namespace, data)
        return json_reply(self._accepted(data, forced.message))

    def _note_bounces(self, namespace: str, data: dict[str, Any]) -> None:
        """A message sent (not refused, not in test mode) whose recipient hard-bounced makes it inactive."""
        if "error_code" in data or data.get("test_mode"):
            return
        for address, kind in data.get("bounces", {}).items():
            if kind == "HardBounce":
                self._suppressed.setdefault(namespace, set()).add(address)

    def _answer_batch(self, data: dict[str, Any], forced: PostmarkReply) -> Reply:
        answers: list[dict[str, Any]] = []
        for message in data["messages"]:
            if forced.error_code is not None and "error_code" not in message:
                code = forced.error_code
                text = forced.message or self._stub_message(code, message, batch=True)
                for key in ("message_id", "submitted_at"):
                    message.pop(key, None)
                message.update({"error": "stubbed", "error_code": code, "error_message": text})
            if "error_code" in message:
                answers.append(_body(message["error_code"], message["error_message"]))
            else:
                answers.append(self._accepted(message, forced.message))
        return json_reply(answers)

    @staticmethod
    def _stub_message(code: int, data: dict[str, Any], batch: bool) -> str:
        if code == 406:
            recipients = [a.lower() for key in ("to", "cc", "bcc") for a in data.get(key, [])]
            return _inactive_message(list(dict.fromkeys(recipients)), batch)
        return _DEFAULT_MESSAGES.get(code, f"Postmark API error {code}.")

    @staticmethod
    def _accepted(data: dict[str, Any], message: str | None) -> dict[str, Any]:
        if message is None:
            if data.get("test_mode"):
                message = "Test job accepted"
            elif data.get("inactive"):
                message = (
                    "Message OK, but will not deliver to these inactive addresses: "
                    f"{', '.join(data['inactive'])}. {_INACTIVE_TAIL}"
                )
            else:
                message = "OK"
        answer: dict[str, Any] = {}
        # Postmark echoes the request's To as given, and leaves it out for a Cc/Bcc-only message.
        if "to_header" in data:
            answer["To"] = data["to_header"]
        answer.update(
            {"SubmittedAt": data["submitted_at"], "MessageID": data["message_id"], "ErrorCode": 0, "Message": message}
        )
        return answer

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        error_code = {401: 10, 422: 300, 429: 429, 500: 500, 503: 100}.get(status, 0)
        return _reply(status, error_code, message)

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            return _reply(429, 429, "Rate limit exceeded. Please slow down and retry.")
        if name == "unauthorized":
            return _reply(401, 10, _BAD_TOKEN)
        if name == "server_error":
            return _reply(500, 500, "Internal server error. The request was not processed; please retry.")
        return _reply(503, 100, "Maintenance: the Postmark API is temporarily unavailable. Please retry later.")
