"""Twilio Messaging: create, fetch and list messages, with signed status callbacks.

Wire formats follow what the `twilio` package sends and parses: form-encoded creates with HTTP
Basic auth, 201 with the full Message resource (RFC 2822 dates, string counts), errors as
`{code, message, more_info, status}` (raised as `TwilioRestException`), list pages with exactly one
resource key beside the paging fields and relative page URIs (joined to the client's base URL).

A message's status advances with time (`queued` → `sent` → `delivered`, one step every
`twilio_callback_delay_ms`) whether or not anyone asks; with a `StatusCallback`, each step after
the first is POSTed there, signed with `X-Twilio-Signature`, and recorded as an outbound call.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from mockhub.filters import DataFields
from mockhub.journal import Call, ResponseRecord, default_summary
from mockhub.rules import Preset
from mockhub.services.base import (
    AppUrl,
    BadRequest,
    EnvVar,
    Reply,
    Request,
    Route,
    Service,
    ServiceContext,
    Simulated,
    Simulation,
    SimulationContext,
    json_reply,
    route,
)
from mockhub.services.twilio_callbacks import API_VERSION, Message, MessageStore, callback_call
from mockhub.services.twilio_inbound import InboundSms, inbound_sms, twiml_messages

if TYPE_CHECKING:
    import httpx

__all__ = ["TwilioService"]


class TwilioReply(BaseModel):
    """Twilio's fields of a stub's `reply`: how the message's delivery ends."""

    model_config = ConfigDict(extra="ignore")

    status: str | None = Field(None, description="final message status, e.g. undelivered, failed, delivered")
    error_code: int | None = Field(None, description="ErrorCode of a failed delivery, e.g. 30003")


_CALLBACK_TIMEOUT_S = 10.0
# Bodies of callback targets' answers kept in the journal; a callback target is not the thing under test.
_MAX_RECORDED_ANSWER = 64 * 1024
# The whole exchange (connect, send, read the bounded answer): a trickling target cannot hold it longer.
_CALLBACK_TOTAL_S = 30.0

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_CHANNEL = re.compile(r"^(whatsapp|messenger|rcs):(.+)$")
_SHORT_CODE = re.compile(r"^\d{3,8}$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")

# Generic Twilio codes for HTTP-level errors (wrong method, body too large, fault presets).
_STATUS_CODES = {401: 20003, 403: 20003, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}
_PRESETS: dict[str, tuple[int, int, str]] = {
    "rate_limited": (429, 20429, "Too Many Requests"),
    "server_error": (500, 20500, "An internal server error has occurred"),
    "unavailable": (503, 20503, "Service is unavailable. Please try again"),
    "overloaded": (503, 20503, "Service is unavailable. Please try again"),
    "unauthorized": (401, 20003, "Authenticate"),
}


def num_segments(body: str) -> int:
    """SMS segments of `body`: GSM-7 (160, or 153 per part) when it fits, else UCS-2 (70 / 67)."""
    if not body:
        return 1
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        units = len(body) + sum(c in _GSM_EXTENDED for c in body)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def _valid_address(value: str, sender: bool) -> bool:
    m = _CHANNEL.match(value)
    if m is not None:
        value = m.group(2)
        return bool(_E164.match(value)) or m.group(1) != "whatsapp"
    if _E164.match(value):
        return True
    return sender and bool(_SHORT_CODE.match(value) or _ALPHA_SENDER.match(value))


