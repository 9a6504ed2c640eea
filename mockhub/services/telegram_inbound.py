"""The Telegram fake's updates to a bot's webhook (`POST /simulate/telegram/update`).

Telegram POSTs each `Update` as JSON to the URL given to `setWebhook`, with
`X-Telegram-Bot-Api-Secret-Token` when a `secret_token` was set there. A bot may answer the
webhook with one Bot API method call as its JSON body (`{"method": "sendMessage", ...}`), which
Telegram then performs: that call is recorded as the Telegram fake's outbound call.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator

from mockhub.journal import Call, ResponseRecord
from mockhub.services.base import Simulated, SimulationBody, SimulationContext

__all__ = ["UpdateBody", "update", "webhook_reply"]

# update_id grows by one for each update, as Telegram's do (per bot; one sequence is enough here).
_UPDATE_IDS = itertools.count(100_000_001)
_MESSAGE_IDS = itertools.count(1)


class UpdateBody(SimulationBody):
    """An update for a bot: a message from a user, an edit, a channel post or a button press."""

    url: str | None = Field(  # type: ignore[assignment]
        None, description="the bot's webhook (default: the one it set with setWebhook in this namespace)"
    )

    secret_token: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,256}$",
        description="setWebhook's secret_token, sent as X-Telegram-Bot-Api-Secret-Token",
    )
    update: dict[str, Any] | None = Field(None, description="the whole Update (update_id added when missing)")
    type: Literal["message", "edited_message", "channel_post", "callback_query"] = "message"
    text: str = "/start"
    chat_id: int = 123456789
    chat_type: Literal["private", "group", "supergroup", "channel"] = "private"
    user_id: int = 123456789
    username: str = "mockhub_user"
    first_name: str = "Mockhub"
    callback_data: str = Field("", description="callback_query: the pressed button's callback_data")

    @model_validator(mode="before")
    @classmethod
    def _message_as_update(cls, value: Any) -> Any:
        # `"message": {...}` alone is the update's message, as in Telegram's own examples.
        if isinstance(value, dict) and isinstance(value.get("message"), dict) and "update" not in value:
            value = {k: v for k, v in value.items() if k != "message"} | {"update": {"message": value["message"]}}
        return value

    bot_token: str | None = Field(
        None,
        pattern=r"^[^/?#\s]+$",
        description="the bot's token: whose setWebhook to use, the path of a method it answers with",
    )


def update(body: UpdateBody, where: SimulationContext, url: str, secret_token: str | None) -> Simulated:
    now = int(time.time())
    if body.update is not None:
        payload = {"update_id": next(_UPDATE_IDS), **body.update}
    else:
        user = {"id": body.user_id, "is_bot": False, "first_name": body.first_name, "username": body.username}
        chat: dict[str, Any] = {"id": body.chat_id, "type": body.chat_type}
        if body.chat_type == "private":
            chat.update({"first_name": body.first_name, "username": body.username})
        else:
            chat["title"] = "mockhub chat"
        message: dict[str, Any] = {"message_id": next(_MESSAGE_IDS), "date": now, "chat": chat}
        if body.type != "channel_post":
            message["from"] = user
        if body.type == "edited_message":
            message["edit_date"] = now
        message["text"] = body.text
        if body.text.startswith("/"):
            command = body.text.split()[0]
            message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
        payload = {"update_id": next(_UPDATE_IDS)}
        if body.type == "callback_query":
            payload["callback_query"] = {
                "id": str(next(_UPDATE_IDS) * 1000),
                "from": user,
                "message": message,
                "chat_instance": str(body.chat_id),
                "data": body.callback_data,
            }
        else:
            payload[body.type] = message
    headers = {"content-type": "application/json"}
    if secret_token:
        headers["x-telegram-bot-api-secret-token"] = secret_token
    inner: dict[str, Any] = next((v for k, v in payload.items() if k != "update_id" and isinstance(v, dict)), {})
    # A callback_query carries its message inside; the other kinds are the message.
    message_of: dict[str, Any] = inner["message"] if isinstance(inner.get("message"), dict) else inner
    chat_of: dict[str, Any] = message_of["chat"] if isinstance(message_of.get("chat"), dict) else {}
    data: dict[str, Any] = {
        "update_id": payload["update_id"],
        "type": next((k for k in payload if k != "update_id"), None),
        "chat_id": str(chat_of.get("id")) if chat_of.get("id") is not None else None,
        "text": message_of.get("text"),
        "update": payload,
    }
    return Simulated(headers=headers, body=orjson.dumps(payload), data=data, url=url)


def webhook_reply(
    service: str, token: str, where: SimulationContext, delivery: Call, answer: ResponseRecord
) -> list[Call]:
    """The Bot API method a bot answered the webhook with (`{"method": ...}`), as the call Telegram makes."""
    if not 200 <= answer.status < 300 or "json" not in answer.headers.get("content-type", "").lower():
        return []
    try:
        reply = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        delivery.data["reply_error"] = "the answer is not JSON"
        return []
    if not isinstance(reply, dict) or not isinstance(reply.get("method"), str):
        return []
    args = {k: v for k, v in reply.items() if k != "method"}
    data: dict[str, Any] = {"method": reply["method"], **args, "source": "webhook_reply"}
    if "chat_id" in args:
        data["chat_id"] = str(args["chat_id"])
    return [
        Call(
            service=service,
            method="POST",
            path=f"/bot{token}/{reply['method']}",
            namespace=where.namespace,
            direction="outbound",
            headers={"content-type": "application/json"},
            body=orjson.dumps(args),
            data=data,
        )
    ]
