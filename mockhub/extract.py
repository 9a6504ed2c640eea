"""Links and one-time codes in a message's text: what `data.links` and `data.codes` hold.

Pure functions over strings, run once per message-like call when it is recorded (the journal), so
a test asks for "the code in the last SMS" without regexes of its own. Cheap by construction: a
few precompiled regular expressions over at most `MAX_SCAN` characters per text, no parser.

The rules (docs/delivery.md, "Codes and links"):

- **links**: every `http(s)://` URL in the texts, plus the absolute URL of every `href=` attribute
  (any scheme but `javascript:`, `data:`, `cid:`); HTML character references (`&amp;`) decoded,
  trailing punctuation dropped, de-duplicated, in order of appearance.
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

_URL = re.compile(r"https?://[^\s<>\"'`|\\{}\[\]^]+", re.IGNORECASE)
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_NOT_LINKS = ("javascript:", "data:", "cid:", "about:")
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


def links_in(texts: Iterable[str]) -> list[str]:
    """Every link in `texts` (plain text or HTML), de-duplicated, in order of appearance."""
    found: dict[str, None] = {}
    for text in texts:
        text = text[:MAX_SCAN]
        if "://" not in text and "href" not in text.lower():
            continue
        hits: list[tuple[int, str]] = []
        for m in _HREF.finditer(text):
            value = _unescape(next(g for g in m.groups() if g is not None)).strip()
            if _SCHEME.match(value) and not value.lower().startswith(_NOT_LINKS):
                hits.append((m.start(), value))
        for m in _URL.finditer(text):
            url = _tidy(m.group(0))
            if len(url) > len("https://"):
                hits.append((m.start(), url))
        hits.sort(key=lambda hit: hit[0])
        for _, url in hits:
            found.setdefault(url, None)
    return list(found)


# -- codes ----------------------------------------------------------------------------------------------

_KEYWORD = re.compile(
    r"\b(?:codes?|otp|pin|passcode|passcodes|password|passwort|one[- ]time|2fa|mfa|verif\w*|v[ée]rif\w*|"
    r"c[óo]digos?|codice|kod|kodu|kode|koden|koodi|κωδικ\w*|код\w*|пароль|парол\w*|contrase[ñn]a|senha|"
    r"mot de passe|wachtwoord|has[łl]o|parola|[şs]ifre|bestätigung\w*|best[aä]tig\w*|\w*code)\b"
    r"|验证码|驗證碼|认证码|確認コード|認証コード|認証番号|ワンタイム|인증\s?번호|인증\s?코드",
    re.IGNORECASE,
)
# Words before "code" that make it something other than a one-time code.
_NOT_CODE_WORDS = frozenset(
    [
        "zip",
        "post",
        "postal",
        "area",
        "country",
        "dialing",
        "dialling",
        "promo",
        "promotional",
        "discount",
        "coupon",
        "voucher",
        "gift",
        "error",
        "status",
        "exit",
        "return",
        "response",
        "source",
        "tracking",
        "product",
        "bar",
        "qr",
        "colour",
        "color",
        "dress",
        "reference",
        "referral",
        "html",
        "css",
        "sample",
        "example",
    ]
)
_NOT_CODE_COMPOUNDS = frozenset(
    [
        "zipcode",
        "postcode",
        "barcode",
        "qrcode",
        "sourcecode",
        "encode",
        "decode",
        "unicode",
        "opcode",
        "shortcode",
        "keycode",
        "charcode",
        "hashcode",
        "errorcode",
        "statuscode",
        "promocode",
        "geocode",
        "transcode",
    ]
)
_WORD_BEFORE = re.compile(r"(\w+)[\s-]*$")

# A token of digits, or two groups of 3-4 digits, not glued to a number, currency, date or phone part.
_DIGITS = re.compile(
    r"(?<![\w$€£¥₹#+/@&=])(?<!\d[.,:/ -])(?<!\w-)(?<![$€£¥₹] )"
    r"(\d{4,8}|\d{3}[- ]\d{3}|\d{4}[- ]\d{4})"
    r"(?![\w%/@]|[.,:/-]\d|[ -]\d|\s?(?:%|€|£|\$|usd|eur|gbp|chf|jpy|kr)\b)",
    re.IGNORECASE,
)
# Upper-case letters and digits in 2-3 hyphenated groups (`ABC-123`, `G-482913`, `X7K-9P2`).
_SHAPE = re.compile(r"(?<![\w-])([A-Z0-9]{1,8}(?:-[A-Z0-9]{2,8}){1,2})(?![\w-])")
_YEAR = re.compile(r"(?:19|20)\d\d")
_INTRO = re.compile(r"[\s:=#-]*(?:is|ist|est|es|é|è|:)?[\s:=-]*$", re.IGNORECASE)
_TAG = re.compile(r"<(?:style|script|head)\b.*?</(?:style|script|head)\s*>|<!--.*?-->|<[a-zA-Z/!][^>]*>", re.DOTALL)
_BEFORE, _AFTER = 100, 40


def _prose(text: str) -> str:
    """The text a reader sees: no URLs, tags, styles or character references (each becomes a space)."""
    text = _URL.sub(" ", text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    return _unescape(text)


def _keywords(text: str) -> list[tuple[int, int]]:
    """Where the code words are: `zip code`, `barcode` and the like are not among them."""
    spans = []
    for m in _KEYWORD.finditer(text):
        word = m.group(0).lower()
        if word.endswith("code"):
            if word in _NOT_CODE_COMPOUNDS:
                continue
            before = _WORD_BEFORE.search(text, max(0, m.start() - 40), m.start())
            if before is not None and before.group(1).lower() in _NOT_CODE_WORDS:
                continue
        spans.append((m.start(), m.end()))
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
    is the context of a code in its body.
    """
    parts = [_prose(raw[:MAX_SCAN]) for raw in texts]
    text = "\n".join(dict.fromkeys(p.strip() for p in parts if p.strip()))
    # A message that is nothing but a code ("774422") needs no keyword.
    alone = len(text) <= 17
    spans = _keywords(text) if _KEYWORD.search(text) else []
    if not spans and not alone:
        return []
    hits: list[tuple[int, str]] = []
    for regex in (_DIGITS, _SHAPE):
        for m in regex.finditer(text):
            token = m.group(1)
            if regex is _SHAPE and (not any(c.isdigit() for c in token) or token.replace("-", "").isdigit()):
                continue  # a shape has letters and digits; digit groups are _DIGITS' (`2026-12-02` is a date)
            if alone and token == text:
                hits.append((m.start(), token))
                continue
            near, direct = _near(text, m.start(), m.end(), spans)
            if near and not (len(token) == 4 and _YEAR.fullmatch(token) and not direct):
                hits.append((m.start(), token))
    hits.sort(key=lambda hit: hit[0])
    return list(dict.fromkeys(token for _, token in hits))


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