class TwilioService(Service):
    """Messages.json create/fetch/list with Twilio's validation, errors, paging and status callbacks."""

    name = "twilio"
    message = True
    # An MMS carries its media as URLs.
    fields = DataFields(files=("media_url",))
    label = "Twilio"
    color = "#e03131"
    hosts = ("api.twilio.com",)
    urls = {
        "twilio_base": AppUrl(
            path="", description="the REST root: messages go to /2010-04-01/Accounts/{sid}/Messages.json"
        )
    }
    env = (
        EnvVar(name="TWILIO_BASE_URL", value="{urls.twilio_base}"),
        EnvVar(name="TWILIO_ACCOUNT_SID", value="AC" + "0" * 32),
        EnvVar(name="TWILIO_AUTH_TOKEN", value="mockhub-auth-token"),
    )
    secret_headers = ("x-twilio-signature",)
    stub_reply = TwilioReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        if isinstance(data.get("body"), str) and data.get("to"):
            return f"{data.get('from') or data.get('messaging_service_sid') or '?'} → {data['to']}: {data['body']}"
        return default_summary(call)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        settings = ctx.settings
        self._pinned = ctx.pinned
        self._messages = MessageStore(settings.twilio_max_messages)
        # Messages are added through the channel, so every process sharing a store can fetch and list them.
        self._state = ctx.channel(self.name, self._apply)
        self._client: httpx.AsyncClient | None = None
        self._last_auth: tuple[str, tuple[str, str] | None] = ("", None)

    def routes(self) -> list[Route]:
        base = f"/{API_VERSION}/Accounts/{{account}}/Messages"
        return [
            route("POST", base + ".json", self.create, self.parse_create),
            route("GET", base + ".json", self.list, self.parse_list),
            route("GET", base + "/{message}.json", self.fetch, self.parse_fetch),
        ]

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @staticmethod
    def _new_client() -> httpx.AsyncClient:
        # Made on the first callback, not at start: httpx and its TLS context cost ~100 ms of start-up.
        import httpx

        # trust_env=False: an HTTP(S)_PROXY in the environment must not capture loopback callbacks.
        return httpx.AsyncClient(timeout=_CALLBACK_TIMEOUT_S, follow_redirects=False, trust_env=False)

    # -- errors --------------------------------------------------------------------------------
    def twilio_error(self, status: int, code: int, message: str) -> Reply:
        more_info = f"https://www.twilio.com/docs/errors/{code}"
        body = {"code": code, "message": message, "more_info": more_info, "status": status}
        headers = [("www-authenticate", 'Basic realm="Twilio API"')] if status == 401 else []
        return json_reply(body, status, headers)

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return self.twilio_error(status, _STATUS_CODES.get(status, 20001), message)

    def preset(self, name: Preset, request: Request) -> Reply:
        status, code, message = _PRESETS[name]
        reply = self.twilio_error(status, code, message)
        if status == 429:
            reply.headers.append(("retry-after", "1"))
        return reply

    def _bad(self, data: dict[str, Any], status: int, code: int, message: str) -> BadRequest:
        return BadRequest(self.twilio_error(status, code, message), {**data, "error_code": code})

    # -- auth ----------------------------------------------------------------------------------
    def _credentials(self, request: Request) -> tuple[str, str] | None:
        """(user, password) of a Basic auth header the fake accepts, or None."""
        header = request.headers.get("authorization", "")
        if header == self._last_auth[0]:  # clients send the same header every time: decode it once
            return self._last_auth[1]
        creds = self._decode_credentials(header)
        self._last_auth = (header, creds)
        return creds

    def _decode_credentials(self, header: str) -> tuple[str, str] | None:
        if header[:6].lower() != "basic ":
            return None
        try:
            pair = base64.b64decode(header[6:].strip(), validate=True).decode()
        except ValueError:
            return None
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            return None
        if self._pinned is not None and pair not in self._pinned and password not in self._pinned:
            return None
        return user, password

    def _authenticate(self, request: Request, data: dict[str, Any]) -> tuple[str, str]:
        creds = self._credentials(request)
        if creds is None:
            raise self._bad(data, 401, 20003, "Authenticate")
        return creds

    def _signing_token(self, account_sid: str, user: str, password: str) -> str:
        """The auth token that signs callbacks: set explicitly, else the account's own (Basic password)."""
        if self.ctx.settings.twilio_auth_token:
            return self.ctx.settings.twilio_auth_token
        if user.startswith("SK") and self._pinned is not None:
            # API key auth: the account's token may be pinned as "AC...:token".
            for entry in self._pinned:
                sid, sep, token = entry.partition(":")
                if sep and sid == account_sid:
                    return token
        return password

    # -- create --------------------------------------------------------------------------------
    def parse_create(self, request: Request) -> dict[str, Any]:
        form = request.form()

        def first(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        to, from_, body = first("To"), first("From"), first("Body")
        media = [u for u in form.get("MediaUrl", []) if u]
        callback, service_sid = first("StatusCallback"), first("MessagingServiceSid")
        data: dict[str, Any] = {
            "account_sid": request.path_params["account"],
            "to": to,
            "from": from_,
            "body": body,
            "media_url": media,
            "status_callback": callback,
            "messaging_service_sid": service_sid,
            "message_sid": None,
        }
        self._authenticate(request, data)
        if not to:
            raise self._bad(data, 400, 21604, "A 'To' phone number is required.")
        if not _valid_address(to, sender=False):
            raise self._bad(data, 400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ and not service_sid:
            raise self._bad(data, 400, 21603, "A 'From' phone number is required.")
        if from_ and not _valid_address(from_, sender=True):
            raise self._bad(
                data,
                400,
                21212,
                f"The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID.",
            )
        if from_ == to:
            raise self._bad(data, 400, 21266, "'To' and 'From' number cannot be the same")
        if not body and not media and not first("ContentSid"):
            raise self._bad(data, 400, 21602, "Message body is required.")
        if body and len(body) > 1600:
            raise self._bad(data, 400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if len(media) > 10:
            raise self._bad(data, 400, 21623, "Number of media files exceeds allowed limit")
        if any(not u.startswith(("http://", "https://")) for u in media):
            raise self._bad(data, 400, 21620, "Invalid media URL(s)")
        if callback and not callback.startswith(("http://", "https://")):
            raise self._bad(data, 400, 21609, f"Invalid StatusCallback url: {callback}")
        return data

    def _outcome(self, request: Request) -> list[tuple[str, int | None]]:
        """The statuses a new message moves through: from a stub's reply, else from the settings."""
        settings = self.ctx.settings
        final, code = settings.twilio_final_status, settings.twilio_error_code
        reply = request.stub.reply if request.stub is not None else None
        outcome = TwilioReply.model_validate(reply.model_extra or {}) if reply is not None else TwilioReply()
        if outcome.status or outcome.error_code:
            final = outcome.status or "undelivered"
            code = outcome.error_code
        code = (code or 30003) if final in ("undelivered", "failed") else None
        if final in ("failed", "canceled"):
            return [(final, code)]
        if final == "sent":
            return [("sent", None)]
        if final == "read":
            return [("sent", None), ("delivered", None), ("read", None)]
        return [("sent", None), (final, code)]

    async def create(self, request: Request) -> Reply:
        data = request.data
        account = request.path_params["account"]
        user, password = self._authenticate(request, data)
        now = time.time()
        message = Message(
            sid="SM" + uuid.uuid4().hex,
            account_sid=account,
            namespace=request.namespace,
            to=data["to"],
            from_=data["from"],
            body=data["body"] or "",
            media_urls=data["media_url"],
            messaging_service_sid=data["messaging_service_sid"],
            status_callback=data["status_callback"],
            created=now,
            initial="accepted" if data["messaging_service_sid"] else "queued",
            steps=self._outcome(request),
            delay=self.ctx.settings.twilio_callback_delay_ms / 1000,
            segments=str(num_segments(data["body"] or "")),
        )
        data["message_sid"] = message.sid
        await self._state.publish({"add": message.to_dict()})
        reply = json_reply(message.resource(now), 201)
        if message.status_callback:
            token = self._signing_token(account, user, password)
            reply.after = lambda: self._deliver(message, token)
        return reply

    def reset(self, namespace: str | None) -> None:
        self._messages.reset(namespace)

    # -- inbound simulation --------------------------------------------------------------------
    def simulations(self) -> dict[str, Simulation]:
        return {
            "inbound-sms": Simulation(
                "an SMS to the application's Messaging webhook, signed; each TwiML <Message> answered is sent",
                InboundSms,
                self._inbound_sms,
                self._twiml_reply,
                aliases=("sms", "inbound-message", "incoming-sms"),
            )
        }

    def _inbound_sms(self, body: InboundSms, where: SimulationContext) -> Simulated:
        return inbound_sms(body, where, self.ctx.settings.twilio_auth_token)

    async def _twiml_reply(
        self, body: InboundSms, where: SimulationContext, delivery: Call, answer: ResponseRecord
    ) -> list[Call]:
        """The TwiML's messages: recorded as outbound SMS, and stored so the Messages API lists them."""
        sent = twiml_messages(self.name, body, where, delivery, answer)
        now = time.time()
        for call in sent:
            data = call.data
            message = Message(
                sid=data["message_sid"],
                account_sid=data["account_sid"],
                namespace=where.namespace,
                to=data["to"],
                from_=data["from"],
                body=data["body"],
                media_urls=data["media_url"],
                messaging_service_sid=None,
                status_callback=None,
                created=now,
                initial="queued",
                steps=[("sent", None), ("delivered", None)],
                delay=self.ctx.settings.twilio_callback_delay_ms / 1000,
                segments=str(num_segments(data["body"])),
            )
            await self._state.publish({"add": message.to_dict()})
        return sent

    def _apply(self, event: dict[str, Any]) -> None:
        self._messages.add(Message.from_dict(event["add"]))

    # -- status callbacks ----------------------------------------------------------------------
    async def _deliver(self, message: Message, token: str) -> None:
        for status, code in message.steps:
            await asyncio.sleep(message.delay)
            await self._callback(message, status, code, token)

    async def _callback(self, message: Message, status: str, code: int | None, token: str) -> None:
        call = callback_call(self.name, message, status, code, token)
        url = call.path
        started = time.perf_counter()
        refusal = await self.ctx.outbound_refusal(url)
        if refusal is not None:
            call.data["error"] = refusal
            await self.ctx.record(call)
            return
        try:
            if self._client is None:  # made on the first callback (httpx is slow to import)
                self._client = self._new_client()
            async with asyncio.timeout(_CALLBACK_TOTAL_S):
                call.response = await self._post(url, call)
        except Exception as exc:  # an unreachable or broken target is recorded, never raised
            call.data["error"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        call.duration_ms = (time.perf_counter() - started) * 1000
        await self.ctx.record(call)

    async def _post(self, url: str, call: Call) -> ResponseRecord:
        """POST the callback; read at most `_MAX_RECORDED_ANSWER` bytes of the answer, then hang up.

        The answer is the target's to choose: a huge (or endless) one must not be read whole.
        """
        assert self._client is not None
        async with self._client.stream("POST", url, content=call.body, headers=call.headers) as answer:
            chunks: list[bytes] = []
            size = 0
            async for chunk in answer.aiter_raw():
                chunks.append(chunk)
                size += len(chunk)
                if size >= _MAX_RECORDED_ANSWER:
                    call.data["answer_truncated"] = True
                    break
            body = b"".join(chunks)[:_MAX_RECORDED_ANSWER]
            return ResponseRecord(answer.status_code, dict(answer.headers.items()), body)

    # -- fetch and list ------------------------------------------------------------------------
    def parse_fetch(self, request: Request) -> dict[str, Any]:
        data = {"account_sid": request.path_params["account"], "message_sid": request.path_params["message"]}
        self._authenticate(request, data)
        return data

    async def fetch(self, request: Request) -> Reply:
        await self._state.fresh()
        message = self._messages.get(request.namespace, request.path_params["account"], request.path_params["message"])
        if message is None:
            return self.twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return json_reply(message.resource(time.time()))

    def parse_list(self, request: Request) -> dict[str, Any]:
        query = {k: v[0] for k, v in request.query.items()}
        data: dict[str, Any] = {"account_sid": request.path_params["account"], "filters": query}
        self._authenticate(request, data)
        for name in ("DateSent", "DateSent<", "DateSent>"):
            if name in query and not _DATE.match(query[name]):
                raise self._bad(data, 400, 20001, f"Invalid {name}: {query[name]}")
        for name in ("PageSize", "Page"):
            if name in query and not query[name].isdigit():
                raise self._bad(data, 400, 20001, f"Invalid {name}: {query[name]}")
        return data

    async def list(self, request: Request) -> Reply:
        query: dict[str, str] = request.data["filters"]
        account = request.path_params["account"]
        page_size = min(max(int(query.get("PageSize", "50")), 1), 1000)
        page = int(query.get("Page", "0"))
        token = query.get("PageToken", "")
        now = time.time()
        to, from_ = query.get("To"), query.get("From")
        on, before, after = query.get("DateSent"), query.get("DateSent<"), query.get("DateSent>")

        matching: list[Message] = []
        await self._state.fresh()
        for message in self._messages.newest_first(request.namespace, account):
            if (to is not None and message.to != to) or (from_ is not None and message.from_ != from_):
                continue
            if on is not None or before is not None or after is not None:
                day = datetime.fromtimestamp(message.state(now)[3] or message.created, UTC).strftime("%Y-%m-%d")
                if (
                    (on is not None and day != on[:10])
                    or (before is not None and day > before[:10])
                    or (after is not None and day < after[:10])
                ):
                    continue
            matching.append(message)

        start = page * page_size
        if token.startswith("PA"):
            # A page token names the last message of the previous page, so paging is stable while
            # new messages arrive at the front.
            for i, message in enumerate(matching):
                if message.sid == token[2:]:
                    start = i + 1
                    break
        records = matching[start : start + page_size]

        path = f"/{API_VERSION}/Accounts/{account}/Messages.json"
        filters = {k: v for k, v in query.items() if k not in ("PageSize", "Page", "PageToken")}

        def uri(number: int, page_token: str | None = None) -> str:
            params = {**filters, "PageSize": str(page_size), "Page": str(number)}
            if page_token:
                params["PageToken"] = page_token
            return f"{path}?{urlencode(params)}"

        has_next = start + page_size < len(matching)
        body = {
            "messages": [m.resource(now) for m in records],
            "end": start + max(len(records) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, "PA" + records[-1].sid) if has_next and records else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": uri(page, token or None),
        }
        return json_reply(body)
