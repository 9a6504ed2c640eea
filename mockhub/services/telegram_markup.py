"""Telegram's text markup (`parse_mode`): HTML, MarkdownV2 and legacy Markdown, as the Bot API parses them.

A port of TDLib's parsers (`td/telegram/MessageEntity.cpp`: `parse_html`, `parse_markdown_v2`,
`parse_markdown`), which the Bot API server runs: the same plain text, the same entities (offsets and
lengths in UTF-16 code units) and the same error messages (offsets in bytes of the UTF-8 text), which
the Bot API answers as `Bad Request: can't parse entities: <message>`. The text is then trimmed of
leading and trailing white space, as the Bot API does, with the entities moved to match.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EntityError", "format_text"]

Entity = dict[str, Any]

PARSE_MODES = {"html": "HTML", "markdownv2": "MarkdownV2", "markdown": "Markdown"}


class EntityError(ValueError):
    """The markup is broken; the message is TDLib's."""


def _units(ch: str) -> int:
    """UTF-16 code units of one character (entity offsets count these)."""
    return 2 if ord(ch) > 0xFFFF else 1


def _bytes(text: str, index: int) -> int:
    """The UTF-8 byte offset of `text[index]` (TDLib's error messages count bytes)."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _at(text: str, i: int) -> str:
    """`text[i]`, or "" past the end (TDLib reads a NUL there)."""
    return text[i] if i < len(text) else ""


def _space(ch: str) -> bool:
    return ch in " \t\r\n\0\v\f"


_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z0-9]$|^\d{1,3}(?:\.\d{1,3}){3}$", re.I)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):(//)?", re.I)


def checked_link(url: str) -> str:
    """The link a `text_link` entity carries, normalised as TDLib does, or "" when it is not a link."""
    url = url.strip()
    if not url:
        return ""
    m = _SCHEME.match(url)
    if m is not None and m.group(1).lower() == "tg":
        return url
    if m is not None and m.group(2) is None:
        # `localhost:8080` is a host and port, not a scheme.
        rest = url[m.end() :]
        if not rest[:1].isdigit():
            return ""
        m = None
    if m is None:
        url = "http://" + url
        m = _SCHEME.match(url)
        assert m is not None
    scheme = m.group(1).lower()
    if scheme not in ("http", "https", "ton", "tonsite"):
        return url
    rest = url[m.end() :]
    cut = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    host = rest[:cut].rsplit("@", 1)[-1]
    host = host.split(":", 1)[0] if host.count(":") == 1 else host
    if not _DOMAIN.match(host):
        return ""
    if not rest[cut:].startswith("/"):
        rest = rest[:cut] + "/" + rest[cut:]
    return f"{scheme}://{rest}"


def _user_id(url: str) -> int | None:
    """The user of a `tg://user?id=123` link (a `text_mention`)."""
    m = re.match(r"^tg:(?://)?user\?id=(\d{1,19})$", url.strip(), re.I)
    return int(m.group(1)) if m else None


def _link_entity(kind: str, offset: int, length: int, url: str) -> Entity | None:
    user = _user_id(url)
    if user is not None:
        return {
            "type": "text_mention",
            "offset": offset,
            "length": length,
            "user": {"id": user, "is_bot": False, "first_name": "mockhub user"},
        }
    link = checked_link(url)
    if not link:
        return None
    return {"type": kind, "offset": offset, "length": length, "url": link}


def _emoji_id(url: str) -> str:
    """The custom emoji id of a `tg://emoji?id=...` link (MarkdownV2's `![👍](tg://emoji?id=...)`)."""
    m = _SCHEME.match(url)
    if m is None or m.group(1).lower() != "tg":
        raise EntityError("Custom emoji URL must have scheme tg")
    rest = url[m.end() :]
    cut = min((rest.find(ch) for ch in "?#" if ch in rest), default=len(rest))
    host, query = rest[:cut], rest[cut + 1 :] if rest[cut : cut + 1] == "?" else ""
    if host.rstrip("/").lower() != "emoji":
        raise EntityError('Custom emoji URL must have host "emoji"')
    query = query.split("#", 1)[0]
    found = [v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "id"]
    if not found:
        raise EntityError("Custom emoji URL must have an emoji identifier")
    if not re.fullmatch(r"[1-9]\d{0,18}", found[0]):
        raise EntityError("Invalid custom emoji identifier specified")
    return found[0]


# -- HTML -------------------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    "a b strong i em s strike del u ins tg-spoiler tg-emoji span pre code blockquote".split()  # noqa: SIM905
)
_SIMPLE = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "u": "underline",
    "ins": "underline",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SURROGATE_ERROR = (
    "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units"
)


