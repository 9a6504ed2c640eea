"""Message parsing (stdlib `email`, policy.default): a message's source into a call's `data`, and
its attachments. Plain functions of the bytes, so the handler can run them in a worker thread."""

from __future__ import annotations

import contextlib
import email
import email.feedparser
import email.parser
import email.policy
import functools
import re
from collections.abc import Iterator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from typing import Any

from mockhub.services.limits import LIMITS, ParseLimitExceeded, ParseLimits, too_deep, too_many_headers, too_many_parts

__all__ = ["MAX_DEPTH", "MimeTooDeep", "attachment_content", "parse_message", "read_message"]

_UNFOLD = re.compile(r"\r?\n[ \t]+")


def _clean(text: str) -> str:
    """Text safe for JSON: undo the parser's surrogate escapes (raw 8-bit bytes), as UTF-8 when possible."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header_text(value: Any) -> str:
    return _clean(str(value))


def _addresses(msg: Message, name: str) -> list[str]:
    """Decoded addresses of an address header, each `Name <addr>` or `addr`."""
    values = msg.get_all(name) or []
    out: list[str] = []
    for value in values:
        try:
            out.extend(_clean(str(a)) for a in getattr(value, "addresses"))  # noqa: B009
        except Exception:
            # A header the policy cannot parse is kept as it came rather than dropped.
            out.append(_clean(str(value)))
    return out


MAX_DEPTH = ParseLimits().max_depth
"""Deepest MIME nesting read by default (setting `max_mime_depth`): a message nested deeper is read
headers-only (a defect says so). Real mail nests a few levels; a message nested thousands deep would
otherwise exhaust the stack, and the stdlib parser's time grows with the square of the depth."""


class MimeTooDeep(ValueError):
    """A message whose MIME parts nest too deep to read (the defect's name in `data.defects`)."""


def _leaves(root: Message, too_deep: list[Message] | None = None) -> Iterator[Message]:
    """The non-container parts in order; an attached message (message/rfc822) counts as one part.

    Iterative, and at most `MAX_DEPTH` containers deep: containers deeper than that are skipped (and
    appended to `too_deep` when given), so a hostile nesting cannot exhaust the stack.
    """
    stack: list[tuple[Message, int]] = [(root, 0)]
    while stack:
        part, depth = stack.pop()
        if part.get_content_type() == "message/rfc822" or not part.is_multipart():
            yield part
            continue
        if depth >= MAX_DEPTH:
            if too_deep is not None:
                too_deep.append(part)
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))


def _part_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list) and inner and isinstance(inner[0], Message):
        try:
            return inner[0].as_bytes()
        except Exception:
            return b""
    if isinstance(inner, str):
        return inner.encode("utf-8", "surrogateescape")
    return b""


def _part_text(part: Message) -> str:
    """A text part's content, decoded by its charset (what `get_content` does, minus re-parsing the
    Content-Type header for every step; and 8-bit bytes labelled ASCII are read as UTF-8)."""
    payload = _part_bytes(part)
    charset = "us-ascii"
    with contextlib.suppress(Exception):
        charset = part.get_content_charset() or "us-ascii"
    if charset in ("us-ascii", "ascii") and not payload.isascii():
        charset = "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        # An unknown charset: the bytes, as UTF-8 as far as they go.
        return payload.decode("utf-8", "replace")


def _body_parts(msg: EmailMessage) -> tuple[Message | None, Message | None]:
    """The parts `get_body` picks as the text and the HTML body."""
    if not msg.is_multipart():
        # The common single-part mail: one Content-Type parse instead of get_body's many.
        try:
            if msg.get_content_disposition() == "attachment":
                return None, None
            content_type = msg.get_content_type()
        except Exception:
            return None, None
        return (msg if content_type == "text/plain" else None), (msg if content_type == "text/html" else None)
    text = html = None
    with contextlib.suppress(Exception):
        text = msg.get_body(("plain",))
    with contextlib.suppress(Exception):
        html = msg.get_body(("html",))
    return text, html


def _attachment_parts(msg: EmailMessage) -> list[Message]:
    text, html = _body_parts(msg)
    return [p for p in _leaves(msg) if p is not text and p is not html]


class _CachedHeaders(HeaderRegistry):
    """policy.default's header registry, remembering parsed headers: the parser and `get_body` parse
    Content-Type again for every question they ask, and messages repeat the same header values.
    Header objects are immutable, so sharing them is safe."""

    def __init__(self) -> None:
        super().__init__()
        self._cached = functools.lru_cache(maxsize=4096)(super().__call__)

    def __call__(self, name: str, value: Any) -> Any:
        try:
            return self._cached(name, value)
        except TypeError:  # an unhashable value (a header being set from objects): no caching
            return super().__call__(name, value)


_POLICY = email.policy.default.clone(header_factory=_CachedHeaders())


