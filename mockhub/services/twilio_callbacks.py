"""The Twilio fake's messages: their status over time, the store, and the status callbacks they cause.

Helpers of `TwilioService` (`twilio.py`), which sends the callbacks built here: it owns the HTTP client
and asks the outbound allowlist, so the one connection the fake opens is made in one place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from mockhub.journal import Call

__all__ = ["API_VERSION", "Message", "MessageStore", "callback_call", "sign"]

API_VERSION = "2010-04-01"

_ERROR_MESSAGES = {
    30001: "Queue overflow",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}


def sign(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's request signature: HMAC-SHA1 of the URL plus each sorted name and value, base64."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


@lru_cache(maxsize=256)
def _rfc2822_second(second: int) -> str:
    return format_datetime(datetime.fromtimestamp(second, UTC))


def _rfc2822(epoch: float | None) -> str | None:
    # Cached per second: every message created within one second shares its date strings.
    return None if epoch is None else _rfc2822_second(int(epoch))


@dataclass(slots=True)
class Message:
    """One stored message. Its status is worked out from the clock (`state`), so nothing has to advance it."""

    sid: str
    account_sid: str
    namespace: str
    to: str
    from_: str | None
    body: str
    media_urls: list[str]
    messaging_service_sid: str | None
    status_callback: str | None
    created: float
    initial: str
    # The statuses it moves through after `initial`, one every `delay` seconds.
    steps: list[tuple[str, int | None]]
    delay: float
    segments: str

    def to_dict(self) -> dict[str, Any]:
        """The message as JSON (for a store shared by several processes)."""
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return cls(**{**data, "steps": [(status, code) for status, code in data["steps"]]})

    def state(self, now: float) -> tuple[str, int | None, float, float | None]:
        """(status, error_code, date_updated, date_sent) at time `now`."""
        status, code, updated, sent = self.initial, None, self.created, None
        for i, (step, step_code) in enumerate(self.steps):
            at = self.created + self.delay * (i + 1)
            if at > now:
                break
            status, code, updated = step, step_code, at
            if step == "sent":
                sent = at
        return status, code, updated, sent

    def resource(self, now: float) -> dict[str, Any]:
        status, code, updated, sent = self.state(now)
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": _rfc2822(self.created),
            "date_sent": _rfc2822(sent),
            "date_updated": _rfc2822(updated),
            "direction": "outbound-api",
            "error_code": code,
            "error_message": _ERROR_MESSAGES.get(code) if code else None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": self.segments,
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


class MessageStore:
    """Every stored message by sid (oldest first, for eviction), and per (namespace, account) for lists."""

    def __init__(self, max_messages: int) -> None:
        self._max_messages = max_messages
        self._messages: OrderedDict[str, Message] = OrderedDict()
        self._by_account: dict[tuple[str, str], OrderedDict[str, Message]] = {}

    def add(self, message: Message) -> None:
        key = (message.namespace, message.account_sid)
        self._messages[message.sid] = message
        self._by_account.setdefault(key, OrderedDict())[message.sid] = message
        while len(self._messages) > self._max_messages:
            _, old = self._messages.popitem(last=False)
            old_key = (old.namespace, old.account_sid)
            index = self._by_account[old_key]
            del index[old.sid]
            if not index:
                del self._by_account[old_key]

    def reset(self, namespace: str | None) -> None:
        doomed = [sid for sid, m in self._messages.items() if namespace is None or m.namespace == namespace]
        for sid in doomed:
            message = self._messages.pop(sid)
            key = (message.namespace, message.account_sid)
            index = self._by_account[key]
            del index[sid]
            if not index:
                del self._by_account[key]

    def get(self, namespace: str, account: str, sid: str) -> Message | None:
        index = self._by_account.get((namespace, account))
        return index.get(sid) if index is not None else None

    def newest_first(self, namespace: str, account: str) -> Iterator[Message]:
        index = self._by_account.get((namespace, account))
        return reversed(index.values()) if index is not None else iter(())


def callback_call(service: str, message: Message, status: str, code: int | None, token: str) -> Call:
    """The signed status callback for `message` reaching `status`, as the outbound call to send and record."""
    url = message.status_callback
    assert url is not None
    params = {
        "AccountSid": message.account_sid,
        "ApiVersion": API_VERSION,
        "To": message.to,
        "MessageSid": message.sid,
        "MessageStatus": status,
        "SmsSid": message.sid,
        "SmsStatus": status,
    }
    if message.from_:
        params["From"] = message.from_
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if code:
        params["ErrorCode"] = str(code)
    body = urlencode(params).encode()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": sign(token, url, params),
        "i-twilio-idempotency-token": str(uuid.uuid4()),
        "user-agent": "TwilioProxy/1.1",
    }
    return Call(
        service=service,
        method="POST",
        path=url,
        namespace=message.namespace,
        direction="outbound",
        headers=headers,
        body=body,
        data={
            "message_sid": message.sid,
            "status": status,
            "error_code": code,
            "to": message.to,
            "from": message.from_,
            "status_callback": url,
        },
    )
