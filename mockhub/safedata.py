"""Keep a call's parsed `data` readable by every reader of the journal, whatever the client sent.

A client chooses the bytes a fake parses, so `data` can hold what some reader cannot write or read
back: nesting deeper than orjson writes (254) or than pydantic reads (the Python client: ~200), keys
that are not strings, integers beyond 64 bits, lone surrogates. Recorded as they are, such a call
would break every later `GET /calls`, SSE frame, export or record line that includes it.

`safe_data` answers None for the usual `data` (one orjson pass and two byte counts), else a copy
cut at `MAX_DATA_DEPTH` levels with those values replaced; the journal then flags the call
`data_truncated`. The body itself is never touched: `/calls/{id}/raw` serves it byte-exact.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["MAX_DATA_DEPTH", "TRUNCATED", "safe_data"]

MAX_DATA_DEPTH = 64
"""Levels of `data` kept (`data` itself is level 1): a dict or list deeper than this becomes `TRUNCATED`."""

TRUNCATED = f"[mockhub: truncated, nested deeper than {MAX_DATA_DEPTH} levels]"

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def safe_data(data: dict[str, Any]) -> dict[str, Any] | None:
    """None when `data` can be served as it is; else a copy every reader can serialise and parse."""
    try:
        raw = orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError: too deep, a non-string key, a huge int, a lone surrogate
        return _copy(data)
    # Every level opens a bracket, so few brackets prove shallow data without walking it.
    if raw.count(b"{") + raw.count(b"[") <= MAX_DATA_DEPTH or _shallow(data):
        return None
    return _copy(data)


def _shallow(data: dict[str, Any]) -> bool:
    """Whether no dict or list in `data` is deeper than MAX_DATA_DEPTH (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DATA_DEPTH:
            return False
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return True


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    result = _clean(data, 1)
    assert isinstance(result, dict)
    return result


def _clean(value: Any, depth: int) -> Any:
    """A JSON-safe copy of `value`, at `depth` levels (recursion bounded by MAX_DATA_DEPTH)."""
    if isinstance(value, str):
        return _text(value)
    if value is None or isinstance(value, (bool, float)):
        return value  # orjson writes NaN and Infinity as null
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, (dict, list, tuple)):
        if depth > MAX_DATA_DEPTH:
            return TRUNCATED
        if isinstance(value, dict):
            return {_key(k): _clean(v, depth + 1) for k, v in value.items()}
        return [_clean(v, depth + 1) for v in value]
    try:  # anything else orjson writes (a datetime...) stays; the rest becomes its text
        orjson.dumps(value)
    except TypeError:
        return _text(str(value))
    return value


def _key(key: Any) -> str:
    return _text(key if isinstance(key, str) else str(key))


def _text(text: str) -> str:
    """`text` with lone surrogates (which UTF-8 cannot hold) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text
