"""Discord webhooks (`discord`).

`POST /api/webhooks/{id}/{token}` (also `/api/v10/...`) takes JSON, a form, or multipart with
`payload_json` and `files[n]`; it answers 204, or 200 with the message object when `?wait=true`,
and errors as `{"message", "code"}` JSON. Messages sent with `?wait=true` (the only ones whose id a
client learns) can then be fetched, edited (PATCH) and deleted at `.../messages/{message_id}`.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import orjson

from mockhub.filters import DataFields
from mockhub.journal import Call, default_summary
from mockhub.rules import Preset
from mockhub.services.base import AppUrl, BadRequest, Reply, Request, Route, Service, json_reply, route
from mockhub.services.forms import MultipartError, parse_multipart

__all__ = ["DiscordService"]

_DISCORD_EPOCH_MS = 1_420_070_400_000
_MAX_CONTENT = 2000
_MAX_EMBEDS = 10
_RATE_LIMIT = 5  # Discord's per-webhook bucket: 5 requests per 2 seconds
_MAX_STORED_MESSAGES = 10_000  # sent with ?wait=true, kept for GET / PATCH / DELETE; oldest go first


def _form_error(field: str, code: str, message: str) -> Reply:
    return json_reply(
        {
            "message": "Invalid Form Body",
            "code": 50035,
            "errors": {field: {"_errors": [{"code": code, "message": message}]}},
        },
        400,
    )


class DiscordService(Service):
    """Discord's execute-webhook endpoint."""

    name = "discord"
    message = True
    fields = DataFields(rich=("embeds", "components"))
    label = "Discord"
    color = "#4c6ef5"
    hosts = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
    urls = {"discord_webhook": AppUrl(path="/api/webhooks/000/mockhub", description="a webhook URL")}
    # A webhook's URL is its credential: /api/webhooks/<id>/<token>.
    secret_paths = (r"^(/api(?:/v\d+)?/webhooks/[^/]+/)([^/?#]+)",)

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        text = data.get("content") if isinstance(data.get("content"), str) and data.get("content") else None
        if text is None and data.get("embeds"):
            embeds = data["embeds"]
            first = embeds[0] if isinstance(embeds, list) and embeds and isinstance(embeds[0], dict) else {}
            text = str(first.get("title") or first.get("description") or "(embeds)")
        user = data.get("username")
        if text:
            return f"{user}: {text}" if isinstance(user, str) and user else text
        return default_summary(call)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tokens = self.ctx.pinned
        self._counter = itertools.count()
        # Messages sent with ?wait=true, by (namespace, webhook id, message id), oldest first.
        self._messages: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        # Stored messages change only through the channel, so every process sharing a store holds them.
        self._state = self.ctx.channel(self.name, self._apply)

    def routes(self) -> list[Route]:
        routes = []
        for api in ("/api", "/api/v{version}"):
            hook = api + "/webhooks/{id}/{token}"
            message = hook + "/messages/{message_id}"
            routes += [
                route("POST", hook, self.execute, self.parse),
                route("GET", hook, self.webhook, self.parse_get),
                route("GET", message, self.get_message, self.parse_get),
                route("PATCH", message, self.edit_message, self.parse_edit),
                route("DELETE", message, self.delete_message, self.parse_get),
            ]
        return routes

    def reset(self, namespace: str | None) -> None:
        for key in [k for k in self._messages if namespace is None or k[0] == namespace]:
            del self._messages[key]

    def _snowflake(self) -> str:
        return str(((int(time.time() * 1000) - _DISCORD_EPOCH_MS) << 22) | (next(self._counter) & 0xFFF))

    def _check_webhook(self, request: Request) -> dict[str, Any]:
        webhook_id, token = request.path_params["id"], request.path_params["token"]
        data: dict[str, Any] = {"webhook_id": webhook_id, "channel": webhook_id}
        if not webhook_id.isdigit():
            data["error"] = "invalid_webhook_id"
            raise BadRequest(
                _form_error("webhook_id", "NUMBER_TYPE_COERCE", f'Value "{webhook_id}" is not snowflake.'), data
            )
        if self._tokens is not None and token not in self._tokens:
            data["error"] = "invalid_token"
            raise BadRequest(json_reply({"message": "Invalid Webhook Token", "code": 50027}, 401), data)
        return data

    def parse_get(self, request: Request) -> dict[str, Any]:
        data = self._check_webhook(request)
        if "message_id" in request.path_params:
            data["message_id"] = request.path_params["message_id"]
        return data

    def parse_edit(self, request: Request) -> dict[str, Any]:
        data = self.parse_get(request)
        payload, files = self._payload(request, data)
        self._message_fields(payload, files, data)
        return data

    def parse(self, request: Request) -> dict[str, Any]:
        data = self._check_webhook(request)
        query = request.query
        if "thread_id" in query:
            data["thread_id"] = query["thread_id"][0]
        data["wait"] = query.get("wait", ["false"])[0].lower() == "true"
        payload, files = self._payload(request, data)
        self._message_fields(payload, files, data)
        if "thread_name" in payload:
            data["thread_name"] = payload["thread_name"]
        content = data.get("content")
        embeds = payload.get("embeds")
        username = payload.get("username")
        if isinstance(username, str):
            for banned in ("discord", "clyde"):
                if banned in username.lower():
                    data["error"] = "invalid_username"
                    raise BadRequest(
                        _form_error("username", "USERNAME_INVALID_CONTAINS", f'Username cannot contain "{banned}"'),
                        data,
                    )
        has_content = isinstance(content, str) and content.strip() != ""
        if not (has_content or embeds or files or payload.get("components") or payload.get("poll")):
            data["error"] = "empty_message"
            raise BadRequest(json_reply({"message": "Cannot send an empty message", "code": 50006}, 400), data)
        if has_content:
            data["text"] = content
        return data

    def _message_fields(self, payload: dict[str, Any], files: list[dict[str, Any]], data: dict[str, Any]) -> None:
        """Copy a message's fields into `data`, refusing what Discord refuses for any message."""
        for key in ("content", "username", "avatar_url", "tts", "embeds", "components", "allowed_mentions", "flags"):
            if key in payload:
                data[key] = payload[key]
        if files:
            data["attachments"] = files
        content = payload.get("content")
        if content is not None and not isinstance(content, str):
            data["content"] = content = str(content)
        if content and len(content) > _MAX_CONTENT:
            data["error"] = "content_too_long"
            raise BadRequest(
                _form_error("content", "BASE_TYPE_MAX_LENGTH", f"Must be {_MAX_CONTENT} or fewer in length."), data
            )
        embeds = payload.get("embeds")
        if isinstance(embeds, list) and len(embeds) > _MAX_EMBEDS:
            data["error"] = "too_many_embeds"
            raise BadRequest(
                _form_error("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {_MAX_EMBEDS} or fewer in length."), data
            )

    def _payload(self, request: Request, data: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The JSON payload and the uploaded files, from whichever body encoding the client chose."""
        invalid_json = BadRequest(
            json_reply({"message": "The request body contains invalid JSON.", "code": 50109}, 400),
            {**data, "error": "invalid_json"},
        )
        content_type = request.content_type
        files: list[dict[str, Any]] = []
        if content_type == "multipart/form-data":
            try:
                parts = parse_multipart(request.headers.get("content-type", ""), request.body)
            except MultipartError as exc:
                raise BadRequest(
                    json_reply({"message": "400: Bad Request", "code": 0}, 400), {**data, "error": "bad_multipart"}
                ) from exc
            payload: Any = {}
            for part in parts:
                if part.name == "payload_json":
                    try:
                        payload = orjson.loads(part.value)
                    except ValueError as exc:
                        raise invalid_json from exc
                elif part.filename is not None:
                    files.append(
                        {"filename": part.filename, "content_type": part.content_type, "size": len(part.value)}
                    )
                else:
                    payload[part.name] = part.text
        elif content_type == "application/x-www-form-urlencoded":
            payload = {k: v[0] for k, v in request.form().items()}
        else:
            try:
                payload = request.json()
            except ValueError as exc:
                raise invalid_json from exc
        if not isinstance(payload, dict):
            raise BadRequest(
                json_reply({"message": "Invalid Form Body", "code": 50035, "errors": {}}, 400),
                {**data, "error": "invalid_payload"},
            )
        return payload, files

    def _rate_headers(self, remaining: int) -> list[tuple[str, str]]:
        return [
            ("x-ratelimit-bucket", "mockhub0000000000000000000000000"),
            ("x-ratelimit-limit", str(_RATE_LIMIT)),
            ("x-ratelimit-remaining", str(remaining)),
            ("x-ratelimit-reset", f"{time.time() + 2:.3f}"),
            ("x-ratelimit-reset-after", "2.000" if remaining else "0.500"),
        ]

    async def execute(self, request: Request) -> Reply:
        headers = self._rate_headers(_RATE_LIMIT - 1)
        if not request.data.get("wait"):
            return Reply(204, b"", headers)
        data = request.data
        webhook_id = data["webhook_id"]
        message = {
            "id": self._snowflake(),
            "type": 0,
            "content": data.get("content") or "",
            "channel_id": data.get("thread_id") or webhook_id,
            "author": {
                "bot": True,
                "id": webhook_id,
                "username": data.get("username") or "Captain Hook",
                "avatar": None,
                "discriminator": "0000",
            },
            "attachments": self._attachments(data.get("attachments", [])),
            "embeds": data.get("embeds") or [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": bool(data.get("tts")),
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": data.get("flags") or 0,
            "components": data.get("components") or [],
            "webhook_id": webhook_id,
        }
        data["message_id"] = message["id"]
        await self._state.publish({"put": [request.namespace, webhook_id, message["id"], message]})
        return json_reply(message, 200, headers)

    def _apply(self, event: dict[str, Any]) -> None:
        if "put" in event:
            namespace, webhook_id, message_id, message = event["put"]
            self._messages[(namespace, webhook_id, message_id)] = message
            while len(self._messages) > _MAX_STORED_MESSAGES:
                self._messages.popitem(last=False)
        else:
            namespace, webhook_id, message_id = event["delete"]
            self._messages.pop((namespace, webhook_id, message_id), None)

    def _attachments(self, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Uploaded files as a message's attachment objects."""
        return [
            {"id": self._snowflake(), "filename": f["filename"], "size": f["size"], "content_type": f["content_type"]}
            for f in files
        ]

    def _stored(self, request: Request) -> tuple[tuple[str, str, str], dict[str, Any]]:
        key = (request.namespace, request.data["webhook_id"], request.data["message_id"])
        message = self._messages.get(key)
        if message is None:
            request.data["error"] = "unknown_message"
            raise BadRequest(json_reply({"message": "Unknown Message", "code": 10008}, 404))
        return key, message

    async def get_message(self, request: Request) -> Reply:
        await self._state.fresh()
        return json_reply(self._stored(request)[1], 200, self._rate_headers(_RATE_LIMIT - 1))

    async def edit_message(self, request: Request) -> Reply:
        await self._state.fresh()
        stored_key, message = self._stored(request)
        data = request.data
        edited: dict[str, Any] = {key: data[key] for key in ("content", "embeds", "components") if key in data}
        if "attachments" in data:
            edited["attachments"] = self._attachments(data["attachments"])
        merged = {**message, **edited}
        for key, empty in (("content", ""), ("embeds", []), ("components", [])):
            if merged[key] is None:
                merged[key] = empty
        if not (merged["content"].strip() or merged["embeds"] or merged["attachments"] or merged["components"]):
            data["error"] = "empty_message"
            raise BadRequest(json_reply({"message": "Cannot send an empty message", "code": 50006}, 400))
        merged["edited_timestamp"] = datetime.now(UTC).isoformat()
        await self._state.publish({"put": [*stored_key, merged]})
        return json_reply(merged, 200, self._rate_headers(_RATE_LIMIT - 1))

    async def delete_message(self, request: Request) -> Reply:
        await self._state.fresh()
        key, _ = self._stored(request)
        await self._state.publish({"delete": list(key)})
        return Reply(204, b"", self._rate_headers(_RATE_LIMIT - 1))

    async def webhook(self, request: Request) -> Reply:
        webhook_id = request.data["webhook_id"]
        return json_reply(
            {
                "id": webhook_id,
                "type": 1,
                "name": "mockhub",
                "avatar": None,
                "channel_id": webhook_id,
                "guild_id": webhook_id,
                "application_id": None,
                "token": request.path_params["token"],
            }
        )

    def finish(self, reply: Reply) -> None:
        # Every answer of Discord's API comes through Google's front end with the bucket headers, errors
        # and 429s included. discord.py takes a 429 without `Via` for a Cloudflare ban and gives up
        # instead of retrying, so a fault's or stub's answer gets them too (unless it set its own).
        names = {name.lower() for name, _ in reply.headers}
        if "via" not in names:
            reply.headers.append(("via", "1.1 google"))
        if "x-ratelimit-limit" not in names:
            reply.headers.extend(self._rate_headers(0 if reply.status == 429 else _RATE_LIMIT - 1))

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        if status == 413:
            return json_reply({"message": "Request entity too large", "code": 40005}, 413)
        return json_reply({"message": f"{status}: {message}", "code": 0}, status)

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            # Discord's 429: seconds as a float in the body and in the reset headers, whole seconds in
            # Retry-After. Half a second keeps client retry tests fast.
            headers = [*self._rate_headers(0), ("retry-after", "1"), ("x-ratelimit-scope", "user")]
            return json_reply(
                {"message": "You are being rate limited.", "retry_after": 0.5, "global": False}, 429, headers
            )
        if name == "unauthorized":
            return json_reply({"message": "Invalid Webhook Token", "code": 50027}, 401)
        status = {"server_error": 500, "unavailable": 503, "overloaded": 503}[name]
        message = "500: Internal Server Error" if status == 500 else "503: Service Unavailable"
        return json_reply({"message": message, "code": 0}, status)
