"""Telegram Bot API (`telegram`): `/bot{token}/{method}`, GET or POST, as api.telegram.org answers it.

Parameters come from the query string and from an `application/x-www-form-urlencoded`,
`application/json` or `multipart/form-data` body, all merged as the Bot API server does (a JSON
body's non-string values arrive as their JSON text, so `reply_markup` may be an object in JSON and a
JSON-serialized string in a form). Method names are case-insensitive. Every answer is
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description"[, "parameters"]}` with the
error code as the HTTP status; the descriptions are the Bot API server's own
(`tdlib/telegram-bot-api`), and `parse_mode` markup is parsed by a port of TDLib's parsers
(`telegram_markup`). Sent messages are kept per namespace and chat, with increasing `message_id`s,
so `editMessageText` and `deleteMessage` know them; uploads are recorded as `data.attachments` and
served by `GET /calls/{id}/attachments/{index}` from the recorded body.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import mimetypes
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson
from pydantic import BaseModel, Field

from mockhub.filters import DataFields
from mockhub.journal import Call, ResponseRecord, default_summary, new_id
from mockhub.rules import Preset
from mockhub.services.base import (
    AppUrl,
    Attachment,
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
from mockhub.services.forms import FormPart, MultipartError, parse_multipart
from mockhub.services.telegram_inbound import UpdateBody, update, webhook_reply
from mockhub.services.telegram_markup import PARSE_MODES, EntityError, format_text

__all__ = ["TelegramService"]


class TelegramReply(BaseModel):
    """Telegram's fields of a stub's `reply`: make the next matching calls fail as Telegram would."""

    error: str | None = Field(
        None,
        description='the description of an ok=false answer, e.g. "Forbidden: bot was blocked by the user"; its '
        "status follows from its prefix (Bad Request 400, Unauthorized 401, Forbidden 403, Not Found 404, "
        "Conflict 409, Too Many Requests 429) unless error_code says",
    )
    error_code: int | None = Field(None, ge=400, le=599, description="the HTTP status and error_code of `error`")
    retry_after: int | None = Field(None, ge=1, description="seconds, as parameters.retry_after (a 429)")
    migrate_to_chat_id: int | None = Field(
        None, description="parameters.migrate_to_chat_id (a group became a supergroup)"
    )


_RETRY_AFTER = 1  # seconds in the rate_limited preset: short, so client retry tests stay fast
_MAX_TEXT = 4096  # UTF-16 code units of a message's text, after entities are parsed
_MAX_CAPTION = 1024
_MAX_STORED = 10_000  # messages kept for edits and deletes (and files for re-sending), oldest go first
_BOT_NAME = "mockhub"
_BOT_USERNAME = "mockhub_bot"
_USER_NAME = "mockhub user"

_TOKEN = re.compile(r"^([1-9]\d{0,17}):([A-Za-z0-9_-]+)$")
_USERNAME = re.compile(r"^@([A-Za-z][A-Za-z0-9_]{3,31})$")
_INTEGER = re.compile(r"^\s*[-+]?\d+")
_PREFIXES = {
    "Bad Request": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "Not Found": 404,
    "Conflict": 409,
    "Too Many Requests": 429,
    "Internal Server Error": 500,
    "Bad Gateway": 502,
}
_WEBHOOK_INFO = {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as "
    "a current content and reply markup of the message"
)


def _fail(status: int, description: str, **parameters: int) -> Reply:
    """An ok=false answer; the Bot API sends its error code as the HTTP status too."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    headers: list[tuple[str, str]] = []
    if parameters:
        body["parameters"] = parameters
        if "retry_after" in parameters:
            headers.append(("retry-after", str(parameters["retry_after"])))
    return json_reply(body, status, headers)


def _ok(result: Any) -> Reply:
    return json_reply({"ok": True, "result": result})


def _bad(description: str, data: dict[str, Any], status: int = 400) -> BadRequest:
    """The parser's refusal: the answer, and `data` with `error` saying why (the description's tail)."""
    word = description.split(": ", 1)[-1]
    return BadRequest(_fail(status, description), {**data, "error": word})


def _to_bool(value: str) -> bool:
    return value.strip() in ("true", "True", "1")


def _to_int(value: str) -> int:
    """TDLib's lenient integer parsing: the leading digits, 0 when there are none."""
    m = _INTEGER.match(value)
    return int(m.group(0)) if m else 0


