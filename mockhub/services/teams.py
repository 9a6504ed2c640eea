"""Microsoft Teams incoming webhooks (`teams`).

`POST /teams/{...}` takes a MessageCard or a message with Adaptive Card attachments and answers 200
with the body `1`, or 400 with a plain-text reason, like the Office 365 connector.
"""

from __future__ import annotations

from typing import Any

from mockhub.filters import DataFields
from mockhub.rules import Preset
from mockhub.services.base import AppUrl, BadRequest, Reply, Request, Route, Service, route, text_reply

__all__ = ["TeamsService"]

_ADAPTIVE = "application/vnd.microsoft.card.adaptive"
_TEAMS_MAX_BYTES = 28 * 1024  # the documented size limit of a connector message
_TEAMS_BAD_PAYLOAD = "Bad payload received by generic incoming webhook."
_TEAMS_NO_TEXT = "Summary or Text is required."
# MessageCard keys lifted into `data`, and their names there.
_MESSAGE_CARD_FIELDS = (
    ("title", "title"),
    ("summary", "summary"),
    ("text", "text"),
    ("themeColor", "theme_color"),
    ("sections", "sections"),
    ("potentialAction", "actions"),
)


def _teams_delivery_failed(status: int) -> str:
    # The text Teams connectors answer when the message could not be posted.
    return (
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
        f"{status} with ContextId tcid=0,server=mockhub,cv=mockhub.0.."
    )


def _card_texts(element: Any, out: list[str]) -> None:
    """The text of an Adaptive Card's TextBlocks and RichTextBlocks, depth first, for `data.text`."""
    if isinstance(element, dict):
        kind = element.get("type")
        if kind in ("TextBlock", "TextRun") and isinstance(element.get("text"), str):
            out.append(element["text"])
        for key in ("body", "items", "columns", "inlines", "facts", "card"):
            _card_texts(element.get(key), out)
        if kind == "Fact":
            out.append(f"{element.get('title', '')}: {element.get('value', '')}")
    elif isinstance(element, list):
        for item in element:
            if isinstance(item, dict) and "title" in item and "value" in item and "type" not in item:
                out.append(f"{item['title']}: {item['value']}")  # FactSet facts carry no type
            else:
                _card_texts(item, out)


class TeamsService(Service):
    """Microsoft Teams incoming webhook (Office 365 connector)."""

    name = "teams"
    message = True
    # Its `attachments` are cards, not files; their texts and action URLs count for links and codes.
    fields = DataFields(rich=("attachments", "sections", "actions"), files=())
    label = "Microsoft Teams"
    color = "#5f3dc4"
    hosts = ("*.webhook.office.com", "outlook.office.com")
    urls = {"teams_webhook": AppUrl(path="/teams/webhook", description="an incoming-webhook URL")}

    def routes(self) -> list[Route]:
        return [route("POST", "/teams/{webhook:path}", self.post, self.parse)]

    def parse(self, request: Request) -> dict[str, Any]:
        if len(request.body) > _TEAMS_MAX_BYTES:
            raise BadRequest(text_reply(_teams_delivery_failed(413), 413), {"error": "too_large"})
        try:
            message = request.json()
        except ValueError as exc:
            raise BadRequest(text_reply(_TEAMS_BAD_PAYLOAD, 400), {"error": "invalid_json"}) from exc
        if not isinstance(message, dict):
            raise BadRequest(text_reply(_TEAMS_BAD_PAYLOAD, 400), {"error": "invalid_payload"})
        data: dict[str, Any] = {"webhook": request.path_params["webhook"]}
        attachments = message.get("attachments")
        if message.get("type") == "message" or attachments is not None:
            return self._parse_attachments(message, attachments, data)
        # A MessageCard ("@type" may be missing: the connector treats any other object as one).
        data["card_type"] = "MessageCard"
        for key, field in _MESSAGE_CARD_FIELDS:
            if key in message:
                data[field] = message[key]
        if not any(isinstance(message.get(k), str) and message[k].strip() for k in ("summary", "text")):
            data["error"] = "no_text"
            raise BadRequest(text_reply(_TEAMS_NO_TEXT, 400), data)
        return data

    def _parse_attachments(self, message: dict[str, Any], attachments: Any, data: dict[str, Any]) -> dict[str, Any]:
        data["card_type"] = "AdaptiveCard"
        if not isinstance(attachments, list) or not attachments:
            if isinstance(message.get("text"), str) and message["text"].strip():
                data.update(card_type="message", text=message["text"])
                return data
            data["error"] = "no_text"
            raise BadRequest(text_reply(_TEAMS_NO_TEXT, 400), data)
        texts: list[str] = []
        cards: list[Any] = []
        for attachment in attachments:
            content = attachment.get("content") if isinstance(attachment, dict) else None
            if not isinstance(content, dict) or not isinstance(attachment.get("contentType"), str):
                data["error"] = "invalid_attachment"
                raise BadRequest(text_reply(_TEAMS_BAD_PAYLOAD, 400), data)
            if attachment["contentType"] == _ADAPTIVE and (
                content.get("type") != "AdaptiveCard" or not isinstance(content.get("body", []), list)
            ):
                data["error"] = "invalid_adaptive_card"
                raise BadRequest(text_reply(_TEAMS_BAD_PAYLOAD, 400), data)
            cards.append(content)
            _card_texts(content, texts)
        data["attachments"] = cards
        data["text"] = "\n".join(texts)
        if texts:
            data["title"] = texts[0]
        return data

    async def post(self, request: Request) -> Reply:
        return text_reply("1")

    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        return text_reply(message if status < 500 else _teams_delivery_failed(status), status)

    def preset(self, name: Preset, request: Request) -> Reply:
        status = {"rate_limited": 429, "server_error": 500, "unavailable": 503, "overloaded": 503}.get(name, 401)
        reply = text_reply(_teams_delivery_failed(status), status)
        if name == "rate_limited":
            reply.headers.append(("retry-after", "1"))
        return reply
