"""Slack: incoming webhooks (`/services/T/B/X`) and the Web API's chat.postMessage, chat.update, auth.test.

Wire formats follow what `slack_sdk` sends and parses: webhooks answer the plain-text `ok` or an
error word with a 4xx status; the Web API always answers HTTP 200 with `{"ok": false, "error": ...}`
for errors, except rate limiting (429 + a whole-second `Retry-After`, which slack_sdk's
`RateLimitErrorRetryHandler` parses with `int()`).
"""

from __future__ import annotations

import base64
import hashlib
import time
from email.parser import BytesParser
from email.policy import HTTP
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, Field

from mockhub.journal import Call, default_summary
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
    json_reply,
    route,
)

__all__ = ["SlackService"]


class SlackReply(BaseModel):
    """Slack's field of a stub's `reply`."""

    error: str | None = Field(None, description="an error code answered as ok=false (webhooks: the error word)")


_TEAM_ID = "T0MOCKHUB"
_USER_ID = "U0MOCKHUB"
_BOT_ID = "B0MOCKHUB"
_APP_ID = "A0MOCKHUB"

# The HTTP status a webhook answers for each error word (Slack's "Handling errors" table).
_WEBHOOK_ERROR_STATUS = {
    "invalid_payload": 400,
    "no_text": 400,
    "missing_text_or_fallback_or_attachments": 400,
    "too_many_attachments": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "user_not_found": 404,
    "channel_not_found": 404,
    "no_service": 404,
    "no_service_id": 404,
    "no_team": 404,
    "team_disabled": 404,
    "channel_is_archived": 410,
    "rate_limited": 429,
    "internal_error": 500,
    "service_unavailable": 503,
}

_WEB_API_PRESETS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "ratelimited"),
    "server_error": (500, "internal_error"),
    "unavailable": (503, "service_unavailable"),
    "overloaded": (503, "service_unavailable"),
    # The Web API reports bad tokens with HTTP 200, like every other method error.
    "unauthorized": (200, "invalid_auth"),
}
_WEBHOOK_PRESETS: dict[str, tuple[int, str]] = {
    "rate_limited": (429, "rate_limited"),
    "server_error": (500, "internal_error"),
    "unavailable": (503, "service_unavailable"),
    "overloaded": (503, "service_unavailable"),
    "unauthorized": (403, "invalid_token"),
}

_MESSAGE_KEYS = ("text", "blocks", "attachments", "channel", "thread_ts")


def _has_content(payload: dict[str, Any]) -> bool:
    return any(payload.get(key) for key in ("text", "blocks", "attachments"))


@lru_cache(maxsize=4096)
def _channel_id(channel: str) -> str:
    """Slack answers channel IDs even when posting to `#name`: derive a stable one from the name."""
    if len(channel) >= 9 and channel[0] in "CGD" and channel.isalnum() and channel.isupper():
        return channel
    digest = hashlib.sha1(channel.lstrip("#").lower().encode()).digest()
    return "C" + base64.b32encode(digest).decode()[:10]


def _multipart(body: bytes, content_type: str) -> dict[str, str]:
    """Fields of a multipart/form-data body (slack_sdk sends `data=` arguments this way)."""
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


