"""An inbound email as the email fakes' simulations take it (SendGrid Inbound Parse, Mailgun routes).

Shared by the fakes that forward received mail to an application: the body model (sender,
recipients, subject, text, HTML, attachments) and the MIME message built from it with the stdlib
`email` package, whose header block and source the providers post.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import secrets
from email.message import EmailMessage
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from mockhub.services.base import SimulationBody

__all__ = ["EmailAttachment", "InboundEmail", "header_block", "mime_message", "recorded"]


class EmailAttachment(BaseModel):
    """A file the email carries: `content` as text, or `content_base64` for bytes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    filename: str = Field(min_length=1)
    content: str | None = None
    content_base64: str | None = None
    content_type: str = Field(
        "application/octet-stream",
        pattern=r"^[\w.+-]+/[\w.+-]+$",
        validation_alias=AliasChoices("content_type", "type"),
    )
    content_id: str | None = Field(None, description="an inline image's Content-ID (cid:), without <>")

    @model_validator(mode="after")
    def _one_content(self) -> EmailAttachment:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of content and content_base64")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("content_base64 is not base64") from None
        return self

    def payload(self) -> bytes:
        if self.content_base64 is not None:
            return base64.b64decode(self.content_base64)
        return (self.content or "").encode()


class InboundEmail(SimulationBody):
    """An email received for the application's domain."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, description='the From header, e.g. "Ann <ann@example.com>"')
    to: list[str] = Field(min_length=1, description="the recipients (the To header; the first is the envelope's)")
    cc: list[str] = Field(default_factory=list)
    subject: str = ""
    text: str | None = Field(None, description="the text/plain part")
    html: str | None = Field(None, description="the text/html part")
    attachments: list[EmailAttachment] = Field(default_factory=list, max_length=100)
    headers: dict[str, str] = Field(default_factory=dict, description="more headers (In-Reply-To, References, ...)")
    message_id: str | None = Field(None, description="the Message-ID (default: a new one)")

    @model_validator(mode="before")
    @classmethod
    def _one_recipient(cls, value: Any) -> Any:
        # `"to": "a@example.com"` is the common case: a list of one.
        if isinstance(value, dict):
            for key in ("to", "cc"):
                if isinstance(value.get(key), str):
                    value = {**value, key: [value[key]]}
        return value

    def envelope_from(self) -> str:
        return email.utils.parseaddr(self.from_)[1] or self.from_

    def envelope_to(self) -> str:
        return email.utils.parseaddr(self.to[0])[1] or self.to[0]


def mime_message(body: InboundEmail) -> EmailMessage:
    """The message as it arrived: headers, text and HTML alternatives, attachments."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = body.from_
    msg["To"] = ", ".join(body.to)
    if body.cc:
        msg["Cc"] = ", ".join(body.cc)
    msg["Subject"] = body.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    domain = body.envelope_from().rpartition("@")[2] or "mockhub.local"
    msg["Message-ID"] = body.message_id or f"<{secrets.token_hex(12)}@{domain}>"
    for name, value in body.headers.items():
        msg[name] = value
    text = body.text if body.text is not None else ("" if body.html is None else None)
    if text is not None:
        msg.set_content(text)
    if body.html is not None:
        if text is None:
            msg.set_content(body.html, subtype="html")
        else:
            msg.add_alternative(body.html, subtype="html")
    for attachment in body.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        msg.add_attachment(attachment.payload(), maintype=maintype, subtype=subtype, filename=attachment.filename)
        if attachment.content_id:
            part = list(msg.iter_attachments())[-1]
            part["Content-ID"] = f"<{attachment.content_id}>"
    return msg


def header_block(msg: EmailMessage) -> str:
    """The message's header block as received (what SendGrid posts as `headers`)."""
    return "".join(f"{name}: {value}\r\n" for name, value in msg.items())


def recorded(body: InboundEmail, text: str | None, html: str | None) -> dict[str, Any]:
    """The email's `data`, with the keys the email fakes use, so the to / subject / contains filters find it."""
    return {
        "from": body.from_,
        "to": list(body.to),
        "cc": list(body.cc),
        "subject": body.subject,
        "text": text,
        "html": html,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": len(a.payload())} for a in body.attachments
        ],
    }
