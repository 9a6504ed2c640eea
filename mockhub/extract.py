"""Links and one-time codes in a message's text: what `data.links` and `data.codes` hold.

Pure functions over strings, run once per message-like call when it is recorded (the journal), so
a test asks for "the code in the last SMS" without regexes of its own. Cheap by construction: at
most `MAX_SCAN` characters per text, no parser, literal searches where a regex would try every
position, candidate tokens first and code words only around them.

The rules (docs/delivery.md, "Codes and links"):

- **links**: every `http(s)://` URL in the texts, plus the absolute URL of every `href=` attribute
  (any scheme but `javascript:`, `data:`, `cid:`, `about:` and the addresses `mailto:`, `tel:`,
  `sms:`); HTML character references (`&amp;`) decoded, trailing punctuation dropped,
  de-duplicated, in order of appearance.
- **codes**: a token of 4 to 8 digits, two groups of 3 or of 4 digits (`123-456`, `1234 5678`), or an
  upper-case shape like `ABC-123` / `G-482913` (letters and digits in 2 or 3 hyphenated groups, at
  least one digit), that stands within 100 characters after or 40 before a word such as code, OTP,
  PIN, passcode, password, verification (also code words in Spanish, Portuguese, French, Italian,
  German, Dutch, Polish, Russian, Chinese, Japanese, Korean, ...). A message whose whole text is one
  such token counts too. Not codes: numbers inside URLs, HTML tags or styles; numbers glued to
  currency signs, `%`, `#`, `+`, decimal or thousands separators; parts of dates (`2026-12-02`,
  `02.12.2026`, `12/02/2026`) and of phone numbers (`+1 555 123 4567`, `(555) 123-4567`); a 4-digit
  year (1900-2099) unless the keyword directly introduces it ("PIN: 1987"); and "codes" that are
  zip/postal/area/country/promo/discount/coupon/error/status/tracking codes.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Iterable

__all__ = ["MAX_SCAN", "codes_in", "links_in", "nested_strings"]

MAX_SCAN = 200_000
"""Characters of each text that are scanned: a huge HTML body costs at most this much."""

# -- links ----------------------------------------------------------------------------------------------

# Case-sensitive first (a literal prefix lets the regex engine skip ahead: 3-7x faster); the
# case-insensitive twins run only for a text where they would find more (`HTTPS://`, `HREF=`).
_URL_CHARS = r"[^\s<>\"'`|\\{}\[\]^]+"
_URL = re.compile(r"https?://" + _URL_CHARS)
_URL_ANY_CASE = re.compile(r"https?://" + _URL_CHARS, re.IGNORECASE)
_HREF_VALUE = r"""\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))"""
# No leading \b (it would cost the literal prefix): `links_in` checks the character before.
_HREF = re.compile(r"href" + _HREF_VALUE)
_HREF_ANY_CASE = re.compile(r"href" + _HREF_VALUE, re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# Not places to visit: scripts, inline data, MIME parts, and addresses (mail, phone, SMS).
_NOT_LINKS = ("javascript:", "data:", "cid:", "about:", "mailto:", "tel:", "sms:", "callto:")
_CHAR_REF = re.compile(r"&(?:#[0-9]{1,7}|#x[0-9a-f]{1,6}|[a-z][a-z0-9]{1,31});", re.IGNORECASE)
_TRAILING = ".,;:!?'\"*_~"


def _unescape(text: str) -> str:
    # Only complete references (`&amp;`, `&#38;`): a bare `&copy=1` in a query string stays as written.
    return _CHAR_REF.sub(lambda m: html.unescape(m.group(0)), text) if "&" in text else text


def _tidy(url: str) -> str:
    """A URL as found in prose: without the sentence's punctuation or an unbalanced closing bracket."""
    if "&" in url:
        url = _unescape(url)
    while url and (url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))):
        url = url[:-1]
    return url


def _urls(text: str) -> list[re.Match[str]]:
    found = list(_URL.finditer(text))
    return found if len(found) >= text.count("://") else list(_URL_ANY_CASE.finditer(text))