class SlackService(Service):
    """Incoming webhooks and the Web API's chat methods, recorded with `text`, `blocks`, `channel`..."""

    name = "slack"
    label = "Slack"
    color = "#7b2d83"
    hosts = ("hooks.slack.com", "slack.com")
    urls = {
        "slack_webhook": AppUrl(
            path="/services/T000/B000/XXXX", description="an incoming-webhook URL (`slack_sdk.webhook.WebhookClient`)"
        ),
        "slack_api": AppUrl(path="/api/", description="the Web API root (`slack_sdk.WebClient(base_url=...)`)"),
    }
    env = (
        EnvVar(name="ALERT_SLACK_WEBHOOK_URL", value="{urls.slack_webhook}"),
        EnvVar(name="SLACK_API_URL", value="{urls.slack_api}"),
    )
    secret_headers = ("x-slack-signature",)
    # The Web API takes its token as a form field or query parameter too; OAuth exchanges send a client secret.
    secret_params = ("token", "client_secret")
    # An incoming webhook's URL is its credential: /services/T…/B…/<secret>.
    secret_paths = (r"^(/services/[^/]+/[^/]+/)([^/?#]+)",)
    stub_reply = SlackReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        text = data.get("text") if isinstance(data.get("text"), str) else None
        if not text and data.get("blocks"):
            text = f"({len(data['blocks'])} blocks)" if isinstance(data["blocks"], list) else "(blocks)"
        channel = data.get("channel")
        if text:
            return f"{channel}: {text}" if isinstance(channel, str) else text
        return default_summary(call)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._pinned = ctx.pinned
        self._retry_after = str(ctx.settings.slack_retry_after)
        self._last_ts = 0.0

    def routes(self) -> list[Route]:
        return [
            route("POST", "/services/{team}/{bot}/{secret}", self.webhook, self.parse_webhook),
            route("POST", "/api/chat.postMessage", self.post_message, self.parse_api),
            route("POST", "/api/chat.update", self.update_message, self.parse_api),
            route("POST", "/api/auth.test", self.auth_test, self.parse_api),
        ]

    # -- errors and presets --------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return json_reply({"ok": False, "error": code or "error"}, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        if request.path.startswith("/services/"):
            status, word = _WEBHOOK_PRESETS[name]
            if name == "rate_limited":
                # Slack's webhook 429 carries a small JSON object rather than a plain word.
                body = {"ok": False, "error": word, "retry_after": int(self._retry_after)}
                return json_reply(body, status, [("retry-after", self._retry_after)])
            return self._webhook_error(word, status)
        status, word = _WEB_API_PRESETS[name]
        return self._api_error(word, status)

    def _webhook_error(self, word: str, status: int | None = None) -> Reply:
        status = status or _WEBHOOK_ERROR_STATUS.get(word, 400)
        reply = Reply(status, word.encode(), [("content-type", "text/plain; charset=utf-8")])
        if reply.status == 429:
            reply.headers.append(("retry-after", self._retry_after))
        return reply

    def _api_error(self, word: str, status: int = 200) -> Reply:
        if word == "ratelimited":
            status = 429
        headers = [("retry-after", self._retry_after)] if status == 429 else []
        return json_reply({"ok": False, "error": word}, status, headers)

    # -- incoming webhooks ---------------------------------------------------------------------
    def parse_webhook(self, request: Request) -> dict[str, Any]:
        payload: Any
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                payload = orjson.loads(request.form()["payload"][0])
            else:
                payload = request.json()
        except (KeyError, ValueError):
            raise BadRequest(self._webhook_error("invalid_payload"), {"error": "invalid_payload"}) from None
        if not isinstance(payload, dict):
            raise BadRequest(self._webhook_error("invalid_payload"), {"error": "invalid_payload"})
        data = {key: payload.get(key) for key in _MESSAGE_KEYS}
        data.update(payload)
        if self._pinned is not None:
            p = request.path_params
            if p["secret"] not in self._pinned and f"{p['team']}/{p['bot']}/{p['secret']}" not in self._pinned:
                raise BadRequest(self._webhook_error("invalid_token"), {**data, "error": "invalid_token"})
        if not _has_content(payload):
            raise BadRequest(self._webhook_error("no_text"), {**data, "error": "no_text"})
        return data

    async def webhook(self, request: Request) -> Reply:
        reply = request.stub.reply if request.stub is not None else None
        if reply is not None and reply.extra("error"):
            return self._webhook_error(str(reply.extra("error")))
        return Reply(200, b"ok", [("content-type", "text/html")])

    # -- Web API -------------------------------------------------------------------------------
    def _api_args(self, request: Request) -> dict[str, Any]:
        """The method's arguments from the query string and a JSON, form or multipart body."""
        args: dict[str, Any] = {k: v[0] for k, v in request.query.items()} if request.query_string else {}
        content_type = request.content_type
        if not request.body:
            return args
        if content_type == "application/json":
            try:
                parsed = request.json()
            except ValueError:
                raise BadRequest(self._api_error("invalid_json"), {"error": "invalid_json"}) from None
            if not isinstance(parsed, dict):
                raise BadRequest(self._api_error("json_not_object"), {"error": "json_not_object"})
            args.update(parsed)
            return args
        if content_type == "multipart/form-data":
            fields = _multipart(request.body, request.headers.get("content-type", ""))
        else:
            fields = {k: v[0] for k, v in request.form().items()}
        # Form arguments carry blocks and attachments as JSON strings.
        for key, word in (("blocks", "invalid_blocks_format"), ("attachments", "invalid_attachments")):
            raw = fields.get(key)
            if raw:
                try:
                    args[key] = orjson.loads(raw)
                except ValueError:
                    raise BadRequest(self._api_error(word), {"error": word}) from None
        for key, value in fields.items():
            args.setdefault(key, value)
        return args

    def parse_api(self, request: Request) -> dict[str, Any]:
        args = self._api_args(request)
        method = request.path[len("/api/") :]
        token = args.pop("token", None)
        auth = request.headers.get("authorization", "")
        if not token and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        data: dict[str, Any] = {"method": method}
        if method != "auth.test":
            data.update({key: args.get(key) for key in _MESSAGE_KEYS})
            data.update(args)
        if not token:
            raise BadRequest(self._api_error("not_authed"), {**data, "error": "not_authed"})
        if self._pinned is not None and token not in self._pinned:
            raise BadRequest(self._api_error("invalid_auth"), {**data, "error": "invalid_auth"})
        if method == "auth.test":
            return data
        word: str | None = None
        if not isinstance(data["channel"], str) or not data["channel"]:
            word = "channel_not_found"
        elif method == "chat.update" and not args.get("ts"):
            word = "message_not_found"
        elif not _has_content(args):
            word = "no_text"
        if word is not None:
            raise BadRequest(self._api_error(word), {**data, "error": word})
        return data

    def _stub_error(self, request: Request) -> Reply | None:
        reply = request.stub.reply if request.stub is not None else None
        if reply is not None and reply.extra("error"):
            error = str(reply.extra("error"))
            request.data["error"] = error
            return self._api_error(error)
        return None

    def _next_ts(self) -> str:
        # Slack ts values are unique per channel; make them unique and increasing overall.
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def _message(self, data: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "user": _USER_ID,
            "type": "message",
            "ts": ts,
            "bot_id": _BOT_ID,
            "app_id": _APP_ID,
            "text": data.get("text") or "",
            "team": _TEAM_ID,
        }
        for key in ("blocks", "attachments", "thread_ts"):
            if data.get(key):
                message[key] = data[key]
        return message

    async def post_message(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        ts = self._next_ts()
        data["ts"] = ts
        channel = _channel_id(data["channel"])
        return json_reply({"ok": True, "channel": channel, "ts": ts, "message": self._message(data, ts)})

    async def update_message(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        ts = str(data["ts"])
        message = self._message(data, ts)
        message["edited"] = {"user": _USER_ID, "ts": self._next_ts()}
        body = {"ok": True, "channel": _channel_id(data["channel"]), "ts": ts, "text": message["text"]}
        return json_reply({**body, "message": message})

    async def auth_test(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        return json_reply(
            {
                "ok": True,
                "url": "https://mockhub.slack.com/",
                "team": "mockhub",
                "user": "mockhub-bot",
                "team_id": _TEAM_ID,
                "user_id": _USER_ID,
                "bot_id": _BOT_ID,
                "is_enterprise_install": False,
            }
        )