def _partial_json_object(text: str) -> tuple[dict[str, Any], str | None]:
    """The fields of a JSON object body as the Bot API server reads them: field by field, keeping
    those read before an error (which it logs and ignores). Returns (fields, the error or None)."""
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}
    i = len(text) - len(text.lstrip())
    if text[i : i + 1] != "{":
        return fields, "JSON object expected"
    i += 1
    ws = re.compile(r"\s*")

    def skip(pos: int) -> int:
        m = ws.match(text, pos)
        return m.end() if m else pos

    while True:
        i = skip(i)
        if text[i : i + 1] == "}":
            i = skip(i + 1)
            return fields, None if i == len(text) else "unexpected data after object end"
        if i >= len(text):
            return fields, "expected parameter name"
        try:
            key, i = decoder.raw_decode(text, i)
        except ValueError:
            return fields, "can't parse parameter name"
        if not isinstance(key, str):
            return fields, "can't parse parameter name"
        i = skip(i)
        if text[i : i + 1] != ":":
            return fields, "can't parse object, ':' expected"
        i = skip(i + 1)
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return fields, "can't parse parameter value"
        fields[key] = value
        i = skip(i)
        if text[i : i + 1] == ",":
            i += 1
        elif text[i : i + 1] != "}":
            return fields, "expected next field or object end"


