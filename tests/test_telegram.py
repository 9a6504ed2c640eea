"""The Telegram Bot API fake, driven with `python-telegram-bot` and plain httpx (the four parameter encodings)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import re
import struct
import warnings
import zlib
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
import support
from support import add_fault, add_stub, extra_hub, new_namespace
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter

from mockhub.server import ThreadedHub
from mockhub.services.telegram_markup import EntityError, format_text, parse_html, parse_markdown_v2

TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
calls = partial(support.calls, service="telegram")
# python-telegram-bot 22 warns, inside RetryAfter itself, that `retry_after` becomes a timedelta.
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2")
T = TypeVar("T")


def run(base_url: str, action: Callable[[Bot], Awaitable[T]], token: str = TOKEN) -> T:
    """`action(bot)` with a python-telegram-bot `Bot` pointed at mockhub (no getMe first: errors are the action's)."""

    async def main() -> T:
        bot = Bot(token, base_url=f"{base_url}/bot", base_file_url=f"{base_url}/file/bot")
        # Bot.initialize() would call getMe first; the request objects' own set-up is all a call needs.
        async with bot.request:
            return await action(bot)

    return asyncio.run(main())


def seconds(exc: RetryAfter) -> float:
    """`retry_after` in seconds (python-telegram-bot 22 warns that it becomes a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def png(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` white pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def api_call(base_url: str, method: str, token: str = TOKEN, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{base_url}/bot{token}/{method}", timeout=10, **kwargs)


# -- success, with the SDK ----------------------------------------------------------------------------


def test_get_me_is_the_bot_the_token_names(api: httpx.Client, base_url: str) -> None:
    me = run(base_url, lambda bot: bot.get_me())
    assert me.id == 123456
    assert me.is_bot is True
    assert me.username == "mockhub_bot"
    assert me.can_join_groups is True
    [call] = calls(api)
    assert call["data"]["method"] == "getMe"
    assert call["path"] == f"/bot{TOKEN}/getMe"


def test_send_message_with_markup_keyboard_and_reply(api: httpx.Client, base_url: str) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ack", callback_data="ack:1")]])

    async def send(bot: Bot) -> tuple[Message, Message]:
        first = await bot.send_message(-1001234567890, "db-1 is down", message_thread_id=7)
        second = await bot.send_message(
            -1001234567890,
            "<b>Disk</b> full on <code>db-1</code>",
            parse_mode="HTML",
            reply_markup=keyboard,
            disable_notification=True,
            message_thread_id=7,
            reply_parameters=ReplyParameters(first.message_id),
        )
        return first, second

    first, message = run(base_url, send)
    assert message.message_id == first.message_id + 1
    assert message.text == "Disk full on db-1"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 4), ("code", 13, 4)]
    assert message.reply_markup == keyboard
    assert message.chat.id == -1001234567890
    assert message.chat.type == "supergroup"
    assert message.from_user is not None and message.from_user.id == 123456 and message.from_user.is_bot
    assert message.message_thread_id == 7
    assert message.reply_to_message is not None
    assert message.reply_to_message.message_id == first.message_id
    assert message.reply_to_message.text == "db-1 is down"
    assert abs(message.date.timestamp() - dtm.datetime.now(dtm.UTC).timestamp()) < 60

    call = calls(api, contains="Disk full")[0]
    data = call["data"]
    assert data["method"] == "sendMessage"
    assert data["chat_id"] == "-1001234567890"
    assert data["text"] == "<b>Disk</b> full on <code>db-1</code>"
    assert data["plain_text"] == "Disk full on db-1"
    assert data["parse_mode"] == "HTML"
    assert data["reply_markup"] == {"inline_keyboard": [[{"text": "Ack", "callback_data": "ack:1"}]]}
    assert data["reply_parameters"] == {"message_id": first.message_id}
    assert data["disable_notification"] is True
    assert data["message_thread_id"] == 7
    assert data["message_id"] == message.message_id
    # `to` is the chat_id; `contains` finds the text as sent and as shown.
    assert len(calls(api, to="-1001234567890")) == 2
    assert len(calls(api, to="-100999")) == 0
    assert len(calls(api, contains="Disk full on db-1")) == 1
    assert call["summary"] == "sendMessage -1001234567890: <b>Disk</b> full on <code>db-1</code>"


def test_markdown_v2_and_a_channel_by_username(api: httpx.Client, base_url: str) -> None:
    message = run(
        base_url, lambda bot: bot.send_message("@ops_alerts", r"*CRIT* db\-1 \(98%\)", parse_mode="MarkdownV2")
    )
    assert message.text == "CRIT db-1 (98%)"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bold", 0, 4)]
    # A channel post: the channel is the chat and the sender, and there is no `from`.
    assert message.chat.type == "channel"
    assert message.chat.username == "ops_alerts"
    assert message.chat.id < -1000000000000
    assert message.sender_chat == message.chat
    assert message.from_user is None
    again = run(base_url, lambda bot: bot.send_message("@ops_alerts", "second"))
    assert again.chat.id == message.chat.id
    assert again.message_id == message.message_id + 1
    assert len(calls(api, to="@ops_alerts")) == 2


def test_message_ids_increase_per_chat_and_namespace(api: httpx.Client, base_url: str) -> None:
    def ids(url: str, chats: list[int]) -> list[int]:
        async def send(bot: Bot) -> list[int]:
            return [(await bot.send_message(chat, "tick")).message_id for chat in chats]

        return run(url, send)

    assert ids(base_url, [10, 10, 20, 10, 20]) == [1, 2, 1, 3, 2]
    ns = new_namespace()
    assert ids(f"{base_url}/ns/{ns}", [10]) == [1]
    assert [c["namespace"] for c in calls(api, namespace=ns)] == [ns]
    assert ids(base_url, [10]) == [4]
    # POST /reset forgets the chats' counters (and the stored messages).
    api.post("/reset").raise_for_status()
    assert ids(base_url, [10]) == [1]


def test_photo_and_document_uploads_are_kept_as_attachments(api: httpx.Client, base_url: str) -> None:
    picture = png(3, 2)
    report = b"%PDF-1.4 weekly report \x00\x01\x02\xff"

    async def send(bot: Bot) -> tuple[Message, Message, Message]:
        photo = await bot.send_photo(42, photo=picture, caption="<i>graph</i>", parse_mode="HTML", filename="g.png")
        document = await bot.send_document(42, document=report, filename="report.pdf", caption="weekly")
        # A file_id sent before is sent again without uploading it.
        again = await bot.send_photo(42, photo=photo.photo[-1].file_id)
        return photo, document, again

    photo, document, again = run(base_url, send)
    [size] = photo.photo
    assert (size.width, size.height, size.file_size) == (3, 2, len(picture))
    assert photo.caption == "graph"
    assert [(e.type, e.offset, e.length) for e in photo.caption_entities] == [("italic", 0, 5)]
    assert document.document is not None
    assert document.document.file_name == "report.pdf"
    assert document.document.mime_type == "application/pdf"
    assert document.document.file_size == len(report)
    assert document.caption == "weekly"
    assert again.photo == photo.photo
    assert [m.message_id for m in (photo, document, again)] == [1, 2, 3]

    photo_call, document_call, again_call = calls(api)
    assert photo_call["data"]["attachments"] == [
        {"field": "photo", "filename": "g.png", "content_type": "image/png", "size": len(picture)}
    ]
    assert photo_call["data"]["caption"] == "<i>graph</i>"
    assert photo_call["data"]["plain_caption"] == "graph"
    got = api.get(f"/calls/{photo_call['id']}/attachments/0")
    assert got.status_code == 200
    assert got.content == picture
    assert got.headers["content-type"] == "image/png"
    assert "g.png" in got.headers["content-disposition"]
    got = api.get(f"/calls/{document_call['id']}/attachments/0")
    assert got.content == report
    assert "report.pdf" in got.headers["content-disposition"]
    missing = api.get(f"/calls/{document_call['id']}/attachments/1")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "attachment_not_found"
    # The re-send carried no file: nothing to download.
    assert "attachments" not in again_call["data"]
    assert api.get(f"/calls/{again_call['id']}/attachments/0").status_code == 404
    assert len(calls(api, contains="weekly")) == 1


def test_get_file_and_download_what_was_uploaded(api: httpx.Client, base_url: str) -> None:
    report = b"quarterly numbers \x00\xff" * 10
    picture = png(5, 4)

    async def flow(bot: Bot) -> list[Any]:
        document = await bot.send_document(42, document=report, filename="q3.csv")
        photo = await bot.send_photo(42, photo=picture)
        assert document.document is not None
        doc_file = await bot.get_file(document.document.file_id)
        photo_file = await bot.get_file(photo.photo[-1].file_id)
        results: list[Any] = [doc_file, bytes(await doc_file.download_as_bytearray()), photo_file]
        results.append(bytes(await photo_file.download_as_bytearray()))
        try:
            await bot.get_file("AgACnever-answered")
        except BadRequest as exc:
            results.append(exc.message)
        return results

    doc_file, doc_bytes, photo_file, photo_bytes, unknown = run(base_url, flow)
    assert doc_bytes == report
    assert photo_bytes == picture
    assert doc_file.file_size == len(report)
    assert doc_file.file_path.startswith(f"{base_url}/file/bot{TOKEN}/documents/")
    assert doc_file.file_path.endswith(".csv")
    assert photo_file.file_path.endswith(".jpg")
    assert unknown == "Invalid file_id"
    downloads = calls(api, path=f"/file/bot{TOKEN}/*")
    assert [d["data"]["size"] for d in downloads] == [len(report), len(picture)]
    path = doc_file.file_path.removeprefix(base_url)
    # Another namespace has no such file, nor does a path never answered.
    assert httpx.get(f"{base_url}/ns/{new_namespace()}{path}").status_code == 404
    missing = httpx.get(f"{base_url}/file/bot{TOKEN}/documents/file_999.csv")
    assert missing.status_code == 404
    assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert httpx.get(f"{base_url}/file/botnope{path.split(TOKEN, 1)[1]}").status_code == 401


def test_edit_and_delete_a_message(api: httpx.Client, base_url: str) -> None:
    async def flow(bot: Bot) -> list[Any]:
        sent = await bot.send_message(42, "deploying")
        edited = await bot.edit_message_text(
            "deployed <b>v2</b>", chat_id=42, message_id=sent.message_id, parse_mode="HTML"
        )
        results: list[Any] = [sent, edited]
        try:
            await bot.edit_message_text("deployed <b>v2</b>", chat_id=42, message_id=sent.message_id, parse_mode="HTML")
        except BadRequest as exc:
            results.append(exc.message)
        results.append(await bot.delete_message(42, sent.message_id))
        for attempt in (
            bot.delete_message(42, sent.message_id),
            bot.edit_message_text("late", chat_id=42, message_id=sent.message_id),
            bot.edit_message_text("never sent", chat_id=42, message_id=999),
        ):
            try:
                await attempt
            except BadRequest as exc:
                results.append(exc.message)
        return results

    sent, edited, not_modified, deleted, *failures = run(base_url, flow)
    assert edited.message_id == sent.message_id
    assert edited.text == "deployed v2"
    assert [(e.type, e.offset, e.length) for e in edited.entities] == [("bold", 9, 2)]
    assert edited.edit_date is not None
    assert not_modified.startswith("Message is not modified")
    assert deleted is True
    assert failures == ["Message to delete not found", "Message to edit not found", "Message to edit not found"]
    bodies = [c for c in calls(api) if c["response"]["status"] == 400]
    assert {c["data"]["error"] for c in bodies} == {
        "message to delete not found",
        "message to edit not found",
        "message is not modified",
    }
    edits = calls(api, path=f"/bot{TOKEN}/editMessageText")
    assert edits[0]["data"]["message_id"] == sent.message_id


# -- the four encodings, with plain httpx -------------------------------------------------------------

_MARKUP = {"inline_keyboard": [[{"text": "Open", "url": "https://example.com/runbook"}]]}


@pytest.mark.parametrize("encoding", ["query", "form", "json", "multipart"])
def test_parameters_in_every_encoding(api: httpx.Client, base_url: str, encoding: str) -> None:
    params = {"chat_id": "555", "text": "<b>hot</b> CPU", "parse_mode": "HTML", "disable_notification": "true"}
    url = f"{base_url}/bot{TOKEN}/SENDMESSAGE"  # method names are case-insensitive
    markup = httpx.QueryParams({"reply_markup": str(_MARKUP).replace("'", '"')})["reply_markup"]
    if encoding == "query":
        r = httpx.get(url, params={**params, "reply_markup": markup})
    elif encoding == "form":
        r = httpx.post(url, data={**params, "reply_markup": markup})
    elif encoding == "json":
        # In JSON, numbers and booleans may be JSON values and reply_markup an object.
        body = {**params, "chat_id": 555, "disable_notification": True, "reply_markup": _MARKUP}
        r = httpx.post(url, json=body)
    else:
        r = httpx.post(url, data={**params, "reply_markup": markup}, files={"unused": ("x.txt", b"x", "text/plain")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    result = body["result"]
    assert result["text"] == "hot CPU"
    assert result["entities"] == [{"type": "bold", "offset": 0, "length": 3}]
    assert result["reply_markup"] == _MARKUP
    assert result["chat"] == {"id": 555, "first_name": "mockhub user", "type": "private"}
    [call] = calls(api)
    assert call["data"]["method"] == "sendMessage"
    assert call["data"]["chat_id"] == "555"
    assert call["data"]["reply_markup"] == _MARKUP
    assert call["data"]["disable_notification"] is True


# -- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chat_id", "text", "parse_mode", "description"),
    [
        ("abc", "x", None, "Chat not found"),
        ("0", "x", None, "Chat not found"),
        ("#ops", "x", None, "Chat not found"),
        ("@ab", "x", None, "Chat not found"),
        ("-3000000000000", "x", None, "Chat not found"),
        ("42", "   \n ", None, "Message text is empty"),
        ("42", "<b>unclosed", "HTML", "Can't parse entities: can't find end tag corresponding to start tag \"b\""),
        ("42", "<p>para</p>", "HTML", 'Can\'t parse entities: unsupported start tag "p" at byte offset 0'),
        (
            "42",
            "Version 1.0",
            "MarkdownV2",
            "Can't parse entities: character '.' is reserved and must be escaped with the preceding '\\'",
        ),
        ("42", "*bold", "Markdown", "Can't parse entities: can't find end of the entity starting at byte offset 0"),
        ("42", "x", "BBCode", "Unsupported parse_mode"),
        ("42", "x" * 4097, None, "Message is too long"),
    ],
)
def test_validation_errors_raise_bad_request(
    api: httpx.Client, base_url: str, chat_id: str, text: str, parse_mode: str | None, description: str
) -> None:
    with pytest.raises(BadRequest) as raised:
        run(base_url, lambda bot: bot.send_message(chat_id, text, parse_mode=parse_mode))
    assert raised.value.message == description
    [call] = calls(api)
    assert call["response"]["status"] == 400
    assert call["data"]["error"] == description[0].lower() + description[1:]
    assert call["data"]["chat_id"] == chat_id


@pytest.mark.parametrize(
    ("method", "params", "description"),
    [
        ("sendMessage", {"text": "x"}, "Bad Request: chat_id is empty"),
        ("sendMessage", {"chat_id": "1"}, "Bad Request: message text is empty"),
        ("sendPhoto", {"chat_id": "1"}, "Bad Request: there is no photo in the request"),
        ("sendPhoto", {"chat_id": "1", "photo": "attach://nothing"}, "Bad Request: there is no photo in the request"),
        (
            "sendPhoto",
            {"chat_id": "1", "photo": "not-a-file-id"},
            "Bad Request: wrong file identifier/HTTP URL specified",
        ),
        ("sendDocument", {"chat_id": "1"}, "Bad Request: there is no document in the request"),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_markup": "{oops"},
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_markup": "[1]"},
            "Bad Request: object expected as reply markup",
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_markup": '{"inline_keyboard": [[{"text": "plain"}]]}'},
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            "sendMessage",
            {
                "chat_id": "1",
                "text": "x",
                "reply_markup": '{"inline_keyboard": [{"text": "x", "url": "https://x.io"}]}',
            },
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays',
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_markup": '{"keyboard": [["yes", {"text": 5}]]}'},
            'Bad Request: can\'t parse keyboard button: Field "text" must be of type String',
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "link_preview_options": "{oops"},
            "Bad Request: can't parse link preview options JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_parameters": "{oops"},
            "Bad Request: can't parse reply parameters JSON object",
        ),
        (
            "sendMessage",
            {"chat_id": "1", "text": "x", "reply_parameters": '{"message_id": 77}'},
            "Bad Request: message to be replied not found",
        ),
        ("deleteMessage", {"message_id": "1"}, "Bad Request: chat identifier is not specified"),
        ("deleteMessage", {"chat_id": "1"}, "Bad Request: message identifier is not specified"),
        ("editMessageText", {"text": "x"}, "Bad Request: message identifier is not specified"),
        ("editMessageText", {"chat_id": "1", "message_id": "1"}, "Bad Request: message text is empty"),
    ],
)
def test_validation_with_httpx(
    api: httpx.Client, base_url: str, method: str, params: dict[str, str], description: str
) -> None:
    r = api_call(base_url, method, data=params)
    assert r.status_code == 400
    assert r.json() == {"ok": False, "error_code": 400, "description": description}
    assert r.headers["content-type"] == "application/json"
    [call] = calls(api)
    assert call["data"]["method"] == method
    assert call["data"]["error"] == description.removeprefix("Bad Request: ")


def test_a_reply_to_an_unknown_message_may_go_without_it(api: httpx.Client, base_url: str) -> None:
    async def send(bot: Bot) -> Message:
        return await bot.send_message(9, "hi", reply_parameters=ReplyParameters(77, allow_sending_without_reply=True))

    message = run(base_url, send)
    assert message.reply_to_message is None
    assert message.text == "hi"


# -- auth and unknown methods ----------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["not-a-token", "0123:abc", "123456", "123456:", "-5:abc", "123:a$b"])
def test_a_malformed_token_is_unauthorized(api: httpx.Client, base_url: str, token: str) -> None:
    with pytest.raises(InvalidToken):
        run(base_url, lambda bot: bot.send_message(1, "x"), token=token)
    r = api_call(base_url, "sendMessage", token=token, data={"chat_id": "1", "text": "x"})
    assert r.status_code == 401
    assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized: invalid token specified"}
    assert [c["data"]["error"] for c in calls(api)] == ["invalid token specified"] * 2


def test_pinned_credentials_refuse_other_tokens() -> None:
    with extra_hub(credentials=TOKEN) as hub:
        assert run(hub.url, lambda bot: bot.get_me()).id == 123456
        with pytest.raises(InvalidToken, match="Unauthorized"):
            run(hub.url, lambda bot: bot.get_me(), token="123456:another-secret")
        r = api_call(hub.url, "getMe", token="123456:another-secret")
        assert r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


def test_an_unknown_method_is_not_found(api: httpx.Client, base_url: str) -> None:
    r = api_call(base_url, "sendTelepathy", data={"chat_id": "1"})
    assert r.status_code == 404
    assert r.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    [call] = calls(api)
    assert call["data"] == {"method": "sendTelepathy", "bot_id": 123456, "error": "Not Found"}
    # PUT is not a Bot API verb: 405 in Telegram's shape.
    r = httpx.put(f"{base_url}/bot{TOKEN}/getMe")
    assert r.status_code == 405
    assert r.json()["ok"] is False and r.json()["error_code"] == 405


def test_start_up_methods_answer_plainly(api: httpx.Client, base_url: str) -> None:
    async def start(bot: Bot) -> tuple[Any, ...]:
        return (
            await bot.delete_webhook(),
            await bot.get_updates(timeout=0),
            await bot.get_webhook_info(),
            await bot.send_chat_action(42, "typing"),
        )

    deleted, updates, info, action = run(base_url, start)
    assert deleted is True and updates == () and info.url == "" and action is True


# -- presets, faults, stubs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "status", "description", "error"),
    [
        ("rate_limited", 429, "Too Many Requests: retry after 1", RetryAfter),
        ("server_error", 500, "Internal Server Error", NetworkError),
        ("unavailable", 503, "Service Unavailable", NetworkError),
        ("overloaded", 502, "Bad Gateway", NetworkError),
        ("unauthorized", 401, "Unauthorized", InvalidToken),
    ],
)
def test_presets_in_telegram_shape(
    api: httpx.Client, base_url: str, preset: str, status: int, description: str, error: type[Exception]
) -> None:
    add_fault(api, "telegram", action="error", preset=preset, times=2)
    with pytest.raises(error) as raised:
        run(base_url, lambda bot: bot.send_message(1, "x"))
    r = api_call(base_url, "sendMessage", data={"chat_id": "1", "text": "x"})
    assert r.status_code == status
    body = r.json()
    assert body["ok"] is False
    assert body["error_code"] == status
    assert body["description"] == description
    if preset == "rate_limited":
        assert isinstance(raised.value, RetryAfter)
        assert seconds(raised.value) == 1
        assert body["parameters"] == {"retry_after": 1}
        assert r.headers["retry-after"] == "1"
    # A preset answers, the fault runs out, and the next call is sent.
    assert run(base_url, lambda bot: bot.send_message(1, "x")).message_id == 1
    assert [c["fault"] is not None for c in calls(api)] == [True, True, False]


def test_a_fault_matching_one_chat(api: httpx.Client, base_url: str) -> None:
    add_fault(api, "telegram", action="error", status=403, match={"to": "666"})
    with pytest.raises(Forbidden, match="mockhub fault"):
        run(base_url, lambda bot: bot.send_message(666, "x"))
    assert run(base_url, lambda bot: bot.send_message(42, "x")).message_id == 1


@pytest.mark.parametrize(
    ("reply", "error", "check"),
    [
        ({"error": "Forbidden: bot was blocked by the user"}, Forbidden, "Forbidden: bot was blocked by the user"),
        ({"error": "Bad Request: chat not found"}, BadRequest, "Chat not found"),
        ({"error": "Too Many Requests: retry after 7"}, RetryAfter, 7),
        ({"error": "Too Many Requests: slow down", "retry_after": 3}, RetryAfter, 3),
        (
            {"error": "Bad Request: group chat was upgraded to a supergroup chat", "migrate_to_chat_id": -1001},
            ChatMigrated,
            -1001,
        ),
    ],
)
def test_stub_errors_raise_the_sdk_exception(
    api: httpx.Client, base_url: str, reply: dict[str, Any], error: type[Exception], check: Any
) -> None:
    add_stub(api, "telegram", reply=reply, match={"to": "13"})
    with pytest.raises(error) as raised:
        run(base_url, lambda bot: bot.send_message(13, "x"))
    exc = raised.value
    if isinstance(exc, RetryAfter):
        assert seconds(exc) == check
    elif isinstance(exc, ChatMigrated):
        assert exc.new_chat_id == check
    else:
        assert str(exc) == check
    [call] = calls(api)
    assert call["stub"] is not None
    assert call["data"]["error"]
    # Other chats are not stubbed.
    assert run(base_url, lambda bot: bot.send_message(14, "x")).message_id == 1


def test_a_raw_stub_answers_as_written(api: httpx.Client, base_url: str) -> None:
    add_stub(
        api,
        "telegram",
        response={
            "status": 409,
            "json": {"ok": False, "error_code": 409, "description": "Conflict: terminated by other getUpdates request"},
        },
    )
    r = api_call(base_url, "getUpdates")
    assert r.status_code == 409
    assert r.json()["description"] == "Conflict: terminated by other getUpdates request"


def test_stub_fields_are_checked(api: httpx.Client) -> None:
    r = api.post("/stubs", json={"service": "telegram", "reply": {"error_code": "four hundred"}})
    assert r.status_code == 422


# -- bad input ------------------------------------------------------------------------------------------


def test_malformed_json_is_read_as_the_bot_api_reads_it(api: httpx.Client, base_url: str) -> None:
    headers = {"content-type": "application/json"}
    r = api_call(base_url, "sendMessage", content=b"{not json", headers=headers)
    assert r.status_code == 400
    assert r.json()["description"] == "Bad Request: message text is empty"
    r = api_call(base_url, "sendMessage", content=b'["chat_id", 1]', headers=headers)
    assert r.json()["description"] == "Bad Request: message text is empty"
    # The Bot API keeps the fields it read before the error: a cut-off body whose fields are whole is sent.
    r = api_call(base_url, "sendMessage", content=b'{"chat_id": 5, "text": "partial"', headers=headers)
    assert r.status_code == 200
    assert r.json()["result"]["text"] == "partial"
    first, second, third = calls(api)
    assert first["data"]["error"] == "message text is empty"
    assert "does not parse (can't parse parameter name)" in first["data"]["body_error"]
    assert "JSON object expected" in second["data"]["body_error"]
    assert "expected next field or object end" in third["data"]["body_error"]
    assert third["body"] == '{"chat_id": 5, "text": "partial"'


def test_a_multipart_body_cut_short(api: httpx.Client, base_url: str) -> None:
    request = httpx.Request(
        "POST",
        f"{base_url}/bot{TOKEN}/sendDocument",
        data={"chat_id": "1"},
        files={"document": ("big.bin", b"\x00" * 1000, "application/octet-stream")},
    )
    body = request.read()
    cut = body[: len(body) // 2]
    r = httpx.post(str(request.url), content=cut, headers={"content-type": request.headers["content-type"]}, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"ok": False, "error_code": 400, "description": "Bad Request: multipart body is not closed"}
    [call] = calls(api)
    assert call["data"]["error"] == "multipart body is not closed"
    assert len(call["body"]) > 0
    # The server is fine: the same upload, whole, is sent.
    r = httpx.post(str(request.url), content=body, headers={"content-type": request.headers["content-type"]})
    assert r.json()["result"]["document"]["file_size"] == 1000


# -- the fake's facts -----------------------------------------------------------------------------------


def test_the_token_is_a_secret_part_of_the_path(api: httpx.Client, server: ThreadedHub) -> None:
    [info] = [s for s in api.get("/services").json()["services"] if s["name"] == "telegram"]
    assert info["hosts"] == ["api.telegram.org"]
    assert info["fields"]["to"] == ["chat_id"]
    for path in (f"/bot{TOKEN}/sendMessage", f"/file/bot{TOKEN}/photos/file_1.jpg"):
        matched = [m for p in info["secret_paths"] if (m := re.match(p, path))]
        assert matched and matched[0].group(2) == TOKEN
    assert re.match(info["secret_paths"][0], "/webhooks/bot") is None


def test_mockhub_urls_point_the_sdk_at_the_fake(server: ThreadedHub, api: httpx.Client) -> None:
    from mockhub import MockHub

    hub = MockHub(server.url)
    base = hub.urls.telegram_api
    assert base.endswith("/bot")
    message = run(base.removesuffix("/bot"), lambda bot: bot.send_message(3, "via urls"))
    assert message.text == "via urls"
    [call] = hub.wait_for("telegram", to="3", contains="via urls")
    assert call.data["plain_text"] == "via urls"
    # `mockhub env` / MockHub.env() point an application's TELEGRAM_API_URL at the fake.
    assert hub.env()["TELEGRAM_API_URL"] == base
    assert hub.urls.telegram_files == base.removesuffix("/bot") + "/file/bot"


# -- the markup parsers, against TDLib's own test cases -----------------------------------------------


@pytest.mark.parametrize(
    ("markup", "message"),
    [
        ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba>", 'Can\'t find end tag corresponding to start tag "i"'),
        ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
        ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
        ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
        ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
        ("🏟 🏟&lt;<i>a</em   >", 'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'),
        ('<span class="x">a</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_errors_are_tdlibs(markup: str, message: str) -> None:
    with pytest.raises(EntityError) as raised:
        parse_html(markup)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("markup", "text", "entities"),
    [
        ("&ge;&lt;&gt;&amp;&quot;&laquo;&raquo;&#12345678;", '&ge;<>&"&laquo;&raquo;&#12345678;', []),
        ("➡️ ➡️<i>➡️ ➡️</i><b>➡️ ➡️</b>", "➡️ ➡️➡️ ➡️➡️ ➡️", [("italic", 5, 5), ("bold", 10, 5)]),
        ("<a href=telegram.org>site</a>", "site", [("text_link", 0, 4)]),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1", [("pre", 0, 5)]),
        (
            "<tg-spoiler>s</tg-spoiler> <u>u</u> <s>s</s>",
            "s u s",
            [("spoiler", 0, 1), ("underline", 2, 1), ("strikethrough", 4, 1)],
        ),
        ("<blockquote expandable>quote</blockquote>", "quote", [("expandable_blockquote", 0, 5)]),
    ],
)
def test_html_entities(markup: str, text: str, entities: list[tuple[str, int, int]]) -> None:
    shown, found = format_text(markup, "HTML")
    assert shown == text
    assert [(e["type"], e["offset"], e["length"]) for e in found] == entities


@pytest.mark.parametrize(
    ("markup", "message"),
    [
        ("🏟 🏟_abacaba", "Can't find end of Italic entity at byte offset 9"),
        ("🏟 🏟_abac * asd ", "Can't find end of Bold entity at byte offset 15"),
        ("🏟 🏟`", "Can't find end of Code entity at byte offset 9"),
        ("🏟 🏟```a ", "Can't find end of PreCode entity at byte offset 9"),
        ("🏟 🏟__🏟 🏟_", "Can't find end of Italic entity at byte offset 20"),
        ("[telegram\\.org](asd\\)", "Can't find end of a URL at byte offset 16"),
        ("🏟 🏟||test\\|", "Can't find end of Spoiler entity at byte offset 9"),
        ("🏟 🏟!", "Character '!' is reserved and must be escaped with the preceding '\\'"),
        ("🏟 🏟![👍]", "Custom emoji entity must contain a tg://emoji URL"),
        (">asd\n>q||ew\n||asdad", "Can't find end of Spoiler entity at byte offset 7"),
    ],
)
def test_markdown_v2_errors_are_tdlibs(markup: str, message: str) -> None:
    with pytest.raises(EntityError) as raised:
        parse_markdown_v2(markup)
    assert str(raised.value) == message


def test_markdown_v2_entities_and_trimming() -> None:
    shown, found = format_text("  *b* _i_ __u__ ~s~ ||p|| `c` [l](https://t.me) \\. \n>quote  ", "MarkdownV2")
    assert shown == "b i u s p c l . \nquote"
    kinds = [(e["type"], e["offset"], e["length"]) for e in found]
    assert kinds == [
        ("bold", 0, 1),
        ("italic", 2, 1),
        ("underline", 4, 1),
        ("strikethrough", 6, 1),
        ("spoiler", 8, 1),
        ("code", 10, 1),
        ("text_link", 12, 1),
        ("blockquote", 17, 5),
    ]
    assert found[6]["url"] == "https://t.me/"


@pytest.fixture(autouse=True)
def _no_leftover_rules(api: httpx.Client) -> Iterator[None]:
    """Every test starts and ends with no faults or stubs (the `api` fixture resets before)."""
    yield
    api.post("/reset")
