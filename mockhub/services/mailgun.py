"""Mailgun Messages API: `POST /v3/{domain}/messages` (and `messages.mime`), Basic auth `api:<key>`.

Takes `application/x-www-form-urlencoded` or `multipart/form-data` (attachments), answers 200
`{"id": "<...@domain>", "message": "Queued. Thank you."}`, errors as `{"message": ...}` (401 is the
plain text `Forbidden`, as Mailgun sends it). The email lands in `data` with the same keys as an
SMTP message, so the `to` / `subject` / `contains` filters find it.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import hashlib
import hmac
import os
import re
import secrets
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, Field

from mockhub.filters import DataFields
from mockhub.journal import Call
from mockhub.rules import Preset
from mockhub.services.base import (
    AppUrl,
    Attachment,
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
    text_reply,
)
from mockhub.services.forms import FormPart, MultipartError, encode_multipart, parse_multipart
from mockhub.services.inbound_email import InboundEmail, mime_message, recorded

__all__ = ["MailgunService"]

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_FORBIDDEN = text_reply("Forbidden", 401)


def _addresses(values: list[str]) -> list[str] | None:
    """The addresses in `to`-style fields (each may hold a comma-separated list); None if one is invalid."""
    found: list[str] = []
    for _name, address in email.utils.getaddresses(values):
        if not _EMAIL.match(address):
            return None
        found.append(address)
    return found


def _bad(message: str, data: dict[str, Any], error: str) -> BadRequest:
    return BadRequest(json_reply({"message": message}, 400), {**data, "error": error})


class RouteForward(InboundEmail):
    """An email matched by a route whose action is `forward("https://app/...")`, posted to that URL."""

    signing_key: str = Field(
        min_length=1,
        validation_alias=AliasChoices("signing_key", "webhook_signing_key", "secret"),
        description="the HTTP webhook signing key: signs timestamp + token",
    )
    mime: bool = Field(False, description="the raw MIME form (a route URL ending in `mime`): `body-mime`")
    stripped_text: str | None = Field(None, description="stripped-text (default: the text)")
    stripped_signature: str = ""
    timestamp: int | None = Field(None, description="the signature's timestamp (default: now)")


def _signature(key: str, timestamp: int | None) -> dict[str, str]:
    """Mailgun's webhook signature: hex HMAC-SHA256 of timestamp + token with the signing key."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    token = secrets.token_hex(25)  # 50 characters, as Mailgun's
    digest = hmac.new(key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": ts, "token": token, "signature": digest}


def route_forward(body: RouteForward, where: SimulationContext) -> Simulated:
    """The POST a route's forward() sends: form-encoded, multipart/form-data with attachments or raw MIME."""
    msg = mime_message(body)
    signed = _signature(body.signing_key, body.timestamp)
    fields: list[tuple[str, str]] = [
        ("recipient", body.envelope_to()),
        ("sender", body.envelope_from()),
        ("from", body.from_),
        ("subject", body.subject),
    ]
    files: list[FormPart] = []
    if body.mime:
        fields.append(("body-mime", msg.as_string()))
    else:
        text = body.text if body.text is not None else ""
        fields += [
            ("body-plain", text),
            ("stripped-text", body.stripped_text if body.stripped_text is not None else text),
        ]
        fields.append(("stripped-signature", body.stripped_signature))
        if body.html is not None:
            fields += [("body-html", body.html), ("stripped-html", body.html)]
        fields.append(("attachment-count", str(len(body.attachments))))
        ids = {f"<{a.content_id}>": f"attachment-{i}" for i, a in enumerate(body.attachments, 1) if a.content_id}
        if ids:
            fields.append(("content-id-map", orjson.dumps(ids).decode()))
        fields.append(("message-headers", orjson.dumps([[k, str(v)] for k, v in msg.items()]).decode()))
        # Mailgun also posts each top-level header as a field of its own name.
        fields += [
            (k, str(v)) for k, v in msg.items() if k.lower() not in ("content-type", "content-transfer-encoding")
        ]
        files = [
            FormPart(f"attachment-{i}", a.payload(), a.filename, a.content_type)
            for i, a in enumerate(body.attachments, 1)
        ]
    fields += list(signed.items())
    if files or body.mime:
        content_type, content = encode_multipart([FormPart(k, v.encode()) for k, v in fields] + files)
    else:
        content_type, content = "application/x-www-form-urlencoded", urlencode(fields).encode()
    data = {**recorded(body, body.text, body.html), "mime": body.mime, **signed}
    return Simulated(
        headers={"content-type": content_type, "user-agent": "mailgun/treq-16.12.0"}, body=content, data=data
    )


class MailgunService(Service):
    """Validates a send like Mailgun and records the email it describes."""

    name = "mailgun"
    message = True
    fields = DataFields(files=("attachments", "inline"))
    label = "Mailgun"
    color = "#c92a2a"
    hosts = ("api.mailgun.net", "api.eu.mailgun.net")
    urls = {"mailgun_base": AppUrl(path="", description="the API base: messages go to /v3/{domain}/messages")}

    @classmethod
    def summarize(cls, call: Call) -> str:
        return email_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys = self.ctx.pinned

    def routes(self) -> list[Route]:
        return [
            route("POST", "/v3/{domain}/messages", self.send, self.parse),
            route("POST", "/v3/{domain}/messages.mime", self.send, self.parse_mime),
        ]

    def simulations(self) -> dict[str, Simulation]:
        return {
            "route": Simulation(
                "an inbound email forwarded by a route to the application's URL, signed with the webhook signing key",
                RouteForward,
                route_forward,
                aliases=("inbound", "inbound-email", "forward", "routes"),
            )
        }

    def _authorize(self, request: Request) -> None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, key = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError):
            user = key = ""
        if scheme.lower() != "basic" or user != "api" or not key or (self._keys is not None and key not in self._keys):
            raise BadRequest(
                Reply(_FORBIDDEN.status, _FORBIDDEN.body, list(_FORBIDDEN.headers)), {"error": "unauthorized"}
            )

    def _fields(self, request: Request) -> dict[str, list[FormPart]]:
        """Every form field by name, whichever of the two encodings Mailgun accepts was used."""
        fields: dict[str, list[FormPart]] = {}
        if request.content_type == "multipart/form-data":
            try:
                parts = parse_multipart(request.headers.get("content-type", ""), request.body)
            except MultipartError as exc:
                raise _bad(f"Invalid multipart body: {exc}", {}, "bad_multipart") from exc
            for part in parts:
                fields.setdefault(part.name, []).append(part)
        elif request.content_type in ("application/x-www-form-urlencoded", ""):
            for name, values in request.form().items():
                fields[name] = [FormPart(name, v.encode()) for v in values]
        else:
            raise _bad("Unsupported Content-Type; use multipart/form-data or x-www-form-urlencoded", {}, "bad_media")
        return fields

    def _common(self, request: Request, fields: dict[str, list[FormPart]]) -> dict[str, Any]:
        """What `messages` and `messages.mime` share: recipients, options, headers, variables."""
        data: dict[str, Any] = {"domain": request.path_params["domain"]}
        if "to" not in fields or not any(p.text.strip() for p in fields["to"]):
            raise _bad("'to' parameter is missing", data, "missing_to")
        for kind in ("to", "cc", "bcc"):
            found = _addresses([p.text for p in fields.get(kind, [])])
            if found is None:
                raise _bad(
                    f"{kind} parameter is not a valid address. please check documentation", data, "invalid_address"
                )
            data[kind] = found
        options: dict[str, Any] = {}
        headers: dict[str, str] = {}
        variables: dict[str, str] = {}
        for name, parts in fields.items():
            if name.startswith("o:"):
                options[name[2:]] = [p.text for p in parts] if len(parts) > 1 else parts[0].text
            elif name.startswith("h:"):
                headers[name[2:]] = parts[0].text
            elif name.startswith("v:"):
                variables[name[2:]] = parts[0].text
        if options:
            data["options"] = options
            tags = options.get("tag")
            if tags is not None:
                data["tags"] = tags if isinstance(tags, list) else [tags]
        if headers:
            data["headers"] = headers
        if variables:
            data["variables"] = variables
        return data

    def parse(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        fields = self._fields(request)

        def text(name: str) -> str | None:
            parts = fields.get(name)
            return parts[0].text if parts else None

        sender = text("from")
        if not sender or not sender.strip():
            raise _bad("'from' parameter is missing", {"domain": request.path_params["domain"]}, "missing_from")
        data = self._common(request, fields)
        from_address = _addresses([sender])
        if not from_address:
            raise _bad("from parameter is not a valid address. please check documentation", data, "invalid_address")
        data["from"] = sender
        data["from_address"] = from_address[0]
        for name in ("subject", "text", "html", "amp-html", "template", "recipient-variables"):
            value = text(name)
            if value is not None:
                data[name.replace("-", "_")] = value
        if not any(data.get(k) for k in ("text", "html", "amp_html", "template")):
            raise _bad(
                "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified", data, "no_content"
            )
        for kind in ("attachment", "inline"):
            files = [
                {"filename": p.filename or "", "content_type": p.content_type, "size": len(p.value)}
                for p in fields.get(kind, [])
            ]
            if files:
                data["attachments" if kind == "attachment" else "inline"] = files
        data["message_id"] = self._message_id(data["domain"])
        return data

    def is_file(self, part: FormPart) -> bool:
        # `inline` files are listed apart, in `data.inline`: the attachment indexes count `attachment` parts.
        return part.name == "attachment"

    def attachment(self, call: Call, index: int) -> Attachment | None:
        if call.direction != "outbound":
            return super().attachment(call, index)
        # A simulated route forward (mockhub's own POST): its files are the `attachment-N` parts.
        content_type = call.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return None
        files = [p for p in parse_multipart(content_type, call.body) if p.name.startswith("attachment-") and p.filename]
        if not 0 <= index < len(files):
            return None
        return Attachment(files[index].value, files[index].content_type, files[index].filename)

    def parse_mime(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        fields = self._fields(request)
        data = self._common(request, fields)
        message = fields.get("message")
        if not message:
            raise _bad("'message' parameter is missing", data, "missing_message")
        msg = email.message_from_bytes(message[0].value, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        data["from"] = str(msg.get("from", ""))
        data["subject"] = str(msg.get("subject", ""))
        for kind, subtype in (("text", "plain"), ("html", "html")):
            part = msg.get_body((subtype,))
            if part is not None:
                data[kind] = part.get_content()
        data["message_id"] = self._message_id(data["domain"])
        return data

    @staticmethod
    def _message_id(domain: str) -> str:
        return f"<{time.strftime('%Y%m%d%H%M%S', time.gmtime())}.{os.urandom(8).hex()}@{domain}>"

    async def send(self, request: Request) -> Reply:
        return json_reply({"id": request.data["message_id"], "message": "Queued. Thank you."})

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return json_reply({"message": message}, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "unauthorized":
            return Reply(_FORBIDDEN.status, _FORBIDDEN.body, list(_FORBIDDEN.headers))
        if name == "rate_limited":
            return json_reply({"message": "Too many requests"}, 429, [("retry-after", "1")])
        status, message = {
            "server_error": (500, "Internal Server Error"),
            "unavailable": (503, "Service Unavailable"),
            "overloaded": (503, "Service Unavailable"),
        }[name]
        return json_reply({"message": message}, status)