def _image_size(content: bytes) -> tuple[int, int]:
    """Width and height of a PNG, GIF, JPEG or WebP image from its header; (0, 0) when unknown."""
    try:
        if content[:8] == b"\x89PNG\r\n\x1a\n" and content[12:16] == b"IHDR":
            w, h = struct.unpack(">II", content[16:24])
            return int(w), int(h)
        if content[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", content[6:10])
            return int(w), int(h)
        if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
            chunk = content[12:16]
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", content[26:30])
                return int(w) & 0x3FFF, int(h) & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(content[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8X":
                return int.from_bytes(content[24:27], "little") + 1, int.from_bytes(content[27:30], "little") + 1
        if content[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(content):
                if content[i] != 0xFF:
                    i += 1
                    continue
                marker = content[i + 1]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", content[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + int.from_bytes(content[i + 2 : i + 4], "big")
    except struct.error:
        pass
    return 0, 0


_INLINE_BUTTON_KINDS = frozenset(
    [
        "url",
        "callback_data",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "callback_game",
        "pay",
        "web_app",
        "copy_text",
    ]
)


def _text_problem(button: dict[str, Any]) -> str | None:
    if "text" not in button:
        return 'Can\'t find field "text"'
    if not isinstance(button["text"], str):
        return 'Field "text" must be of type String'
    return None


def _keyboard_problem(markup: dict[str, Any]) -> str | None:
    """What the Bot API server refuses in a reply markup's keyboards (its messages), or None."""
    keyboard = markup.get("keyboard")
    if keyboard is not None:
        if not isinstance(keyboard, list):
            return 'Field "keyboard" must be of type Array'
        for row in keyboard:
            if not isinstance(row, list):
                return 'Field "keyboard" must be an Array of Arrays'
            for button in row:
                if isinstance(button, str):
                    continue
                wrong = _text_problem(button) if isinstance(button, dict) else "Object expected as KeyboardButton"
                if wrong is not None:
                    return f"can't parse keyboard button: {wrong}"
    inline = markup.get("inline_keyboard")
    if inline is not None:
        if not isinstance(inline, list):
            return 'Field "inline_keyboard" must be of type Array'
        for row in inline:
            if not isinstance(row, list):
                return 'Field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            for button in row:
                problem: str | None = "InlineKeyboardButton must be an Object"
                if isinstance(button, dict):
                    problem = _text_problem(button)
                    if problem is None and not _INLINE_BUTTON_KINDS.intersection(button):
                        problem = "Text buttons are unallowed in the inline keyboard"
                if problem is not None:
                    return f"can't parse inline keyboard button: {problem}"
    return None


@dataclass(slots=True)
class _KeptFile:
    """A file mockhub answered: its kind, the object(s) answered, and where an upload's bytes are."""

    kind: str
    value: Any
    source: tuple[str, int] | None  # (call id, attachment index) of the upload
    path: str | None = None  # the file_path getFile answered


class _Args:
    """A call's parameters as strings, the way the Bot API server holds them, plus the uploaded files."""

    __slots__ = ("files", "values")

    def __init__(self, values: dict[str, str], files: dict[str, FormPart]) -> None:
        self.values = values
        self.files = files

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def has(self, name: str) -> bool:
        return name in self.values


def _as_text(value: Any) -> str:
    """A JSON value as a parameter: strings as they are, anything else as its JSON text."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class TelegramService(Service):
    """Telegram Bot API: getMe, sendMessage, sendPhoto, sendDocument, editMessageText, deleteMessage."""

    name = "telegram"
    message = True
    label = "Telegram"
    color = "#229ed9"
    hosts = ("api.telegram.org",)
    urls = {
        "telegram_api": AppUrl(
            path="/bot",
            description="the Bot API root the token is appended to (`telegram.Bot(token, base_url=...)`)",
        ),
        "telegram_files": AppUrl(
            path="/file/bot",
            description="the root of file downloads (`telegram.Bot(token, base_file_url=...)`)",
        ),
    }
    env = (EnvVar(name="TELEGRAM_API_URL", value="{urls.telegram_api}", description="base URL before the token"),)
    # The bot token is the path's credential: /bot<token>/<method> (and /file/bot<token>/...).
    secret_paths = (r"^((?:/file)?/bot)([^/?#]+)",)
    # setWebhook's secret, sent back on every update as X-Telegram-Bot-Api-Secret-Token.
    secret_params = ("secret_token",)
    # `to` is the chat as the application named it; `contains` reads the text as sent and as shown.
    fields = DataFields(to=("chat_id",), text=("text", "plain_text", "caption", "plain_caption"))
    stub_reply = TelegramReply

    @classmethod
    def summarize(cls, call: Call) -> str:
        data = call.data
        method = data.get("method")
        text = data.get("text") or data.get("caption")
        if not text and data.get("attachments"):
            text = ", ".join(str(a.get("filename")) for a in data["attachments"] if isinstance(a, dict))
        chat = data.get("chat_id")
        if isinstance(method, str) and chat:
            return f"{method} {chat}: {text}" if text else f"{method} {chat}"
        if isinstance(method, str):
            return method
        return default_summary(call)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self._pinned = ctx.pinned
        # The last message_id of each chat, by (namespace, chat id).
        self._last_id: OrderedDict[tuple[str, int], int] = OrderedDict()
        # Messages sent, by (namespace, chat id, message_id), oldest first.
        self._messages: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()
        # Webhooks set with setWebhook, by (namespace, bot token): (url, secret_token); /simulate uses them.
        self._webhooks: OrderedDict[tuple[str, str], tuple[str, str | None]] = OrderedDict()
        # Files sent, by (namespace, file_id): what a later send of the same file_id answers.
        self._files: OrderedDict[tuple[str, str], _KeptFile] = OrderedDict()
        # Uploaded files by (namespace, file_path): the file_id getFile answered the path for.
        self._paths: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._file_numbers = itertools.count()
        self._methods: dict[str, tuple[str, Callable[[Request, _Args, dict[str, Any]], None]]] = {
            name.lower(): (name, parse)
            for name, parse in (
                ("getMe", self._parse_nothing),
                ("sendMessage", self._parse_send_message),
                ("sendPhoto", self._parse_send_photo),
                ("sendDocument", self._parse_send_document),
                ("editMessageText", self._parse_edit_message_text),
                ("deleteMessage", self._parse_delete_message),
                ("getFile", self._parse_get_file),
                # What an application's start-up and polling loop calls, answered plainly.
                ("getUpdates", self._parse_nothing),
                ("setWebhook", self._parse_nothing),
                ("deleteWebhook", self._parse_nothing),
                ("getWebhookInfo", self._parse_nothing),
                ("sendChatAction", self._parse_chat_action),
            )
        }
        self._answers: dict[str, Callable[[Request], Reply]] = {
            "getMe": self._get_me,
            "sendMessage": self._send,
            "sendPhoto": self._send,
            "sendDocument": self._send,
            "editMessageText": self._edit_message_text,
            "deleteMessage": self._delete_message,
            "getFile": self._get_file,
            "getUpdates": lambda request: _ok([]),
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._webhook_info,
            "sendChatAction": lambda request: _ok(True),
        }

    def routes(self) -> list[Route]:
        return [
            route("GET POST", "/bot{token}/{method}", self.answer, self.parse),
            route("GET", "/file/bot{token}/{file_path:path}", self.download, self.parse_download),
        ]

    def simulations(self) -> dict[str, Simulation]:
        return {
            "update": Simulation(
                "an Update POSTed to the bot's webhook (X-Telegram-Bot-Api-Secret-Token); a method answered is made",
                UpdateBody,
                self._simulated_update,
                self._webhook_answer,
                aliases=("message", "webhook"),
            )
        }

    # -- webhooks: what setWebhook set, where simulated updates go -----------------------------
    def _set_webhook(self, request: Request) -> Reply:
        key = (request.namespace, request.path_params["token"])
        url, secret = request.data.get("url") or "", request.data.get("secret_token") or None
        if url:
            self._webhooks[key] = (url, secret)
        else:  # an empty url removes the webhook, as deleteWebhook does
            self._webhooks.pop(key, None)
        return _ok(True)

    def _delete_webhook(self, request: Request) -> Reply:
        self._webhooks.pop((request.namespace, request.path_params["token"]), None)
        return _ok(True)

    def _webhook_info(self, request: Request) -> Reply:
        found = self._webhooks.get((request.namespace, request.path_params["token"]))
        return _ok({**_WEBHOOK_INFO, "url": found[0]} if found else _WEBHOOK_INFO)

    def _webhook_of(self, body: UpdateBody, namespace: str) -> tuple[str, str | None, str | None]:
        """(bot token, webhook URL, secret token) of a simulated update: given, else what setWebhook set."""
        token = body.bot_token
        if token is None:
            mine = [t for (ns, t) in self._webhooks if ns == namespace]
            token = mine[0] if len(mine) == 1 else "123456:mockhub"
        url, secret = self._webhooks.get((namespace, token), (None, None))
        return token, body.url or url, body.secret_token if body.secret_token is not None else secret

    def _simulated_update(self, body: UpdateBody, where: SimulationContext) -> Simulated:
        _, url, secret = self._webhook_of(body, where.namespace)
        if url is None:
            raise ValueError(
                f"url: Field required (no bot set a webhook with setWebhook in namespace {where.namespace!r})"
            )
        return update(body, where, url, secret)

    def _webhook_answer(
        self, body: UpdateBody, where: SimulationContext, delivery: Call, answer: ResponseRecord
    ) -> list[Call]:
        token = self._webhook_of(body, where.namespace)[0]
        return webhook_reply(self.name, token, where, delivery, answer)

    def reset(self, namespace: str | None) -> None:
        def forget(store: OrderedDict[Any, Any]) -> None:
            for key in [k for k in store if namespace is None or k[0] == namespace]:
                del store[key]

        forget(self._last_id)
        forget(self._webhooks)
        forget(self._messages)
        forget(self._files)
        forget(self._paths)

    # -- errors and presets --------------------------------------------------------------------
    def error(self, status: int, message: str, code: str | None = None) -> Reply:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        if status == 429:
            return _fail(429, f"Too Many Requests: retry after {_RETRY_AFTER}", retry_after=_RETRY_AFTER)
        return _fail(status, f"{phrase}: {message}")

    def preset(self, name: Preset, request: Request) -> Reply:
        if name == "rate_limited":
            return _fail(429, f"Too Many Requests: retry after {_RETRY_AFTER}", retry_after=_RETRY_AFTER)
        if name == "unauthorized":
            return _fail(401, "Unauthorized")
        if name == "server_error":
            return _fail(500, "Internal Server Error")
        if name == "overloaded":
            return _fail(502, "Bad Gateway")
        return _fail(503, "Service Unavailable")

    def _stub_error(self, request: Request) -> Reply | None:
        reply = request.stub.reply if request.stub is not None else None
        if reply is None or not reply.extra("error"):
            return None
        description = str(reply.extra("error"))
        status = reply.extra("error_code")
        if not isinstance(status, int):
            status = next((s for prefix, s in _PREFIXES.items() if description.startswith(prefix)), 400)
        parameters: dict[str, int] = {}
        for key in ("retry_after", "migrate_to_chat_id"):
            if isinstance(reply.extra(key), int):
                parameters[key] = reply.extra(key)
        m = re.match(r"Too Many Requests: retry after (\d+)", description)
        if status == 429 and "retry_after" not in parameters:
            parameters["retry_after"] = int(m.group(1)) if m else _RETRY_AFTER
        request.data["error"] = description.split(": ", 1)[-1]
        return _fail(status, description, **parameters)

    # -- parsing -------------------------------------------------------------------------------
    def _args(self, request: Request, data: dict[str, Any]) -> _Args:
        """The parameters from the query string and the body (form, JSON or multipart) as strings."""
        values = {k: v[0] for k, v in request.query.items()} if request.query_string else {}
        files: dict[str, FormPart] = {}
        body = request.body
        content_type = request.content_type
        if not body:
            return _Args(values, files)
        if content_type == "application/json":
            fields, problem = _partial_json_object(body.decode("utf-8", "replace"))
            if problem is not None:
                # The Bot API server logs a body it cannot read and goes on with the fields it read.
                data["body_error"] = f"the JSON body does not parse ({problem}); read {sorted(fields)}"
            values.update({k: _as_text(v) for k, v in fields.items()})
        elif content_type == "application/x-www-form-urlencoded":
            values.update({k: v[0] for k, v in request.form().items()})
        elif content_type == "multipart/form-data":
            try:
                parts = parse_multipart(request.headers.get("content-type", ""), body)
            except MultipartError as exc:
                raise _bad(f"Bad Request: {exc}", {**data, "error": "bad_multipart"}) from None
            attachments = []
            for part in parts:
                if part.filename is not None:
                    files[part.name] = part
                    attachments.append(
                        {
                            "field": part.name,
                            "filename": part.filename,
                            "content_type": part.content_type,
                            "size": len(part.value),
                        }
                    )
                else:
                    values[part.name] = part.text
            if attachments:
                data["attachments"] = attachments
        return _Args(values, files)

    def _check_token(self, request: Request, data: dict[str, Any]) -> None:
        token = request.path_params["token"]
        m = _TOKEN.match(token)
        if m is None:
            raise _bad("Unauthorized: invalid token specified", data, 401)
        data["bot_id"] = int(m.group(1))
        if self._pinned is not None and token not in self._pinned:
            raise _bad("Unauthorized", data, 401)

    def parse_download(self, request: Request) -> dict[str, Any]:
        data: dict[str, Any] = {"method": "file", "file_path": request.path_params["file_path"]}
        self._check_token(request, data)
        return data

    def parse(self, request: Request) -> dict[str, Any]:
        given = request.path_params["method"]
        found = self._methods.get(given.lower())
        data: dict[str, Any] = {"method": found[0] if found else given}
        self._check_token(request, data)
        if found is None:
            raise _bad("Not Found", data, 404)
        args = self._args(request, data)
        if args.has("chat_id"):
            # Recorded before any check, so the `to` filter finds refused calls too.
            data["chat_id"] = args.get("chat_id").strip()
        found[1](request, args, data)
        return data

    def _parse_nothing(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        for key in ("url", "secret_token", "offset", "timeout", "drop_pending_updates"):
            if args.has(key):
                data[key] = args.get(key)

    def _chat(self, args: _Args, data: dict[str, Any]) -> dict[str, Any]:
        """The chat `chat_id` names, or the Bot API's refusal (docs/services/telegram.md: which ids exist)."""
        given = args.get("chat_id").strip()
        if not given:
            raise _bad("Bad Request: chat_id is empty", data)
        named = _USERNAME.match(given)
        if named is not None:
            username = named.group(1)
            digest = int.from_bytes(hashlib.sha1(username.lower().encode()).digest()[:8], "big")
            chat_id = -(1_000_000_000_000 + digest % 1_000_000_000)
            return {"id": chat_id, "title": username, "username": username, "type": "channel"}
        if not re.fullmatch(r"-?\d{1,16}", given):
            raise _bad("Bad Request: chat not found", data)
        chat_id = int(given)
        if 0 < chat_id < 1 << 52:
            return {"id": chat_id, "first_name": _USER_NAME, "type": "private"}
        if -1_000_000_000_000 < chat_id < 0:
            return {"id": chat_id, "title": "mockhub group", "type": "group"}
        if -2_000_000_000_000 < chat_id <= -1_000_000_000_000:
            return {"id": chat_id, "title": "mockhub supergroup", "type": "supergroup"}
        raise _bad("Bad Request: chat not found", data)

    def _formatted(self, args: _Args, data: dict[str, Any], field: str, entities_field: str) -> None:
        """`text` or `caption` as the message shows it, with its entities, from `parse_mode` or given ones."""
        raw = args.get(field)
        parse_mode = args.get("parse_mode")
        data[field] = raw
        if parse_mode:
            data["parse_mode"] = parse_mode
        if len(raw.encode()) > 1 << 15:
            raise _bad("Bad Request: text is too long", data)
        mode = parse_mode.lower()
        if raw and mode and mode != "none" and mode not in PARSE_MODES:
            raise _bad("Bad Request: unsupported parse_mode", data)
        entities: list[dict[str, Any]] = []
        if raw and mode in PARSE_MODES:
            try:
                shown, entities = format_text(raw, mode)
            except EntityError as exc:
                message = str(exc)
                raise _bad(f"Bad Request: can't parse entities: {message[:1].lower()}{message[1:]}", data) from None
        else:
            given = args.get(entities_field)
            if given:
                try:
                    parsed = orjson.loads(given)
                except ValueError:
                    parsed = None  # the Bot API ignores entities it cannot parse
                if isinstance(parsed, list):
                    entities = self._given_entities(parsed, data)
            shown, entities = format_text(raw, None)[0], entities
            if shown != raw:
                entities = self._shift(raw, shown, entities)
        data[f"plain_{field}"] = shown
        if entities:
            data[entities_field] = entities

    @staticmethod
    def _given_entities(parsed: list[Any], data: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for entity in parsed:
            ok = (
                isinstance(entity, dict)
                and isinstance(entity.get("type"), str)
                and isinstance(entity.get("offset"), int)
                and isinstance(entity.get("length"), int)
            )
            if not ok:
                raise _bad('Bad Request: can\'t parse MessageEntity: field "type" must be of type String', data)
            out.append(entity)
        return out

    @staticmethod
    def _shift(raw: str, shown: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entities given for `raw` moved onto `shown`, its trimmed form."""
        head = raw.index(shown) if shown else 0
        units = len(raw[:head].encode("utf-16-le")) // 2
        size = len(shown.encode("utf-16-le")) // 2
        out = []
        for entity in entities:
            start = max(entity["offset"] - units, 0)
            end = min(entity["offset"] + entity["length"] - units, size)
            if end > start:
                out.append({**entity, "offset": start, "length": end - start})
        return out

    def _reply_markup(self, args: _Args, data: dict[str, Any]) -> None:
        raw = args.get("reply_markup")
        if not raw:
            return
        try:
            markup = orjson.loads(raw)
        except ValueError:
            raise _bad("Bad Request: can't parse reply keyboard markup JSON object", data) from None
        if not isinstance(markup, dict):
            raise _bad("Bad Request: object expected as reply markup", data)
        data["reply_markup"] = markup
        problem = _keyboard_problem(markup)
        if problem is not None:
            # The Bot API lower-cases the first letter of the message after its prefix.
            raise _bad(f"Bad Request: {problem[:1].lower()}{problem[1:]}", data)

    def _reply_parameters(self, args: _Args, data: dict[str, Any]) -> None:
        if not args.has("reply_parameters"):
            reply_to = _to_int(args.get("reply_to_message_id"))
            if reply_to > 0:
                data["reply_parameters"] = {
                    "message_id": reply_to,
                    "allow_sending_without_reply": _to_bool(args.get("allow_sending_without_reply")),
                }
            return
        raw = args.get("reply_parameters")
        if not raw:
            return
        try:
            parameters = orjson.loads(raw)
        except ValueError:
            raise _bad("Bad Request: can't parse reply parameters JSON object", data) from None
        if not isinstance(parameters, dict):
            raise _bad("Bad Request: object expected as reply parameters", data)
        if parameters and not isinstance(parameters.get("message_id"), int):
            raise _bad('Bad Request: field "message_id" must be of type Number', data)
        data["reply_parameters"] = parameters

    def _link_preview(self, args: _Args, data: dict[str, Any]) -> None:
        raw = args.get("link_preview_options")
        if not raw:
            if _to_bool(args.get("disable_web_page_preview")):
                data["link_preview_options"] = {"is_disabled": True}
            return
        try:
            options = orjson.loads(raw)
        except ValueError:
            raise _bad("Bad Request: can't parse link preview options JSON object", data) from None
        if not isinstance(options, dict):
            raise _bad("Bad Request: object expected as link preview options", data)
        data["link_preview_options"] = options

    def _sending(self, args: _Args, data: dict[str, Any]) -> None:
        """What every send method takes besides its content: in the Bot API server's order of checks."""
        self._reply_parameters(args, data)
        self._reply_markup(args, data)
        data["chat"] = self._chat(args, data)
        for key in ("disable_notification", "protect_content"):
            if args.has(key):
                data[key] = _to_bool(args.get(key))
        thread = _to_int(args.get("message_thread_id"))
        if thread > 0:
            data["message_thread_id"] = thread

    def _parse_send_message(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        if not args.get("text"):
            data["text"] = args.get("text")
            raise _bad("Bad Request: message text is empty", data)
        self._formatted(args, data, "text", "entities")
        if not data["plain_text"]:
            raise _bad("Bad Request: message text is empty", data)
        if len(data["plain_text"].encode("utf-16-le")) // 2 > _MAX_TEXT:
            raise _bad("Bad Request: message is too long", data)
        self._link_preview(args, data)
        self._sending(args, data)

    def _media(self, request: Request, args: _Args, data: dict[str, Any], field: str, kind: str) -> None:
        """`photo` / `document`: an upload (the part itself or `attach://<part>`), a file_id sent before, or a URL."""
        value = args.get(field)
        part = args.files.get(value[len("attach://") :] if value.startswith("attach://") else field)
        if part is None and (not value or value.startswith("attach://")):
            raise _bad(f"Bad Request: there is no {kind} in the request", data)
        self._formatted(args, data, "caption", "caption_entities")
        if len(data["plain_caption"].encode("utf-16-le")) // 2 > _MAX_CAPTION:
            raise _bad("Bad Request: message caption is too long", data)
        self._sending(args, data)
        if part is not None:
            data[field] = {"upload": part.name, "filename": part.filename, "size": len(part.value)}
            return
        data[field] = value
        if not re.match(r"^https?://", value, re.I) and (request.namespace, value) not in self._files:
            raise _bad("Bad Request: wrong file identifier/HTTP URL specified", data)

    def _parse_send_photo(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        self._media(request, args, data, "photo", "photo")
        data["has_spoiler"] = _to_bool(args.get("has_spoiler"))

    def _parse_send_document(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        self._media(request, args, data, "document", "document")

    def _parse_edit_message_text(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        if not args.get("text"):
            raise _bad("Bad Request: message text is empty", data)
        self._formatted(args, data, "text", "entities")
        if not data["plain_text"]:
            raise _bad("Bad Request: message text is empty", data)
        self._reply_markup(args, data)
        message_id = _to_int(args.get("message_id"))
        if not args.get("chat_id") and message_id <= 0:
            inline = args.get("inline_message_id")
            if not inline:
                raise _bad("Bad Request: message identifier is not specified", data)
            data["inline_message_id"] = inline
            return
        data["chat"] = self._chat(args, data)
        data["message_id"] = message_id
        if message_id <= 0:
            raise _bad("Bad Request: message to edit not found", data)

    def _parse_delete_message(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        message_id = _to_int(args.get("message_id"))
        if not args.get("chat_id"):
            raise _bad("Bad Request: chat identifier is not specified", data)
        if message_id <= 0:
            raise _bad("Bad Request: message identifier is not specified", data)
        data["chat"] = self._chat(args, data)
        data["message_id"] = message_id

    def _parse_get_file(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        data["file_id"] = args.get("file_id")

    def _parse_chat_action(self, request: Request, args: _Args, data: dict[str, Any]) -> None:
        data["chat"] = self._chat(args, data)
        data["action"] = args.get("action")

    # -- answers -------------------------------------------------------------------------------
    async def answer(self, request: Request) -> Reply:
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        return self._answers[request.data["method"]](request)

    @staticmethod
    def _bot(bot_id: int) -> dict[str, Any]:
        return {"id": bot_id, "is_bot": True, "first_name": _BOT_NAME, "username": _BOT_USERNAME}

    def _get_me(self, request: Request) -> Reply:
        return _ok(
            {
                **self._bot(request.data["bot_id"]),
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        )

    def _file_id(self, prefix: str, content: bytes) -> tuple[str, str]:
        """A file_id and file_unique_id: the same bytes give the same ids, as Telegram's unique ids do."""
        digest = hashlib.sha256(prefix.encode() + content).digest()
        file_id = prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")
        unique = "AQAD" + base64.urlsafe_b64encode(digest[:9]).decode()
        return file_id, unique

    def _keep_file(self, request: Request, file_id: str, kind: str, value: Any, upload: FormPart | None) -> None:
        """Remember a file sent, for a later send of its file_id and for getFile; an upload's bytes stay
        in the recorded call (`source`: its id and attachment index), read again on download."""
        source: tuple[str, int] | None = None
        if upload is not None:
            if not request.call.id:
                request.call.id = new_id("c_")  # the id the journal would give it, known before it is recorded
            names = [a["field"] for a in request.data.get("attachments", [])]
            source = (request.call.id, names.index(upload.name))
        key = (request.namespace, file_id)
        kept = self._files.pop(key, None)
        if kept is not None and source is None:
            source = kept.source
        self._files[key] = _KeptFile(kind, value, source)
        while len(self._files) > _MAX_STORED:
            self._files.popitem(last=False)

    @staticmethod
    def _upload(request: Request, field: str) -> FormPart | None:
        """The uploaded part `data[field]` names, read again from the body (bytes stay out of `data`)."""
        given = request.data.get(field)
        if not isinstance(given, dict):
            return None
        parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        return next(p for p in parts if p.name == given["upload"] and p.filename is not None)

    def _photo(self, request: Request) -> list[dict[str, Any]]:
        data = request.data
        upload = self._upload(request, "photo")
        if upload is None:
            kept = self._files.get((request.namespace, data["photo"]))
            if kept is not None and kept.kind == "photo":
                return list(kept.value)
            # A URL: mockhub fetches nothing, so the picture's size is unknown.
            file_id, unique = self._file_id("AgAC", str(data["photo"]).encode())
            sizes = [{"file_id": file_id, "file_unique_id": unique, "width": 0, "height": 0}]
        else:
            content = upload.value
            width, height = _image_size(content)
            file_id, unique = self._file_id("AgAC", content)
            sizes = [
                {
                    "file_id": file_id,
                    "file_unique_id": unique,
                    "file_size": len(content),
                    "width": width,
                    "height": height,
                }
            ]
        self._keep_file(request, file_id, "photo", sizes, upload)
        return sizes

    def _document(self, request: Request) -> dict[str, Any]:
        data = request.data
        upload = self._upload(request, "document")
        if upload is None:
            kept = self._files.get((request.namespace, data["document"]))
            if kept is not None and kept.kind == "document":
                return dict(kept.value)
            value = str(data["document"])
            file_id, unique = self._file_id("BQAC", value.encode())
            name = value.rsplit("/", 1)[-1].split("?", 1)[0] or "file"
            document: dict[str, Any] = {"file_name": name, "file_id": file_id, "file_unique_id": unique}
        else:
            content, filename, content_type = upload.value, upload.filename, upload.content_type
            file_id, unique = self._file_id("BQAC", content)
            if content_type in ("", "application/octet-stream", "text/plain") and filename:
                content_type = mimetypes.guess_type(filename)[0] or content_type
            document = {
                "file_name": filename or "file",
                "mime_type": content_type or "application/octet-stream",
                "file_id": file_id,
                "file_unique_id": unique,
                "file_size": len(content),
            }
        self._keep_file(request, file_id, "document", document, upload)
        return document

    def _send(self, request: Request) -> Reply:
        data = request.data
        chat = data["chat"]
        namespace = request.namespace
        reply_to: dict[str, Any] | None = None
        parameters = data.get("reply_parameters") or {}
        if parameters.get("message_id"):
            target_chat = chat["id"]
            reply_to = self._messages.get((namespace, target_chat, int(parameters["message_id"])))
            if reply_to is None and not parameters.get("allow_sending_without_reply"):
                data["error"] = "message to be replied not found"
                return _fail(400, "Bad Request: message to be replied not found")
        key = (namespace, chat["id"])
        message_id = self._last_id.pop(key, 0) + 1
        self._last_id[key] = message_id
        while len(self._last_id) > _MAX_STORED:
            self._last_id.popitem(last=False)
        message: dict[str, Any] = {"message_id": message_id}
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self._bot(data["bot_id"])
        message["chat"] = chat
        message["date"] = int(time.time())
        if "message_thread_id" in data:
            message["message_thread_id"] = data["message_thread_id"]
            if chat["type"] == "supergroup":
                message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        if data.get("protect_content"):
            message["has_protected_content"] = True
        method = data["method"]
        if method == "sendMessage":
            message["text"] = data["plain_text"]
            if data.get("entities"):
                message["entities"] = data["entities"]
        else:
            if method == "sendPhoto":
                message["photo"] = self._photo(request)
                if data.get("has_spoiler"):
                    message["has_media_spoiler"] = True
            else:
                message["document"] = self._document(request)
            if data["plain_caption"]:
                message["caption"] = data["plain_caption"]
                if data.get("caption_entities"):
                    message["caption_entities"] = data["caption_entities"]
        markup = data.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            # Only an inline keyboard belongs to the message; the others change the user's keyboard.
            message["reply_markup"] = markup
        data["message_id"] = message_id
        self._messages[(namespace, chat["id"], message_id)] = message
        while len(self._messages) > _MAX_STORED:
            self._messages.popitem(last=False)
        return _ok(message)

    def _edit_message_text(self, request: Request) -> Reply:
        data = request.data
        if "inline_message_id" in data:
            return _ok(True)
        message = self._messages.get((request.namespace, data["chat"]["id"], data["message_id"]))
        if message is None:
            data["error"] = "message to edit not found"
            return _fail(400, "Bad Request: message to edit not found")
        if "text" not in message:
            data["error"] = "there is no text in the message to edit"
            return _fail(400, "Bad Request: there is no text in the message to edit")
        entities = data.get("entities") or []
        markup = data.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        same = message["text"] == data["plain_text"] and message.get("entities", []) == entities
        if same and message.get("reply_markup") == new_markup:
            data["error"] = "message is not modified"
            return _fail(400, _NOT_MODIFIED)
        message["text"] = data["plain_text"]
        message.pop("entities", None)
        if entities:
            message["entities"] = entities
        message.pop("reply_markup", None)
        if new_markup is not None:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        return _ok(message)

    def _delete_message(self, request: Request) -> Reply:
        data = request.data
        if self._messages.pop((request.namespace, data["chat"]["id"], data["message_id"]), None) is None:
            data["error"] = "message to delete not found"
            return _fail(400, "Bad Request: message to delete not found")
        return _ok(True)

    def _get_file(self, request: Request) -> Reply:
        file_id = request.data["file_id"]
        kept = self._files.get((request.namespace, file_id)) if file_id else None
        if kept is None:
            request.data["error"] = "invalid file_id"
            return _fail(400, "Bad Request: invalid file_id")
        described = kept.value[-1] if isinstance(kept.value, list) else kept.value
        result = {k: described[k] for k in ("file_id", "file_unique_id", "file_size") if k in described}
        if kept.source is not None:
            if kept.path is None:
                name = str(described.get("file_name", ""))
                ext = name.rsplit(".", 1)[-1] if "." in name else ("jpg" if kept.kind == "photo" else "bin")
                kept.path = f"{kept.kind}s/file_{next(self._file_numbers)}.{ext}"
                self._paths[(request.namespace, kept.path)] = file_id
                while len(self._paths) > _MAX_STORED:
                    self._paths.popitem(last=False)
            # python-telegram-bot makes this a URL with its base_file_url: .../file/bot<token>/<file_path>
            result["file_path"] = kept.path
        request.data["file_path"] = result.get("file_path")
        return _ok(result)

    async def download(self, request: Request) -> Reply:
        """`GET /file/bot{token}/{file_path}`: the bytes of a file getFile answered a path for."""
        failed = self._stub_error(request)
        if failed is not None:
            return failed
        namespace = request.namespace
        file_id = self._paths.get((namespace, request.data["file_path"]))
        kept = self._files.get((namespace, file_id)) if file_id else None
        call = self.ctx.journal.get(kept.source[0]) if kept is not None and kept.source else None
        found = self.attachment(call, kept.source[1]) if call is not None and kept and kept.source else None
        if found is None:
            request.data["error"] = "Not Found"
            return _fail(404, "Not Found")
        request.data["size"] = len(found.content)
        return Reply(200, found.content, [("content-type", found.content_type)])

    # -- uploads -------------------------------------------------------------------------------
    def attachment(self, call: Call, index: int) -> Attachment | None:
        """The `index`-th uploaded file (the default reader), None for a body that cannot be taken apart (getFile)."""
        try:
            return super().attachment(call, index)
        except MultipartError:
            return None
