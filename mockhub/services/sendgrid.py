"""SendGrid v3 Mail Send: `POST /v3/mail/send` with a Bearer API key.

Answers 202 with an empty body and `X-Message-Id` (200 in sandbox mode), or SendGrid's error list
`{"errors": [{"message", "field", "help"}]}` naming every problem at once, like the real API.
The email lands in `data` with the same keys as an SMTP message (`from`, `to`, `cc`, `bcc`,
`subject`, `text`, `html`, `attachments`), so the `to` / `subject` / `contains` filters find it.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from typing import Any

import orjson
from pydantic import Field

from mockhub.journal import Call
from mockhub.rules import Preset
from mockhub.services.base import (
    AppUrl,
    BadRequest,
    Reply,
    Request,
    Route,
    Service,
    Simulated,
    Simulation,
    SimulationContext,
    email_summary,
    json_reply,
    route,
)
from mockhub.services.forms import FormPart, encode_multipart
from mockhub.services.inbound_email import InboundEmail, header_block, mime_message, recorded

__all__ = ["SendGridService"]

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _errors(status: int, *errors: tuple[str | None, str, str | None]) -> Reply:
    return json_reply(
        {"errors": [{"message": message, "field": field, "help": help_} for field, message, help_ in errors]}, status
    )


def _message_id() -> str:
    # SendGrid's ids are 22 URL-safe characters.
    return "".join(_ID_ALPHABET[b & 63] for b in os.urandom(22))


class InboundParse(InboundEmail):
    """An email to a domain whose MX is SendGrid's Inbound Parse, posted to the application's URL."""

    raw: bool = Field(False, description="the 'POST the raw, full MIME message' setting: the source as `email`")
    sender_ip: str = "127.0.0.1"
    spam_score: str = "0.0"
    spf: str = Field("pass", description="the SPF field")


def inbound_parse(body: InboundParse, where: SimulationContext) -> Simulated:
    """The multipart/form-data POST Inbound Parse sends: the parsed fields, or the raw message."""
    msg = mime_message(body)
    domain = body.envelope_to().rpartition("@")[2]
    envelope = {"to": [body.envelope_to()], "from": body.envelope_from()}
    charsets = {"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}
    fields: list[tuple[str, str]] = [("dkim", f"{{@{domain} : pass}}")]
    files: list[FormPart] = []
    if body.raw:
        fields.append(("email", msg.as_string()))
    else:
        fields.append(("headers", header_block(msg)))
        ids = {a.content_id: f"attachment{i}" for i, a in enumerate(body.attachments, 1) if a.content_id}
        if ids:
            fields.append(("content-ids", orjson.dumps(ids).decode()))
        if body.html is not None:
            fields.append(("html", body.html))
            charsets["html"] = "UTF-8"
        if body.text is not None:
            fields.append(("text", body.text))
            charsets["text"] = "UTF-8"
    fields += [("to", ", ".join(body.to)), ("from", body.from_)]
    if body.cc:
        fields.append(("cc", ", ".join(body.cc)))
        charsets["cc"] = "UTF-8"
    fields += [("sender_ip", body.sender_ip), ("spam_report", "")]
    fields += [("envelope", orjson.dumps(envelope).decode())]
    if not body.raw:
        fields.append(("attachments", str(len(body.attachments))))
    fields += [("subject", body.subject), ("spam_score", body.spam_score)]
    if not body.raw and body.attachments:
        info = {}
        for i, a in enumerate(body.attachments, 1):
            entry = {"filename": a.filename, "name": a.filename, "type": a.content_type}
            if a.content_id:
                entry["content-id"] = a.content_id
            info[f"attachment{i}"] = entry
            files.append(FormPart(f"attachment{i}", a.payload(), a.filename, a.content_type))
        fields.append(("attachment-info", orjson.dumps(info).decode()))
    fields += [("charsets", orjson.dumps(charsets).decode()), ("SPF", body.spf)]
    parts = [FormPart(name, value.encode()) for name, value in fields] + files
    content_type, content = encode_multipart(parts)
    headers = {"content-type": content_type, "user-agent": "mockhub (SendGrid Inbound Parse)"}
    data = {**recorded(body, body.text, body.html), "raw": body.raw, "envelope": envelope}
    return Simulated(headers=headers, body=content, data=data)


class SendGridService(Service):
    """Validates a mail send like SendGrid and records the email it describes."""

    name = "sendgrid"
    message = True
    label = "SendGrid"
    color = "#1098ad"
    hosts = ("api.sendgrid.com",)
    urls = {"sendgrid_base": AppUrl(path="", description="the API host (`SendGridAPIClient(host=...)`)")}

    @classmethod
    def summarize(cls, call: Call) -> str:
        return email_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = self.ctx.pinned

    def routes(self) -> list[Route]:
        return [route("POST", "/v3/mail/send", self.send, self.parse)]

    def simulations(self) -> dict[str, Simulation]:
        return {
            "inbound-parse": Simulation(
                "an email received by Inbound Parse, posted as multipart/form-data (parsed fields or raw MIME)",
                InboundParse,
                inbound_parse,
                aliases=("inbound", "inbound-email", "parse"),
            )
        }

    def _authorize(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise BadRequest(_errors(401, (None, "authorization required", None)), {"error": "unauthorized"})
        if self._keys is not None and key.strip() not in self._keys:
            raise BadRequest(
                _errors(401, (None, "The provided authorization grant is invalid, expired, or revoked", None)),
                {"error": "unauthorized"},
            )

    def parse(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        try:
            mail = request.json()
        except ValueError as exc:
            raise BadRequest(_errors(400, (None, "Bad Request", None)), {"error": "invalid_json"}) from exc
        if not isinstance(mail, dict):
            raise BadRequest(_errors(400, (None, "Bad Request", None)), {"error": "invalid_json"})
        problems: list[tuple[str | None, str, str | None]] = []
        data: dict[str, Any] = {"to": [], "cc": [], "bcc": []}

        sender = mail.get("from")
        if not isinstance(sender, dict) or not sender.get("email"):
            problems.append(
                (
                    "from",
                    "The from object must be provided for every email send. It is an object that requires an email "
                    "parameter, but may also contain a name parameter.",
                    f"{_HELP}#message.from",
                )
            )
        elif not isinstance(sender["email"], str) or not _EMAIL.match(sender["email"]):
            problems.append(("from.email", "The from email does not contain a valid address.", f"{_HELP}#message.from"))
        else:
            data["from"] = sender["email"]
            if sender.get("name"):
                data["from_name"] = sender["name"]

        personalizations = mail.get("personalizations")
        subjects: list[str] = []
        if not isinstance(personalizations, list) or not personalizations:
            problems.append(
                (
                    "personalizations",
                    "The personalizations field is required and must have at least one personalization.",
                    f"{_HELP}#-Personalizations-Errors",
                )
            )
            personalizations = []
        for i, person in enumerate(personalizations):
            if not isinstance(person, dict):
                person = {}
            if not isinstance(person.get("to"), list) or not person["to"]:
                problems.append(
                    (
                        f"personalizations.{i}.to",
                        "The to array is required for all personalization objects, and must have at least one "
                        "email object with a valid email address.",
                        f"{_HELP}#message.personalizations.to",
                    )
                )
            for kind in ("to", "cc", "bcc"):
                people = person.get(kind)
                for j, who in enumerate(people if isinstance(people, list) else []):
                    address = who.get("email") if isinstance(who, dict) else None
                    if not isinstance(address, str) or not _EMAIL.match(address):
                        problems.append(
                            (
                                f"personalizations.{i}.{kind}.{j}.email",
                                "Does not contain a valid address.",
                                f"{_HELP}#message.personalizations.{kind}",
                            )
                        )
                    else:
                        data[kind].append(address)
            if isinstance(person.get("subject"), str) and person["subject"]:
                subjects.append(person["subject"])

        template_id = mail.get("template_id")
        subject = mail.get("subject")
        if isinstance(subject, str) and subject:
            data["subject"] = subject
            if len(subjects) < len(personalizations):
                subjects.append(subject)  # the message's own, for personalizations without one
        else:
            if subjects:
                data["subject"] = subjects[0]
            if not template_id and (not subjects or len(subjects) < len(personalizations)):
                problems.append(
                    (
                        "subject",
                        "The subject is required. You can get around this requirement if you use a template with a "
                        "subject defined or if every personalization has a subject defined.",
                        f"{_HELP}#message.subject",
                    )
                )
        sent = list(dict.fromkeys(subjects))
        if sent and sent != [data.get("subject")]:
            # A personalization's subject overrides the message's: the subjects actually sent are
            # what the `subject` filter must find the message by.
            data["subjects"] = sent

        content = mail.get("content")
        if isinstance(content, list) and content:
            for i, block in enumerate(content):
                value = block.get("value") if isinstance(block, dict) else None
                content_type = block.get("type") if isinstance(block, dict) else None
                if not isinstance(value, str) or not value:
                    problems.append(
                        (
                            f"content.{i}.value",
                            "The content value must be a string at least one character in length.",
                            f"{_HELP}#message.content.value",
                        )
                    )
                elif content_type == "text/plain":
                    data.setdefault("text", value)
                elif content_type == "text/html":
                    data.setdefault("html", value)
                elif not isinstance(content_type, str) or not content_type:
                    problems.append(
                        (
                            f"content.{i}.type",
                            "The content type must be provided and must be a string.",
                            f"{_HELP}#message.content.type",
                        )
                    )
        elif not template_id:
            problems.append(
                (
                    "content",
                    "Unless a valid template_id is provided, the content parameter is required. There must be at "
                    "least one defined content block. We typically suggest both text/plain and text/html blocks are "
                    "included, but only one block is required.",
                    f"{_HELP}#message.content",
                )
            )

        attachments = mail.get("attachments")
        if isinstance(attachments, list):
            data["attachments"] = self._attachments(attachments, problems)

        for key in ("template_id", "categories", "custom_args", "send_at", "batch_id", "headers", "asm"):
            if key in mail:
                data[key] = mail[key]
        reply_to = mail.get("reply_to")
        if isinstance(reply_to, dict) and reply_to.get("email"):
            data["reply_to"] = reply_to["email"]
        data["personalizations"] = personalizations
        settings = mail.get("mail_settings")
        sandbox = settings.get("sandbox_mode") if isinstance(settings, dict) else None
        data["sandbox"] = bool(isinstance(sandbox, dict) and sandbox.get("enable"))
        if problems:
            data["errors"] = [message for _, message, _ in problems]
            raise BadRequest(_errors(400, *problems), data)
        data["message_id"] = _message_id()
        return data

    @staticmethod
    def _attachments(
        attachments: list[Any], problems: list[tuple[str | None, str, str | None]]
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for i, attachment in enumerate(attachments):
            attachment = attachment if isinstance(attachment, dict) else {}
            content, filename = attachment.get("content"), attachment.get("filename")
            size = 0
            if not isinstance(content, str) or not content:
                problems.append(
                    (
                        f"attachments.{i}.content",
                        "The attachment content is required.",
                        f"{_HELP}#message.attachments.content",
                    )
                )
            else:
                try:
                    size = len(base64.b64decode(content, validate=True))
                except (binascii.Error, ValueError):
                    problems.append(
                        (
                            f"attachments.{i}.content",
                            "The attachment content must be base64 encoded.",
                            f"{_HELP}#message.attachments.content",
                        )
                    )
            if not isinstance(filename, str) or not filename:
                problems.append(
                    (
                        f"attachments.{i}.filename",
                        "The attachment filename parameter is required.",
                        f"{_HELP}#message.attachments.filename",
                    )
                )
            found.append(
                {
                    "filename": filename,
                    "content_type": attachment.get("type") or "application/octet-stream",
                    "size": size,
                    "disposition": attachment.get("disposition") or "attachment",
                }
            )
        return found

    async def send(self, request: Request) -> Reply:
        # Sandbox mode validates without sending: 200 instead of 202, and no message id.
        if request.data.get("sandbox"):
            return Reply(200, b"", [])
        return Reply(202, b"", [("x-message-id", request.data["message_id"])])

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return _errors(status, (None, message, None))

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            reply = _errors(429, (None, "too many requests", None))
            reset = int(time.time()) + 1
            reply.headers += [
                ("x-ratelimit-limit", "600"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", str(reset)),
                ("retry-after", "1"),
            ]
            return reply
        if name == "unauthorized":
            return _errors(401, (None, "The provided authorization grant is invalid, expired, or revoked", None))
        status, message = {
            "server_error": (500, "internal error"),
            "unavailable": (503, "service unavailable"),
            "overloaded": (503, "service unavailable"),
        }[name]
        return _errors(status, (None, message, None))