def links_in(texts: Iterable[str]) -> list[str]:
    """Every link in `texts` (plain text or HTML), de-duplicated, in order of appearance."""
    found: dict[str, None] = {}
    for text in texts:
        text = text[:MAX_SCAN]
        lowered = text.lower() if "=" in text else ""
        if "://" not in text and "href" not in lowered:
            continue
        hits: list[tuple[int, str]] = []
        if "href" in lowered:
            regex = _HREF if text.count("href") >= lowered.count("href") else _HREF_ANY_CASE
            for m in regex.finditer(text):
                value = m.group(1) or m.group(2) or m.group(3) or ""
                if value[:4].lower() == "http" and "://" in value[:8]:
                    continue  # the URL regex finds it (inside the attribute), decoded the same way
                start = m.start()
                if start and (text[start - 1].isalnum() or text[start - 1] in "_-"):
                    continue  # `data-href=`, `xhref=`: not an href attribute
                value = _unescape(value).strip()
                if _SCHEME.match(value) and not value.lower().startswith(_NOT_LINKS):
                    hits.append((start, value))
        for m in _urls(text):
            url = _tidy(m.group(0))
            if len(url) > len("https://"):
                hits.append((m.start(), url))
        hits.sort(key=lambda hit: hit[0])
        for _, url in hits:
            found.setdefault(url, None)
    return list(found)


# -- codes ----------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Code words, as lower-case literals found with `str.find` (much cheaper than one regex alternation):
# 0 = anywhere (`code` also ends `Bestätigungscode`, `verificatiecode`: `_code_word` looks at the
# whole word), 1 = at the start of a word, 2 = a whole word.
_LITERALS: tuple[tuple[str, int], ...] = (
    ("code", 0), ("códig", 0), ("codig", 0), ("codice", 0), ("kod", 1), ("koodi", 1), ("код", 1),
    ("otp", 2), ("pin", 2), ("password", 0), ("passwort", 0), ("one-time", 0), ("one time", 0),
    ("2fa", 2), ("mfa", 2), ("verif", 0), ("vérif", 0), ("κωδικ", 0), ("парол", 0),
    ("contraseña", 0), ("contrasena", 0), ("senha", 1), ("mot de passe", 0), ("wachtwoord", 0),
    ("hasło", 0), ("haslo", 0), ("parola", 1), ("şifre", 0), ("sifre", 0), ("bestätig", 0),
    ("bestatig", 0), ("验证码", 0), ("驗證碼", 0), ("认证码", 0), ("確認コード", 0), ("認証コード", 0),
    ("認証番号", 0), ("ワンタイム", 0), ("인증", 0),
)  # fmt: skip
_ASCII_LITERALS = tuple((word, bound) for word, bound in _LITERALS if word.isascii())
# The same words as one regex, for the rare text whose lower-case form is not as long as itself.
_KEYWORD = re.compile(
    "|".join(("\\b" if b else "") + re.escape(w) + ("\\b" if b == 2 else "") for w, b in _LITERALS), re.IGNORECASE
)
# Words before "code" that make it something other than a one-time code.
_NOT_CODE_WORDS = _words(
    "zip post postal area country dialing dialling promo promotional discount coupon voucher gift error status "
    "exit return response source tracking product bar qr colour color dress reference referral html css "
    "sample example"
)
# Words ending in "code" that are not one-time codes (`Sicherheitscode`, `passcode` are).
_NOT_CODE_COMPOUNDS = _words(
    "zipcode postcode barcode qrcode sourcecode encode decode unicode opcode shortcode keycode charcode hashcode "
    "errorcode statuscode promocode geocode transcode"
)

