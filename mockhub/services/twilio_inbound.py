"""The Twilio fake's inbound SMS (`POST /simulate/twilio/inbound-sms`) and the TwiML answer it reads.

Twilio POSTs an incoming message to the number's Messaging webhook form-encoded, with every
parameter of its "Twilio's request to your application" list (MessageSid, AccountSid, From, To,
Body, NumMedia, MediaUrl{N}, the geographic fields, ...), signed with `X-Twilio-Signature` over the
full URL and the sorted parameters (what `twilio.request_validator.RequestValidator` checks). The
application may answer TwiML; each `<Message>` in it is a reply Twilio sends, recorded here as an
outbound SMS of the Twilio fake, in the shape of one sent through the Messages API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import AliasChoices, ConfigDict, Field

from mockhub.journal import Call, ResponseRecord
from mockhub.services.base import Simulated, SimulationBody, SimulationContext
from mockhub.services.twilio_callbacks import API_VERSION

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_TOKEN", "InboundSms", "inbound_sms", "twiml_messages"]

DEFAULT_ACCOUNT = "AC" + "0" * 32
# The token `mockhub env` gives applications (TWILIO_AUTH_TOKEN), so the default signs as they verify.
DEFAULT_TOKEN = "mockhub-auth-token"
# A TwiML answer bigger than this is not read (the application's answer is bounded anyway).
_MAX_TWIML = 64 * 1024


class InboundSms(SimulationBody):
    """An SMS (or MMS) a phone sends to one of the application's Twilio numbers."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, description="the sender's number, e.g. +15551230000")
    to: str = Field(min_length=1, description="the application's Twilio number")
    body: str = Field("", max_length=1600, description="the message text")
    auth_token: str | None = Field(
        None,
        min_length=1,
        validation_alias=AliasChoices("auth_token", "secret"),
        description="signs X-Twilio-Signature (default: MOCKHUB_TWILIO_AUTH_TOKEN, else the env's)",
    )
    account_sid: str = Field(DEFAULT_ACCOUNT, pattern=r"^AC[0-9a-fA-F]{32}$")
    message_sid: str | None = Field(None, description="default: a new SM... sid")
    messaging_service_sid: str | None = None
    media_urls: list[str] = Field(default_factory=list, max_length=10, description="MMS media (MediaUrl0, ...)")
    media_content_types: list[str] = Field(
        default_factory=list, description="MediaContentType{N} (default image/jpeg for each media URL)"
    )
    params: dict[str, str] = Field(
        default_factory=dict, description="more parameters, or values replacing the built ones (FromCity=...)"
    )
    algorithm: Literal["HMAC_SHA1", "HMAC_SHA256"] = Field(
        "HMAC_SHA1",
        description="HMAC_SHA256: signed with a Webhooks Rule's SharedKey (auth_token is its secret), "
        "announced by X-Twilio-Webhooks-Signature-Settings",
    )
    shared_key_id: str = Field("webhooks_sharedkey_mockhub", description="the SharedKey's id in that header")


def _signature(token: str, url: str, params: dict[str, str], algorithm: str) -> str:
    """Twilio's request signature: HMAC of the URL plus each sorted name and value, base64."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hashlib.sha256 if algorithm == "HMAC_SHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), digest).digest()).decode()


def _country(number: str) -> str:
    # Only what is certain from the number: Twilio leaves the geographic fields empty when unknown.
    return "US" if number.startswith("+1") else ""


def inbound_sms(body: InboundSms, where: SimulationContext, default_token: str | None) -> Simulated:
    """The signed form POST Twilio sends to a Messaging webhook."""
    sid = body.message_sid or "SM" + uuid.uuid4().hex
    params: dict[str, str] = {
        "ToCountry": _country(body.to),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": str(len(body.media_urls)),
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body.body,
        "FromCountry": _country(body.from_),
        "To": body.to,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": body.account_sid,
        "From": body.from_,
        "ApiVersion": API_VERSION,
    }
    if body.messaging_service_sid:
        params["MessagingServiceSid"] = body.messaging_service_sid
    for i, media in enumerate(body.media_urls):
        types = body.media_content_types
        params[f"MediaContentType{i}"] = types[i] if i < len(types) else "image/jpeg"
        params[f"MediaUrl{i}"] = media
    params.update(body.params)
    token = body.auth_token or default_token or DEFAULT_TOKEN
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": _signature(token, body.url, params, body.algorithm),
        "i-twilio-idempotency-token": str(uuid.uuid4()),
        "user-agent": "TwilioProxy/1.1",
        "accept": "*/*",
    }
    if body.algorithm != "HMAC_SHA1":
        headers["x-twilio-webhooks-signature-settings"] = f"key={body.shared_key_id},algorithm={body.algorithm}"
    data: dict[str, Any] = {
        "message_sid": sid,
        "account_sid": body.account_sid,
        "from": body.from_,
        "to": body.to,
        "body": body.body,
        "media_url": list(body.media_urls),
        "params": params,
    }
    return Simulated(headers=headers, body=urlencode(params).encode(), data=data)


def twiml_messages(
    service: str, body: InboundSms, where: SimulationContext, delivery: Call, answer: ResponseRecord
) -> list[Call]:
    """Each `<Message>` of the application's TwiML answer, as the outbound SMS Twilio would send.

    Read defensively: only a 2xx answer that looks like XML, no DTD (entity expansion), bounded in
    size; anything else is noted on the delivery (`data.twiml_error`) and causes nothing.
    """
    raw = answer.body.strip()
    if not 200 <= answer.status < 300 or not raw:
        return []
    content_type = answer.headers.get("content-type", "").lower()
    if "xml" not in content_type and not raw.startswith(b"<"):
        return []  # a plain "ok" or JSON: Twilio sends nothing back either
    if len(raw) > _MAX_TWIML or b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        delivery.data["twiml_error"] = "TwiML refused: too large or has a DTD"
        return []
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        delivery.data["twiml_error"] = f"not valid XML: {exc}"
        return []
    if root.tag != "Response":
        delivery.data["twiml_error"] = f"the root element is <{root.tag}>, not <Response>"
        return []
    sent: list[Call] = []
    verbs: list[str] = []
    inbound_sid = str(delivery.data.get("message_sid", ""))
    for verb in root:
        verbs.append(str(verb.tag))
        if verb.tag != "Message":
            continue
        bodies = verb.findall("Body")
        media = [(m.text or "").strip() for m in verb.findall("Media") if (m.text or "").strip()]
        if bodies or media:
            text = "".join("".join(b.itertext()) for b in bodies).strip()
        else:
            text = "".join(verb.itertext()).strip()
        # A reply goes back to the sender, from the number that was texted, unless the verb says otherwise.
        to = verb.get("to") or body.from_
        from_ = verb.get("from") or body.to
        sid = "SM" + uuid.uuid4().hex
        form = [("To", to), ("From", from_), ("Body", text), *(("MediaUrl", u) for u in media)]
        sent.append(
            Call(
                service=service,
                method="POST",
                path=f"/{API_VERSION}/Accounts/{body.account_sid}/Messages.json",
                namespace=where.namespace,
                direction="outbound",
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=urlencode(form).encode(),
                data={
                    "account_sid": body.account_sid,
                    "to": to,
                    "from": from_,
                    "body": text,
                    "media_url": media,
                    "status_callback": verb.get("statusCallback") or verb.get("action"),
                    "messaging_service_sid": None,
                    "message_sid": sid,
                    "source": "twiml",
                    "in_reply_to": inbound_sid,
                },
            )
        )
    delivery.data["twiml"] = verbs
    return sent
