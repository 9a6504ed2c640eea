"""Slack: incoming webhooks (`/services/T/B/X`) and the Web API's chat and conversations methods.

The Web API keeps the messages `chat.postMessage` posted (the newest `_MAX_MESSAGES` per namespace,
forgotten on reset), so `chat.update` / `chat.delete` / `chat.getPermalink` of an unknown `ts` answer
`message_not_found` and `conversations.history` / `conversations.replies` list what was posted.

Wire formats follow what `slack_sdk` sends and parses: webhooks answer the plain-text `ok` or an
error word with a 4xx status; the Web API always answers HTTP 200 with `{"ok": false, "error": ...}`
for errors, except rate limiting (429 + a whole-second `Retry-After`, which slack_sdk's
`RateLimitErrorRetryHandler` parses with `int()`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections import OrderedDict
from email.parser import BytesParser
from email.policy import HTTP
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, Field

from mockhub.filters import DataFields
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
    Simulation,
    json_reply,
    route,
)
from mockhub.services.slack_inbound import (
    EventBody,
    InteractionBody,
    SlashCommandBody,
    event,
    interaction,
    slash_command,
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
# Methods that post or edit content (the others only name a channel and a ts).
_CONTENT_METHODS = ("chat.postMessage", "chat.update")
# The ts argument each method needs, and the error when it is missing.
_TS_ARGS = {
    "chat.update": ("ts", "message_not_found"),
    "chat.delete": ("ts", "message_not_found"),
    "chat.getPermalink": ("message_ts", "message_not_found"),
    "conversations.replies": ("ts", "thread_not_found"),
}
# Stored messages per namespace: enough for any test run, bounded so a long-lived hub cannot grow.
_MAX_MESSAGES = 10_000
# Slack's documented `limit` defaults (and conversations.history's maximum).
_LIMITS = {"conversations.history": (100, 999), "conversations.replies": (1000, 1000)}


def _truthy(value: Any) -> bool:
    """A boolean argument: JSON true, or form text such as `true` / `1`."""
    return value is True or (isinstance(value, str | int) and str(value).lower() in ("true", "1"))


def _is_reply(message: dict[str, Any]) -> bool:
    thread_ts = message.get("thread_ts")
    return isinstance(thread_ts, str) and thread_ts != message["ts"]


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
    message = True
    # Legacy `attachments` are message parts, not files.
    fields = DataFields(rich=("blocks", "attachments"), files=())
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
        # namespace -> (channel id, ts) -> message as Slack answers it, oldest first (ts only grows).
        self._messages: dict[str, OrderedDict[tuple[str, str], dict[str, Any]]] = {}
        # Stored messages change only through the channel, so every process sharing a store holds them.
        self._state = ctx.channel(self.name, self._apply)

    def routes(self) -> list[Route]:
        routes = [
            route("POST", "/services/{team}/{bot}/{secret}", self.webhook, self.parse_webhook),
            route("POST", "/api/chat.postMessage", self.post_message, self.parse_api),
            route("POST", "/api/chat.update", self.update_message, self.parse_api),
            route("POST", "/api/chat.delete", self.delete_message, self.parse_api),
            route("POST", "/api/auth.test", self.auth_test, self.parse_api),
        ]
        # slack_sdk reads with GET; Slack takes every method by GET or POST.
        for method, handler in (
            ("chat.getPermalink", self.get_permalink),
            ("conversations.history", self.history),
            ("conversations.replies", self.replies),
        ):
            routes += [route(verb, f"/api/{method}", handler, self.parse_api) for verb in ("GET", "POST")]
        return routes

    def simulations(self) -> dict[str, Simulation]:
        return {
            "interaction": Simulation(
                "a block action, shortcut or modal submission (payload=), signed with the signing secret",
                InteractionBody,
                interaction,
                aliases=("block-actions", "block-action", "interactivity", "action"),
            ),
            "slash-command": Simulation(
                "a slash command's form POST, signed", SlashCommandBody, slash_command, aliases=("command", "slash")
            ),
            "event": Simulation(
                "an Events API event_callback (or url_verification), signed",
                EventBody,
                event,
                aliases=("events", "event-callback"),
            ),
        }

    def reset(self, namespace: str | None) -> None:
        if namespace is None:
            self._messages.clear()
        else:
            self._messages.pop(namespace, None)

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
        elif method in _TS_ARGS and not args.get(_TS_ARGS[method][0]):
            word = _TS_ARGS[method][1]
        elif method in _CONTENT_METHODS and not _has_content(args):
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

    def _store(self, namespace: str, *, create: bool = False) -> OrderedDict[tuple[str, str], dict[str, Any]]:
        """The namespace's messages; reads of an unknown namespace get an empty one, not kept."""
        store = self._messages.get(namespace)
        if store is None:
            store = OrderedDict()
            if create:
                self._messages[namespace] = store
        return store

    def _apply(self, event: dict[str, Any]) -> None:
        if "put" in event:
            namespace, channel, ts, message = event["put"]
            store = self._store(namespace, create=True)
            store[(channel, ts)] = message
            if len(store) > _MAX_MESSAGES:
                store.popitem(last=False)
        else:
            namespace, channel, ts = event["delete"]
            self._store(namespace).pop((channel, ts), None)

    def _not_found(self, request: Request, word: str) -> Reply:
        request.data["error"] = word
        return self._api_error(word)

    async def post_message(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        await self._state.fresh()
        ts = self._next_ts()
        data["ts"] = ts
        channel = _channel_id(data["channel"])
        message = self._message(data, ts)
        store = self._store(request.namespace)
        thread_ts = message.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts:
            parent = store.get((channel, thread_ts))
            # A reply to a reply joins the parent's thread, as in Slack.
            if parent is not None:
                if _is_reply(parent):
                    message["thread_ts"] = parent["thread_ts"]
                message["parent_user_id"] = parent.get("parent_user_id", parent["user"])
                if _truthy(data.get("reply_broadcast")):
                    message["subtype"] = "thread_broadcast"
                    message["reply_broadcast"] = True
        await self._state.publish({"put": [request.namespace, channel, ts, message]})
        return json_reply({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def update_message(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        ts = str(data["ts"])
        channel = _channel_id(data["channel"])
        await self._state.fresh()
        stored = self._store(request.namespace).get((channel, ts))
        if stored is None:
            return self._not_found(request, "message_not_found")
        message = dict(stored)
        # Slack keeps the previous blocks/attachments unless the update sends them ([] removes them).
        if "text" in data and data["text"] is not None:
            message["text"] = data["text"]
        for key in ("blocks", "attachments"):
            if isinstance(data.get(key), list):
                if data[key]:
                    message[key] = data[key]
                else:
                    message.pop(key, None)
        message["edited"] = {"user": _USER_ID, "ts": self._next_ts()}
        await self._state.publish({"put": [request.namespace, channel, ts, message]})
        body = {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}
        return json_reply({**body, "message": message})

    async def delete_message(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        ts = str(data["ts"])
        channel = _channel_id(data["channel"])
        await self._state.fresh()
        if (channel, ts) not in self._store(request.namespace):
            return self._not_found(request, "message_not_found")
        await self._state.publish({"delete": [request.namespace, channel, ts]})
        return json_reply({"ok": True, "channel": channel, "ts": ts})

    async def get_permalink(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        data = request.data
        ts = str(data["message_ts"])
        channel = _channel_id(data["channel"])
        await self._state.fresh()
        message = self._store(request.namespace).get((channel, ts))
        if message is None:
            return self._not_found(request, "message_not_found")
        permalink = f"https://mockhub.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts != ts:
            permalink += f"?thread_ts={thread_ts}&cid={channel}"
        return json_reply({"ok": True, "channel": channel, "permalink": permalink})

    def _threads(self, namespace: str, channel: str) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """The channel's messages, oldest first, and each thread's replies by the parent's ts."""
        messages = [m for (c, _), m in self._store(namespace).items() if c == channel]
        threads: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            if _is_reply(message):
                threads.setdefault(message["thread_ts"], []).append(message)
        return messages, threads

    @staticmethod
    def _with_thread(message: dict[str, Any], replies: list[dict[str, Any]] | None) -> dict[str, Any]:
        """A parent as Slack lists it: with reply_count, reply_users and latest_reply."""
        if not replies:
            return message
        users = list(dict.fromkeys(str(r["user"]) for r in replies))
        return {
            **message,
            "thread_ts": message["ts"],
            "reply_count": len(replies),
            "reply_users_count": len(users),
            "latest_reply": replies[-1]["ts"],
            "reply_users": users,
            "is_locked": False,
            "subscribed": False,
        }

    def _page(self, request: Request, messages: list[dict[str, Any]], *, newest_first: bool) -> Reply:
        """One page of `messages` (oldest first) after latest/oldest/inclusive, limit and cursor."""
        data = request.data
        method = data["method"]
        default, maximum = _LIMITS[method]
        try:
            limit = int(data.get("limit") or default)
        except (TypeError, ValueError):
            return self._not_found(request, "invalid_arguments")
        limit = min(max(limit, 1), maximum)
        bounds: list[float | None] = []
        for key in ("oldest", "latest"):
            raw = data.get(key)
            try:
                bounds.append(float(raw) if raw not in (None, "") else None)
            except (TypeError, ValueError):
                return self._not_found(request, f"invalid_ts_{key}")
        oldest, latest = bounds
        inclusive = _truthy(data.get("inclusive"))

        def within(ts: float) -> bool:
            if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
                return False
            return latest is None or ts < latest or (ts == latest and inclusive)

        cursor = data.get("cursor")
        after: float | None = None
        if cursor:
            # Slack's cursors are base64 `next_ts:<ts>`: the ts of the next page's first message.
            try:
                after = float(base64.b64decode(str(cursor), validate=True).decode().removeprefix("next_ts:"))
            except (ValueError, binascii.Error, UnicodeDecodeError):
                return self._not_found(request, "invalid_cursor")
        if newest_first:
            messages = messages[::-1]
        selected = []
        for i, message in enumerate(messages):
            ts = float(message["ts"])
            if after is not None and (ts > after if newest_first else ts < after):
                continue
            # A thread's parent leads its first page whatever the bounds.
            if within(ts) or (i == 0 and not newest_first and after is None):
                selected.append(message)
        page, rest = selected[:limit], selected[limit:]
        body: dict[str, Any] = {"ok": True, "messages": page, "has_more": bool(rest)}
        if method == "conversations.history":
            body["pin_count"] = 0
        body["response_metadata"] = {
            "next_cursor": base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode() if rest else ""
        }
        return json_reply(body)

    async def history(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        await self._state.fresh()
        messages, threads = self._threads(request.namespace, _channel_id(request.data["channel"]))
        # Replies stay in their thread unless they were also sent to the channel.
        top = [
            self._with_thread(m, threads.get(m["ts"])) for m in messages if not _is_reply(m) or m.get("reply_broadcast")
        ]
        return self._page(request, top, newest_first=True)

    async def replies(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        ts = str(request.data["ts"])
        channel = _channel_id(request.data["channel"])
        await self._state.fresh()
        message = self._store(request.namespace).get((channel, ts))
        if message is None:
            return self._not_found(request, "thread_not_found")
        if _is_reply(message):
            return self._page(request, [message], newest_first=False)
        _, threads = self._threads(request.namespace, channel)
        replies = threads.get(ts, [])
        return self._page(request, [self._with_thread(message, replies), *replies], newest_first=False)

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