# Candidates: a run of digit groups (`482913`, `2026-12-02`, `+1 555 123 4567` gives `1 555 123 4567`),
# and upper-case shapes of hyphenated letters and digits. What a run must look like to be a code:
# ASCII digits only ([0-9]: several times faster to scan for than \d, which is every script's digits).
_RUN = re.compile(r"[0-9]+(?:[ .,:/-][0-9]+)*")
_CODE_RUN = re.compile(r"[0-9]{4,8}|[0-9]{3}[- ][0-9]{3}|[0-9]{4}[- ][0-9]{4}")
_SHAPE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")
_SHAPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_SHAPE_OK = re.compile(r"[A-Z0-9]{1,8}(?:-[A-Z0-9]{2,8}){1,2}")
_GLUED_BEFORE = frozenset("$€£¥₹#+/@&-_")
_GLUED_AFTER = frozenset("%/@_-")
_UNIT_AFTER = re.compile(r"\s?(?:%|€|£|\$|usd|eur|gbp|chf|jpy|kr)\b", re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"[$€£¥₹]\s$|\b(?:usd|eur|gbp|chf|jpy)\s?$", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")
_INTRO = re.compile(r"[\s:=#*_>-]*(?:is|ist|est|es|é|è|lautet|:)?[\s:=*_-]*$", re.IGNORECASE)
_HIDDEN = re.compile(r"<(style|script|head)\b.*?</\1\s*>|<!--.*?-->", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z/!][^>]*>")
_BEFORE, _AFTER = 100, 40
_MAX_CANDIDATES = 500
_ALONE = 17  # a text this short that is one token is a code without a code word


def _prose(text: str) -> str:
    """The text a reader sees: no tags, styles, URLs or character references (each becomes a space)."""
    if "<" in text:
        # Tags first: the URLs in their attributes go with them (cheaper than the other way round).
        lowered = text.lower()
        if "<style" in lowered or "<script" in lowered or "<head" in lowered or "<!--" in text:
            text = _HIDDEN.sub(" ", text)
        text = _TAG.sub(" ", text)
    if "://" in text:
        text = _URL.sub(" ", text)
        if "://" in text:
            text = _URL_ANY_CASE.sub(" ", text)
    return _unescape(text)


def _candidates(text: str, lo: int, hi: int, out: list[tuple[int, int]]) -> None:
    """Add where the tokens in `text[lo:hi]` that may be codes are: shapes and digit runs, not glued
    to a number, currency, unit, date or phone part (a run cut by the window's edge is glued to it)."""
    for m in _RUN.finditer(text, lo, hi):
        start, end = m.span()
        if not _CODE_RUN.fullmatch(text, start, end):
            continue
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if before.isalnum() or before in _GLUED_BEFORE or after.isalnum() or after in _GLUED_AFTER:
            continue
        if after in ".," and end + 1 < len(text) and text[end + 1].isdigit():
            continue
        if _UNIT_AFTER.match(text, end) or _CURRENCY_BEFORE.search(text, max(0, start - 5), start):
            continue
        out.append((start, end))
        if len(out) >= _MAX_CANDIDATES:
            return
    # Shapes: found from their hyphens (a literal search), then read whole.
    i = text.find("-", lo, hi)
    while i >= 0:
        if i and text[i - 1] in _SHAPE_CHARS and i + 1 < len(text) and text[i + 1] in _SHAPE_CHARS:
            start = i - 1
            while start > 0 and text[start - 1] in _SHAPE_CHARS:
                start -= 1
            shape = _SHAPE.match(text, start)
            if shape is not None and shape.end() > i:
                _shape(text, shape, out)
                i = text.find("-", shape.end(), hi)
                continue
        i = text.find("-", i + 1, hi)


def _shape(text: str, m: re.Match[str], out: list[tuple[int, int]]) -> None:
    start, end = m.span()
    token = m.group(0)
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_-" or after.isalnum() or after in "_-":
        return
    digits = sum(c.isdigit() for c in token)
    # A shape has letters and digits; digit groups alone are runs (`2026-12-02` is a date).
    if digits and digits + token.count("-") < len(token) and _SHAPE_OK.fullmatch(token):
        out.append((start, end))


def _code_word(text: str, start: int, end: int) -> bool:
    """Whether the `code` at `text[start:end]` is a one-time code's: not `coded`, `barcode`, `zip code`."""
    # Loops over a few characters, not regexes: `(\w*)$` searched backwards is quadratic.
    head = start
    while head > 0 and start - head < 30 and text[head - 1].isalnum():
        head -= 1
    tail = end
    while tail < len(text) and tail - end < 3 and text[tail].isalnum():
        tail += 1
    suffix = text[end:tail].lower()
    if suffix not in ("", "s") or text[head:end].lower() in _NOT_CODE_COMPOUNDS:
        return False  # `coded`, `codebase`, `encode`, `zipcode`
    if head < start:
        return True  # `passcode`, `Bestätigungscode`
    # The word before, past spaces and hyphens: `zip code`, `promo-code`.
    stop = head
    while stop > 0 and head - stop < 10 and text[stop - 1] in " \t\n-":
        stop -= 1
    first = stop
    while first > 0 and stop - first < 20 and text[first - 1].isalnum():
        first -= 1
    return text[first:stop].lower() not in _NOT_CODE_WORDS


def _keywords(text: str, lowered: str | None, lo: int, hi: int, spans: set[tuple[int, int]]) -> None:
    """Add where the code words in `text[lo:hi]` are (`lowered`: `text.lower()`, None if not as long)."""
    if lowered is None:  # lower-casing changed the length (`İ`): positions in it are not those in `text`
        for m in _KEYWORD.finditer(text, lo, hi):
            if m.group(0).lower() != "code" or _code_word(text, *m.span()):
                spans.add(m.span())
        return
    size = len(lowered)
    for word, bound in _ASCII_LITERALS if text.isascii() else _LITERALS:
        i = lowered.find(word, lo, hi)
        while i >= 0:
            j = i + len(word)
            if (
                (not bound or i == 0 or not lowered[i - 1].isalnum())
                and (bound != 2 or j == size or not lowered[j].isalnum())
                and (word != "code" or _code_word(text, i, j))
            ):
                spans.add((i, j))
            i = lowered.find(word, j, hi)


def _near(text: str, start: int, end: int, spans: list[tuple[int, int]], ends: list[int]) -> tuple[bool, bool]:
    """Whether a keyword is near the token, and whether one directly introduces it ("code: 1234").

    `spans` are sorted (and `ends` their ends): only the keywords around the token are looked at.
    """
    near = direct = False
    # The last keyword ending at or before the token, then those starting after it, in order.
    i = bisect.bisect_right(ends, start) - 1
    if i >= 0:
        k_end = spans[i][1]
        if start - k_end <= _BEFORE:
            near = True
            direct = start - k_end <= 12 and _INTRO.match(text, k_end, start) is not None
    for k_start, _ in spans[i + 1 : i + 3]:
        if k_start >= end and k_start - end <= _AFTER:
            near = True
            break
    return near, direct


def codes_in(texts: Iterable[str]) -> list[str]:
    """The one-time codes in `texts`, de-duplicated, in order of appearance (rules: module docstring).

    The texts are read as one, in order: a message's subject or an embed's title ("Security code")
    is the context of a code in its body. Code words are looked for only around candidate tokens.
    """
    parts = dict.fromkeys(p for t in texts if (p := _prose(t[:MAX_SCAN]).strip()))
    text = "\n".join(parts)
    candidates: list[tuple[int, int]] = []
    _candidates(text, 0, len(text), candidates)
    if not candidates:
        return []  # the common case of a message without a code: no code word looked for
    if len(text) <= _ALONE and candidates == [(0, len(text))]:
        return [text]  # a message that is nothing but a code ("774422") needs no code word
    candidates.sort()
    lowered: str | None = text.lower()
    if lowered is not None and len(lowered) != len(text):
        lowered = None
    found_spans: set[tuple[int, int]] = set()
    reach = 0
    for start, end in candidates:
        # The code words around each candidate, each stretch of text searched once; the margins
        # (and the overlap of 16) keep a code word from being cut by a window's edge.
        lo, hi = max(reach - 16, start - _BEFORE - 20, 0), min(len(text), end + _AFTER + 20)
        if hi > lo and hi > reach:
            _keywords(text, lowered, lo, hi, found_spans)
            reach = hi
    if not found_spans:
        return []
    spans = sorted(found_spans)
    ends = [k_end for _, k_end in spans]
    found: dict[str, None] = {}
    for start, end in candidates:
        token = text[start:end]
        near, direct = _near(text, start, end, spans, ends)
        if near and not (len(token) == 4 and _YEAR.fullmatch(token) and not direct):
            found.setdefault(token, None)
    return list(found)


_NESTED_KEYS = frozenset(
    ("text", "url", "title", "title_link", "pretext", "fallback", "value", "description", "footer", "content", "name")
)


def nested_strings(value: object, out: list[str], depth: int = 0, budget: int = 2_000) -> None:
    """The human-facing strings (`text`, `url`, `title`, ...) of structured content (Slack blocks,
    Discord embeds, Teams cards), depth first; bounded in depth and count."""
    if depth > 12 or len(out) >= budget:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if key in _NESTED_KEYS:
                    out.append(item)
            else:
                nested_strings(item, out, depth + 1, budget)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                continue
            nested_strings(item, out, depth + 1, budget)