def _html_entity(text: str, i: int) -> tuple[str, int] | None:
    """The character an `&...;` at `text[i]` stands for and where it ends, or None (kept as typed)."""
    j = i + 1
    if _at(text, j) == "#":
        j += 1
        base = 10
        if _at(text, j) in ("x", "X"):
            base, j = 16, j + 1
        start = j
        digits = "0123456789abcdefABCDEF" if base == 16 else "0123456789"
        while j < len(text) and text[j] in digits:
            j += 1
        if j == start or j - i >= 10:
            return None
        code = int(text[start:j], base)
        if code == 0 or code >= 0x10FFFF:
            return None
        if 0xD800 <= code <= 0xDFFF:
            raise EntityError(_SURROGATE_ERROR)
        char = chr(code)
    else:
        start = j
        while j < len(text) and text[j].isascii() and text[j].isalpha():
            j += 1
        named = _NAMED.get(text[start:j])
        if named is None:
            return None
        char = named
    if _at(text, j) == ";":
        j += 1
    return char, j


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """TDLib's `parse_html`: the plain text and its entities; raises EntityError."""
    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    # (tag, argument, utf-16 offset, index in `out` where the entity's text begins)
    stack: list[tuple[str, str, int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            found = _html_entity(text, i)
            if found is not None:
                char, i = found
                out.append(char)
                u16 += _units(char)
                continue
        if c != "<":
            out.append(c)
            u16 += _units(c)
            i += 1
            continue
        begin = i
        i += 1
        if _at(text, i) != "/":
            while i < n and not _space(text[i]) and text[i] != ">":
                i += 1
            if i >= n:
                raise EntityError(f"Unclosed start tag at byte offset {_bytes(text, begin)}")
            tag = text[begin + 1 : i].lower()
            if tag not in _HTML_TAGS:
                raise EntityError(f'Unsupported start tag "{tag}" at byte offset {_bytes(text, begin)}')
            argument = ""
            while _at(text, i) != ">":
                while i < n and _space(text[i]):
                    i += 1
                if _at(text, i) == ">":
                    break
                name_start = i
                while i < n and not _space(text[i]) and text[i] not in "=>":
                    i += 1
                attribute = text[name_start:i].lower()
                if not attribute:
                    raise EntityError(f'Empty attribute name in the tag "{tag}" at byte offset {_bytes(text, begin)}')
                while i < n and _space(text[i]):
                    i += 1
                if _at(text, i) != "=":
                    if i >= n:
                        raise EntityError(f'Unclosed start tag "{tag}" at byte offset {_bytes(text, begin)}')
                    if tag == "blockquote" and attribute == "expandable":
                        argument = "1"
                    continue
                i += 1
                while i < n and _space(text[i]):
                    i += 1
                if i >= n:
                    raise EntityError(f'Unclosed start tag "{tag}" at byte offset {_bytes(text, begin)}')
                if text[i] not in "'\"":
                    # An unquoted value is an HTML name token: ASCII letters, digits, '.' and '-'.
                    token = i
                    while i < n and text[i].isascii() and (text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token:i].lower()
                    if i >= n or (not _space(text[i]) and text[i] != ">"):
                        raise EntityError(f"Unexpected end of name token at byte offset {_bytes(text, token)}")
                else:
                    quote = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote:
                        if text[i] == "&":
                            found = _html_entity(text, i)
                            if found is not None:
                                chars.append(found[0])
                                i = found[1]
                                continue
                        chars.append(text[i])
                        i += 1
                    if i >= n:
                        raise EntityError(f"Unclosed start tag at byte offset {_bytes(text, begin)}")
                    i += 1
                    value = "".join(chars)
                if tag == "a" and attribute == "href":
                    argument = value
                elif tag == "code" and attribute == "class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and attribute == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and attribute == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attribute == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityError(f'Tag "span" must have class "tg-spoiler" at byte offset {_bytes(text, begin)}')
            stack.append((tag, argument, u16, len(out)))
            i += 1
            continue
        # an end tag
        if not stack:
            raise EntityError(f"Unexpected end tag at byte offset {_bytes(text, begin)}")
        i += 1
        while i < n and not _space(text[i]) and text[i] != ">":
            i += 1
        end_name = text[begin + 2 : i].lower()
        while i < n and _space(text[i]):
            i += 1
        if _at(text, i) != ">":
            raise EntityError(f"Unclosed end tag at byte offset {_bytes(text, begin)}")
        i += 1
        tag, argument, offset, start = stack.pop()
        if end_name and end_name != tag:
            raise EntityError(
                f'Unmatched end tag at byte offset {_bytes(text, begin)}, expected "</{tag}>", found "</{end_name}>"'
            )
        length = u16 - offset
        if length <= 0:
            continue
        entity: Entity | None
        if tag in _SIMPLE:
            entity = {"type": _SIMPLE[tag], "offset": offset, "length": length}
        elif tag == "a":
            entity = _link_entity("text_link", offset, length, argument or "".join(out[start:]))
        elif tag == "tg-emoji":
            if not re.fullmatch(r"[1-9]\d{0,18}", argument):
                raise EntityError("Invalid custom emoji identifier specified")
            entity = {"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": argument}
        elif tag == "blockquote":
            kind = "expandable_blockquote" if argument else "blockquote"
            entity = {"type": kind, "offset": offset, "length": length}
        elif tag == "pre":
            last = entities[-1] if entities else None
            if last and last["type"] == "code" and (last["offset"], last["length"]) == (offset, length):
                # <pre><code class="language-x"> is one pre entity with a language.
                entities.pop()
                entity = {"type": "pre", "offset": offset, "length": length}
                if last.get("language"):
                    entity["language"] = last["language"]
            else:
                entity = {"type": "pre", "offset": offset, "length": length}
        else:  # code
            last = entities[-1] if entities else None
            if last and last["type"] == "pre" and (last["offset"], last["length"]) == (offset, length):
                if argument:
                    last["language"] = argument
                continue
            entity = {"type": "code", "offset": offset, "length": length}
            if argument:
                entity["language"] = argument
        if entity is not None:
            entities.append(entity)
    if stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    return "".join(out), entities


# -- MarkdownV2 ----------------------------------------------------------------------------------------

_V2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!\n")
_CODE_RESERVED = frozenset("`")
_TD_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "pre_code": "PreCode",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
}


def _reserved(c: str) -> EntityError:
    return EntityError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")


def _escapable(c: str) -> bool:
    return c != "" and 0 < ord(c) <= 126


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """TDLib's `parse_markdown_v2`: the plain text and its entities; raises EntityError."""
    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    # [kind, argument, utf-16 offset, byte offset in the markup (as an index), index in `out`]
    stack: list[list[Any]] = []
    have_quote = False
    can_start_quote = True
    n = len(text)

    def unfinished(top: list[Any]) -> EntityError:
        return EntityError(f"Can't find end of {_TD_NAMES[top[0]]} entity at byte offset {_bytes(text, top[3])}")

    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and _escapable(_at(text, i + 1)):
            i += 1
            u16 += 1
            out.append(text[i])
            if text[i] != "\r":
                can_start_quote = text[i] == "\n"
            i += 1
            continue
        reserved = _CODE_RESERVED if stack and stack[-1][0] in ("code", "pre", "pre_code") else _V2_RESERVED
        if c not in reserved:
            u16 += _units(c)
            if c != "\r":
                can_start_quote = False
            out.append(c)
            i += 1
            continue
        top = stack[-1] if stack else None
        if top is None:
            ends = False
        elif have_quote and c == "\n" and (i + 1 == n or text[i + 1] != ">"):
            ends = True
        else:
            kind = top[0]
            nxt = _at(text, i + 1)
            ends = {
                "bold": c == "*",
                "italic": c == "_" and nxt != "_",
                "code": c == "`",
                "pre": c == "`" and nxt == "`" and _at(text, i + 2) == "`",
                "pre_code": c == "`" and nxt == "`" and _at(text, i + 2) == "`",
                "text_link": c == "]",
                "underline": c == "_" and nxt == "_",
                "strikethrough": c == "~",
                "spoiler": c == "|" and nxt == "|",
                "custom_emoji": c == "]",
                "blockquote": False,
            }[kind]
        if not ends:
            argument = ""
            byte_at = i
            kind = ""
            if c == "_":
                if _at(text, i + 1) == "_":
                    kind = "underline"
                    i += 1
                else:
                    kind = "italic"
            elif c == "*":
                kind = "bold"
            elif c == "~":
                kind = "strikethrough"
            elif c == "|":
                if _at(text, i + 1) != "|":
                    raise _reserved(c)
                i += 1
                kind = "spoiler"
            elif c == "[":
                kind = "text_link"
            elif c == "`":
                if _at(text, i + 1) == "`" and _at(text, i + 2) == "`":
                    i += 3
                    kind = "pre"
                    end = i
                    while end < n and not _space(text[end]) and text[end] != "`":
                        end += 1
                    if i != end and end < n and text[end] != "`":
                        kind = "pre_code"
                        argument = text[i:end]
                        i = end
                    # One line break right after the opening ``` is not part of the text.
                    if _at(text, i) in ("\n", "\r"):
                        if _at(text, i + 1) in ("\n", "\r") and text[i] != text[i + 1]:
                            i += 2
                        else:
                            i += 1
                    i -= 1
                else:
                    kind = "code"
            elif c == "!":
                if _at(text, i + 1) != "[":
                    raise _reserved(c)
                i += 1
                kind = "custom_emoji"
            elif c == "\n":
                u16 += 1
                out.append("\n")
                can_start_quote = True
                i += 1
                continue
            elif c == ">":
                if not can_start_quote:
                    raise _reserved(c)
                if have_quote:
                    i += 1
                    continue
                kind = "blockquote"
                have_quote = True
            else:
                raise _reserved(c)
            stack.append([kind, argument, u16, byte_at, len(out)])
            i += 1
            continue
        # the end of an entity
        assert top is not None
        kind = top[0]
        if c == "\n" and kind != "blockquote":
            # `||` closing a line of a quote makes it an expandable one; anything else open is unfinished.
            spoiler_just_opened = top[3] == i - 2 or (top[3] == i - 3 and out and out[-1] == "\r")
            if kind != "spoiler" or not spoiler_just_opened:
                raise unfinished(top)
            stack.pop()
            top = stack[-1]
            kind = top[0]
            if kind != "blockquote":
                raise unfinished(top)
            kind = "expandable_blockquote"
        argument = top[1]
        skip = u16 == top[2]
        entity: Entity | None = None
        if kind in ("underline", "spoiler"):
            i += 1
        elif kind in ("pre", "pre_code"):
            i += 2
        elif kind in ("text_link", "custom_emoji"):
            if _at(text, i + 1) != "(":
                if kind == "custom_emoji":
                    raise EntityError("Custom emoji entity must contain a tg://emoji URL")
                url = "".join(out[top[4] :])
            else:
                i += 2
                url_begin = i
                chars: list[str] = []
                while i < n and text[i] != ")":
                    if text[i] == "\\" and _escapable(_at(text, i + 1)):
                        chars.append(text[i + 1])
                        i += 2
                        continue
                    chars.append(text[i])
                    i += 1
                if i >= n:
                    what = "a custom emoji URL" if kind == "custom_emoji" else "a URL"
                    raise EntityError(f"Can't find end of {what} at byte offset {_bytes(text, url_begin)}")
                url = "".join(chars)
            if kind == "custom_emoji":
                argument = _emoji_id(url)
            elif not skip:
                entity = _link_entity("text_link", top[2], u16 - top[2], url)
                skip = entity is None
        elif kind in ("blockquote", "expandable_blockquote"):
            have_quote = False
            out.append(text[i])
            can_start_quote = True
            u16 += 1
            skip = False
        if not skip:
            if entity is None:
                entity = {"type": kind, "offset": top[2], "length": u16 - top[2]}
                if kind == "pre_code":
                    entity["type"], entity["language"] = "pre", argument
                elif kind == "custom_emoji":
                    entity["custom_emoji_id"] = argument
            entities.append(entity)
        stack.pop()
        i += 1
    if have_quote:
        kind = "blockquote"
        if stack and stack[-1][0] == "spoiler" and stack[-1][3] == n - 2:
            stack.pop()
            kind = "expandable_blockquote"
        if stack and stack[-1][0] == "blockquote":
            top = stack.pop()
            if u16 != top[2]:
                entities.append({"type": kind, "offset": top[2], "length": u16 - top[2]})
    if stack:
        raise unfinished(stack[-1])
    return "".join(out), entities


# -- legacy Markdown ---------------------------------------------------------------------------------


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """TDLib's `parse_markdown` (parse_mode `Markdown`): the plain text and its entities; raises EntityError."""
    out: list[str] = []
    u16 = 0
    entities: list[Entity] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and _at(text, i + 1) in ("_", "*", "`", "["):
            out.append(text[i + 1])
            u16 += 1
            i += 2
            continue
        if c not in "_*`[":
            out.append(c)
            u16 += _units(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        is_pre = False
        i += 1
        language = ""
        if c == "`" and _at(text, i) == "`" and _at(text, i + 1) == "`":
            i += 2
            is_pre = True
            end = i
            while end < n and not _space(text[end]) and text[end] != "`":
                end += 1
            if i != end and end < n and text[end] != "`":
                language = text[i:end]
                i = end
            if _at(text, i) in ("\n", "\r"):
                if _at(text, i + 1) in ("\n", "\r") and text[i] != text[i + 1]:
                    i += 2
                else:
                    i += 1
        offset = u16
        start = len(out)
        while i < n and (text[i] != end_char or (is_pre and not (_at(text, i + 1) == "`" and _at(text, i + 2) == "`"))):
            out.append(text[i])
            u16 += _units(text[i])
            i += 1
        if i >= n:
            raise EntityError(f"Can't find end of the entity starting at byte offset {_bytes(text, begin)}")
        if offset != u16:
            length = u16 - offset
            entity: Entity | None
            if c == "_":
                entity = {"type": "italic", "offset": offset, "length": length}
            elif c == "*":
                entity = {"type": "bold", "offset": offset, "length": length}
            elif c == "[":
                if _at(text, i + 1) != "(":
                    url = "".join(out[start:])
                else:
                    i += 2
                    url_start = i
                    while i < n and text[i] != ")":
                        i += 1
                    url = text[url_start:i]
                entity = _link_entity("text_link", offset, length, url)
            elif is_pre:
                entity = {"type": "pre", "offset": offset, "length": length}
                if language:
                    entity["language"] = language
            else:
                entity = {"type": "code", "offset": offset, "length": length}
            if entity is not None:
                entities.append(entity)
        if is_pre:
            i += 2
        i += 1
    return "".join(out), entities


# -- what the Bot API makes of it ----------------------------------------------------------------------

_PARSERS = {"HTML": parse_html, "MarkdownV2": parse_markdown_v2, "Markdown": parse_markdown}


def _sort_key(entity: Entity) -> tuple[int, int, bool]:
    return entity["offset"], -entity["length"], entity["type"] != "pre"


def _trim(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Leading and trailing white space goes, as the Bot API strips it; entities follow the text."""
    stripped = text.lstrip(" \t\r\n")
    head = sum(_units(ch) for ch in text[: len(text) - len(stripped)])
    stripped = stripped.rstrip(" \t\r\n")
    size = sum(_units(ch) for ch in stripped)
    kept: list[Entity] = []
    for entity in entities:
        start = max(entity["offset"] - head, 0)
        end = min(entity["offset"] + entity["length"] - head, size)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def _flatten(entities: list[Entity]) -> list[Entity]:
    """Nothing is formatted inside pre (TDLib drops what a pre entity holds); sorted as TDLib sorts."""
    out: list[Entity] = []
    for entity in sorted(entities, key=_sort_key):
        inside = any(
            o["type"] == "pre"
            and o["offset"] <= entity["offset"]
            and entity["offset"] + entity["length"] <= o["offset"] + o["length"]
            for o in out
        )
        if not inside:
            out.append(entity)
    return out


def format_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """The text a message shows and its entities, for `text`/`caption` sent with `parse_mode`.

    `parse_mode` must already be one of HTML, MarkdownV2, Markdown (any case) or empty; raises
    EntityError for broken markup.
    """
    entities: list[Entity] = []
    mode = PARSE_MODES.get((parse_mode or "").lower())
    if mode is not None:
        text, entities = _PARSERS[mode](text)
    return _trim(text, _flatten(entities))