class _LimitedParser(email.feedparser.BytesFeedParser):
    """The stdlib parser, stopping at the parse limits (`LIMITS`) as soon as a part passes one.

    It keeps a stack of the messages it is inside (`_msgstack`) and opens each part with
    `_new_message`, so depth and part count are checked exactly, before the costly nesting is read.
    """

    def __init__(self, limits: ParseLimits) -> None:
        super().__init__(policy=_POLICY)
        self._limits = limits
        self._parts = 0

    def _new_message(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise too_many_parts()
        if len(self._msgstack) > self._limits.max_depth:  # type: ignore[attr-defined]
            raise too_deep()
        super()._new_message()  # type: ignore[misc]

    def _parse_headers(self, lines: list[str]) -> None:
        if len(lines) > self._limits.max_headers:
            raise too_many_headers()
        super()._parse_headers(lines)  # type: ignore[misc]


def read_message(raw: bytes) -> EmailMessage:
    """A message parsed within the parse limits (`LIMITS`); raises ParseLimitExceeded past one."""
    parser = _LimitedParser(LIMITS.get())
    parser.feed(raw)
    msg = parser.close()
    assert isinstance(msg, EmailMessage)
    return msg


_DEFECTS = {"too_deep": "MimeTooDeep", "too_many_parts": "MimeTooManyParts", "too_many_headers": "MimeTooManyHeaders"}


def _parse(raw: bytes) -> tuple[EmailMessage, tuple[str, str] | None]:
    """The message, and why its parts could not be read (a parse limit passed: defect, message), else None.

    A message past a limit (nested deeper than `max_mime_depth`, more than `max_parts` parts, a
    part with more than `max_part_headers` header lines) is read again headers-only (subject,
    addresses), with no parts; so is one that exhausts the stack anyway.
    """
    # SMTP carries CRLF line ends; as LF the decoded text is what the sender wrote (Python's own
    # smtpd did the same). The stored source stays byte-exact.
    text = raw.replace(b"\r\n", b"\n")
    limits = LIMITS.get()
    try:
        parser = _LimitedParser(limits)
        parser.feed(text)
        msg = parser.close()
        why = None
    except ParseLimitExceeded as exc:
        msg = email.parser.BytesParser(policy=_POLICY).parsebytes(text, headersonly=True)
        why = _DEFECTS[exc.error], exc.message
    except RecursionError:
        msg = email.parser.BytesParser(policy=_POLICY).parsebytes(text, headersonly=True)
        why = MimeTooDeep.__name__, _too_deep_message(limits.max_depth)
    assert isinstance(msg, EmailMessage)
    return msg, why


def _too_deep_message(depth: int) -> str:
    return f"MIME parts nested too deep to read (more than {depth} levels are not listed)"


def parse_message(raw: bytes) -> dict[str, Any]:
    """The fields tests assert on, from a message's source. Never raises: a message the parser
    cannot make sense of is returned with `unparsable: true` and whatever could be read."""
    data: dict[str, Any] = {
        "from": None,
        "to": [],
        "cc": [],
        "subject": None,
        "text": None,
        "html": None,
        "headers": {},
        "attachments": [],
        "defects": [],
        "unparsable": False,
    }
    try:
        msg, cut = _parse(raw)
    except Exception as exc:  # pragma: no cover - the stdlib parser is lenient; belt and braces
        data.update(unparsable=True, parse_error=f"{type(exc).__name__}: {exc}")
        return data
    headers: dict[str, str | list[str]] = {}
    for name, raw_value in msg.raw_items():
        key = _clean(name).lower()
        if raw_value.isascii() and "=?" not in raw_value:
            # Nothing to decode: unfolding is all the header parser would do, at a fraction of its cost.
            value = _UNFOLD.sub(" ", raw_value.strip())
        else:
            try:
                value = _header_text(msg.policy.header_fetch_parse(name, raw_value))
            except Exception:
                value = _clean(raw_value)
        if key in headers:
            prev = headers[key]
            headers[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            headers[key] = value
    data["headers"] = headers
    if not headers:
        # No header at all: not an RFC 5322 message, so whatever came is its body text.
        data["unparsable"] = True
    for name in ("from", "subject"):
        found = headers.get(name)
        if found is not None:
            data[name] = found[0] if isinstance(found, list) else found
    data["to"] = _addresses(msg, "to")
    data["cc"] = _addresses(msg, "cc")
    if cut is not None:  # headers only: no part of it can be told apart
        data.update(unparsable=True, parse_error=cut[1], defects=[cut[0]])
        return data
    text_part, html_part = _body_parts(msg)
    if text_part is not None:
        data["text"] = _part_text(text_part)
    if html_part is not None:
        data["html"] = _part_text(html_part)
    attachments = []
    defects = [type(d).__name__ for d in msg.defects]
    deeper: list[Message] = []
    try:
        for part in _leaves(msg, deeper):
            defects.extend(type(d).__name__ for d in getattr(part, "defects", ()) if part is not msg)
            if part is text_part or part is html_part:
                continue
            try:
                filename = part.get_filename()
            except Exception:
                filename = None
            attachments.append(
                {
                    "filename": _clean(filename) if filename else None,
                    "content_type": part.get_content_type(),
                    "size": len(_part_bytes(part)),
                    "disposition": part.get_content_disposition(),
                    "content_id": _header_text(part["content-id"]).strip("<>") if part["content-id"] else None,
                }
            )
    except Exception as exc:
        data["unparsable"] = True
        data["parse_error"] = f"{type(exc).__name__}: {exc}"
    if deeper:
        defects.append(MimeTooDeep.__name__)
        data["parse_error"] = _too_deep_message(MAX_DEPTH)
    data["attachments"] = attachments
    data["defects"] = defects
    return data


def attachment_content(raw: bytes, index: int) -> tuple[bytes, str, str | None] | None:
    """The bytes, content type and filename of the `index`-th attachment of a message, or None.

    Raises `MimeTooDeep` when the message nests too deep to list its parts."""
    msg, cut = _parse(raw)
    if cut is not None:
        raise MimeTooDeep(cut[1])
    parts = _attachment_parts(msg)
    if not 0 <= index < len(parts):
        return None
    part = parts[index]
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    return _part_bytes(part), part.get_content_type(), filename
