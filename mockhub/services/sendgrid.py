"""SendGrid v3 Mail Send: `POST /v3/mail/send` with a Bearer API key.

Answers 202 with an empty body and `X-Message-Id` (200 in sandbox mode), or SendGrid's error list
`{"errors": [{"message", "field", "help"}]}` naming every problem at once, like the real API.
The email lands in `data` with the same keys as an SMTP message (`from`, `to`, `cc`, `bcc`,
`subject`, `text`, `html`, `attachments`), so the `to` / `subject` / `contains` filters find it.

A stub's `outcome` (docs/delivery.md) says how the delivery ends; with a webhook config, the Event
Webhook posts `processed` and then `delivered` / `bounce` / `deferred` / `dropped` / `spamreport`
events, signed with ECDSA P-256 like SendGrid (`X-Twilio-Email-Event-Webhook-Signature` over the
timestamp and body). The public key is served where SendGrid serves it,
`GET /v3/user/webhooks/event/settings/signed`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from mockhub.journal import Call
from mockhub.outbound import outbound_call
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
from mockhub.services.outcomes import OutcomeReply, Result, outcomes_for, record
from mockhub.webhooks_config import WebhookConfig, WebhookSpec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["SendGridService"]

_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _errors(status: int, *errors: tuple[str | None, str, str | None]) -> Reply:
    return json_reply(
        {"errors": [{"message": message, "field": field, "help": help_} for field, message, help_ in errors]}, status
    )


# SendGrid retries a failing Event Webhook "at increasing intervals for up to 24 hours"; these are its steps.
_BACKOFF = (60.0, 300.0, 900.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0)
# The Event Webhook settings' switches and the events they turn on.
_SETTING_EVENTS = {
    "processed": "processed",
    "delivered": "delivered",
    "bounce": "bounce",
    "dropped": "dropped",
    "deferred": "deferred",
    "spam_report": "spamreport",
    "open": "open",
    "click": "click",
}
_BOUNCE_CLASS = {"permanent": "Invalid Address", "transient": "Mailbox Unavailable"}


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
    stub_reply = OutcomeReply
    events = ("processed", "delivered", "bounce", "dropped", "deferred", "spamreport", "open", "click")

    @classmethod
    def summarize(cls, call: Call) -> str:
        return email_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = self.ctx.pinned
        self._signing_key: EllipticCurvePrivateKey | None = None

    def routes(self) -> list[Route]:
        settings = "/v3/user/webhooks/event/settings"
        return [
            route("POST", "/v3/mail/send", self.send, self.parse),
            route("GET PATCH", settings + "/signed", self.public_key, self.parse_settings),
            route("GET PATCH", settings, self.event_settings, self.parse_event_settings),
        ]

    # -- the Event Webhook's signing key ---------------------------------------------------------
    def _key(self) -> EllipticCurvePrivateKey:
        # Made on first use: one key pair per server, as a SendGrid account has one.
        if self._signing_key is None:
            from cryptography.hazmat.primitives.asymmetric import ec

            self._signing_key = ec.generate_private_key(ec.SECP256R1())
        return self._signing_key

    def public_key_b64(self) -> str:
        """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo, no PEM armour."""
        from cryptography.hazmat.primitives import serialization

        der = (
            self._key()
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return base64.b64encode(der).decode()

    def sign(self, timestamp: str, payload: bytes) -> str:
        """SendGrid's signature: ECDSA P-256 / SHA-256 over timestamp + payload, DER, base64."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        signature = self._key().sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def parse_settings(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        data: dict[str, Any] = {"action": "signed_webhook_settings"}
        if request.method == "PATCH":
            try:
                body = request.json()
            except ValueError as exc:
                raise BadRequest(_errors(400, (None, "Bad Request", None)), {**data, "error": "invalid_json"}) from exc
            if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
                raise BadRequest(
                    _errors(400, ("enabled", "enabled must be a boolean", None)), {**data, "error": "invalid_enabled"}
                )
            data["enabled"] = body["enabled"]
        return data

    async def public_key(self, request: Request) -> Reply:
        return json_reply({"public_key": self.public_key_b64()})

    # -- the Event Webhook's settings (SendGrid's own way to set its URL) ------------------------
    def parse_event_settings(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        data: dict[str, Any] = {"action": "event_webhook_settings"}
        if request.method == "PATCH":
            try:
                body = request.json()
            except ValueError as exc:
                raise BadRequest(_errors(400, (None, "Bad Request", None)), {**data, "error": "invalid_json"}) from exc
            if not isinstance(body, dict):
                raise BadRequest(_errors(400, (None, "Bad Request", None)), {**data, "error": "invalid_json"})
            problems = [
                (name, f"{name} must be a boolean", None)
                for name in ("enabled", *_SETTING_EVENTS)
                if name in body and not isinstance(body[name], bool)
            ]
            url = body.get("url")
            if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
                problems.append(("url", "url must be a valid http or https URL", None))
            elif body.get("enabled") and not url:
                problems.append(("url", "a url is required to enable the Event Webhook", None))
            if problems:
                data["errors"] = [message for _, message, _ in problems]
                raise BadRequest(_errors(400, *problems), data)
            data["settings"] = body
        return data

    def _settings_of(self, namespace: str) -> dict[str, Any]:
        config = next((c for c in self.ctx.webhooks.all(namespace, self.name) if c.source == "provider"), None)
        answer: dict[str, Any] = {"enabled": config is not None, "url": config.url if config else ""}
        for name, event in _SETTING_EVENTS.items():
            answer[name] = config is not None and (config.events is None or event in config.events)
        answer.update({"group_resubscribe": False, "group_unsubscribe": False, "unsubscribe": False})
        answer.update({"oauth_client_id": "", "oauth_token_url": ""})
        return answer

    async def event_settings(self, request: Request) -> Reply:
        """GET/PATCH the Event Webhook: a PATCH is a webhook config of this namespace (`source: provider`)."""
        namespace = request.namespace
        wanted = request.data.get("settings")
        if wanted is not None:
            current = self._settings_of(namespace)
            merged = {**current, **{k: v for k, v in wanted.items() if k in current}}
            for config in self.ctx.webhooks.all(namespace, self.name):
                if config.source == "provider":
                    self.ctx.webhooks.remove(config.id)
            if merged["enabled"] and merged["url"]:
                events = [event for name, event in _SETTING_EVENTS.items() if merged[name]]
                spec = WebhookSpec(service=self.name, namespace=namespace, url=merged["url"], events=events)
                self.ctx.webhooks.add(spec, source="provider")
        return json_reply(self._settings_of(namespace))

    # -- the Event Webhook -----------------------------------------------------------------------
    def _report(self, request: Request, results: dict[str, Result]) -> None:
        """Post the message's events to each configured Event Webhook, one batch per step."""
        targets = self.ctx.webhook_targets(self.name, request.namespace)
        if not targets:
            return
        data = request.data
        steps: list[list[dict[str, Any]]] = [[], []]
        for recipient, result in results.items():
            steps[0].append(self._event(data, recipient, "processed"))
            if result.outcome in ("bounced", "undelivered", "failed"):
                bounce_type = "blocked" if result.transient else "bounce"
                steps[1].append(
                    self._event(
                        data,
                        recipient,
                        "bounce",
                        type=bounce_type,
                        reason=result.diagnostic_code,
                        status=result.status,
                        bounce_classification=_BOUNCE_CLASS.get(result.bounce_type or "permanent"),
                    )
                )
            elif result.outcome == "rejected":
                steps[1].append(
                    self._event(data, recipient, "dropped", reason=result.diagnostic_code, status=result.status)
                )
            elif result.outcome == "deferred":
                steps[1].append(self._event(data, recipient, "deferred", response=result.diagnostic_code, attempt="1"))
            else:
                steps[1].append(self._event(data, recipient, "delivered", response="250 OK", tls=1))
                if result.outcome == "complained":
                    steps.append([self._event(data, recipient, "spamreport")])
        delay = self.ctx.settings.webhook_delay_ms / 1000
        for target in targets:
            calls = []
            for batch in steps:
                wanted = [e for e in batch if target.events is None or e["event"] in target.events]
                if wanted:
                    calls.append((self._event_call(request, target, wanted), _BACKOFF))
            self.ctx.outbound.send_steps(calls, delay, self._sign_call)

    def _event(self, data: dict[str, Any], recipient: str, event: str, **fields: Any) -> dict[str, Any]:
        message_id = data["message_id"]
        out: dict[str, Any] = {
            "email": recipient,
            "timestamp": int(time.time()),
            "smtp-id": f"<{message_id}@geopod-ismtpd-1>",
            "event": event,
            "sg_event_id": _message_id(),
            "sg_message_id": f"{message_id}.recvd-mockhub-1-0",
        }
        categories = data.get("categories")
        if isinstance(categories, list) and categories:
            out["category"] = categories
        elif isinstance(categories, str):
            out["category"] = [categories]
        out.update({k: v for k, v in fields.items() if v is not None})
        # custom_args come back as top-level fields of every event (the personalization's win).
        args = dict(data.get("custom_args") or {}) if isinstance(data.get("custom_args"), dict) else {}
        for person in data.get("personalizations") or []:
            if isinstance(person, dict) and isinstance(person.get("custom_args"), dict):
                targets = [
                    w.get("email") for k in ("to", "cc", "bcc") for w in person.get(k) or [] if isinstance(w, dict)
                ]
                if recipient in targets:
                    args.update(person["custom_args"])
        for key, value in args.items():
            out.setdefault(str(key), value)
        return out

    def _sign_call(self, call: Call) -> None:
        """Sign one attempt: the timestamp it is sent at, and the signature over it and the body."""
        timestamp = str(int(time.time()))
        call.headers["x-twilio-email-event-webhook-signature"] = self.sign(timestamp, call.body)
        call.headers["x-twilio-email-event-webhook-timestamp"] = timestamp

    def _event_call(self, request: Request, target: WebhookConfig, events: list[dict[str, Any]]) -> Call:
        body = orjson.dumps(events)
        headers = {"content-type": "application/json", "user-agent": "SendGrid Event API"}
        data = {
            "event": events[0]["event"] if len({e["event"] for e in events}) == 1 else "batch",
            "events": [e["event"] for e in events],
            "recipients": [e["email"] for e in events],
            "message_id": request.data["message_id"],
            "webhook": target.id,
        }
        return outbound_call(self.name, request.namespace, target.url, body, headers, data)

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
        data = request.data
        results = outcomes_for([*data["to"], *data["cc"], *data["bcc"]], request.stub)
        record(data, results)
        self._report(request, results)
        return Reply(202, b"", [("x-message-id", data["message_id"])])

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
