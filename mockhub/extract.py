"""Links and one-time codes in a message's text: what `data.links` and `data.codes` hold.

Pure functions over strings, run once per message-like call when it is recorded (the journal), so
a test asks for "the code in the last SMS" without regexes of its own. Cheap by construction: a
few precompiled regular expressions over at most `MAX_SCAN` characters per text, no parser.

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
    url = _unescape(url).strip()
    while url:
        if url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")")):
            url = url[:-1]
        else:
            break
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
                if m.start() and (text[m.start() - 1].isalnum() or text[m.start() - 1] in "_-"):
                    continue  # `data-href=`, `xhref=`: not an href attribute
                value = _unescape(next(g for g in m.groups() if g is not None)).strip()
                if _SCHEME.match(value) and not value.lower().startswith(_NOT_LINKS):
                    hits.append((m.start(), value))
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


# Code words, matched without a leading \b where a word may end in them (`Bestätigungscode`,
# `verificatiecode`): `_keywords` then looks at the whole word. Searched only near candidate tokens.
_KEYWORD = re.compile(
    r"code|c[óo]dig|codice|\bkod|\bkoodi|\bкод|\botp\b|\bpin\b|passwor[dt]|one[- ]time|\b2fa\b|\bmfa\b|v[eé]rif|"  # noqa: RUF001
    r"κωδικ|парол|contrase[ñn]a|\bsenha|mot de passe|wachtwoord|has[łl]o|\bparola|[şs]ifre|best[aä]tig|"
    r"验证码|驗證碼|认证码|確認コード|認証コード|認証番号|ワンタイム|인증",
    re.IGNORECASE,
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
_WORD_END = re.compile(r"(\w*)$")
_WORD_START = re.compile(r"\w*")
_WORD_BEFORE = re.compile(r"(\w+)[\s-]*$")

# Candidates: a run of digit groups (`482913`, `2026-12-02`, `+1 555 123 4567` gives `1 555 123 4567`),
# and upper-case shapes of hyphenated letters and digits. What a run must look like to be a code:
_RUN = re.compile(r"\d+(?:[ .,:/-]\d+)*")
_CODE_RUN = re.compile(r"\d{4,8}|\d{3}[- ]\d{3}|\d{4}[- ]\d{4}")
_SHAPE = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")
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


def _prose(text: str) -> str:
    """The text a reader sees: no URLs, tags, styles or character references (each becomes a space)."""
    if "://" in text:
        text = _URL.sub(" ", text)
        if "://" in text:
            text = _URL_ANY_CASE.sub(" ", text)
    if "<" in text:
        lowered = text.lower()
        if "<style" in lowered or "<script" in lowered or "<head" in lowered or "<!--" in text:
            text = _HIDDEN.sub(" ", text)
        text = _TAG.sub(" ", text)
    return _unescape(text)


def _candidates(text: str) -> list[tuple[int, int]]:
    """Where the tokens that may be codes are, in order: shapes and digit runs, not glued to a number,
    currency, unit, date or phone part."""
    out: list[tuple[int, int]] = []
    for m in _RUN.finditer(text):
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
            break
    for m in _SHAPE.finditer(text):
        start, end = m.span()
        token = m.group(0)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if before.isalnum() or before in "_-" or after.isalnum() or after in "_-":
            continue
        digits = sum(c.isdigit() for c in token)
        # A shape has letters and digits; digit groups alone are runs (`2026-12-02` is a date).
        if digits and digits + token.count("-") < len(token) and _SHAPE_OK.fullmatch(token):
            out.append((start, end))
    out.sort()
    return out


def _keywords(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Where the code words in `text[start:end]` are: `zip code`, `barcode` and the like are not."""
    spans = []
    for m in _KEYWORD.finditer(text, start, end):
        if m.group(0).lower() == "code":
            head = _WORD_END.search(text, max(0, m.start() - 30), m.start())
            tail = _WORD_START.match(text, m.end())
            prefix, suffix = (head.group(1) if head else ""), (tail.group(0) if tail else "")
            if suffix.lower() not in ("", "s") or (prefix + "code").lower() in _NOT_CODE_COMPOUNDS:
                continue  # `coded`, `codebase`, `encode`, `zipcode`
            before = _WORD_BEFORE.search(text, max(0, m.start() - 40), m.start())
            if not prefix and before is not None and before.group(1).lower() in _NOT_CODE_WORDS:
                continue  # `zip code`, `promo code`
        spans.append(m.span())
    return spans


def _near(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> tuple[bool, bool]:
    """Whether a keyword is near the token, and whether one directly introduces it ("code: 1234")."""
    near = direct = False
    for k_start, k_end in spans:
        if k_end <= start and start - k_end <= _BEFORE:
            near = True
            if start - k_end <= 12 and _INTRO.match(text, k_end, start):
                direct = True
        elif k_start >= end and k_start - end <= _AFTER:
            near = True
    return near, direct


def codes_in(texts: Iterable[str]) -> list[str]:
    """The one-time codes in `texts`, de-duplicated, in order of appearance (rules: module docstring).

    The texts are read as one, in order: a message's subject or an embed's title ("Security code")
    is the context of a code in its body. Code words are searched only around candidate tokens.
    """
    parts = [_prose(raw[:MAX_SCAN]) for raw in texts]
    text = "\n".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    candidates = _candidates(text)
    if not candidates:
        return []
    if len(candidates) == 1 and candidates[0] == (0, len(text)):
        return [text]  # a message that is nothing but a code ("774422") needs no code word
    # The keywords of the windows around the candidates, each stretch of text searched once.
    spans: list[tuple[int, int]] = []
    reach = 0
    for start, end in candidates:
        lo, hi = max(reach, start - _BEFORE - 40), min(len(text), end + _AFTER + 40)
        if hi > lo:
            spans.extend(_keywords(text, lo, hi))
            reach = hi
    if not spans:
        return []
    found: dict[str, None] = {}
    for start, end in candidates:
        token = text[start:end]
        near, direct = _near(text, start, end, spans)
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
