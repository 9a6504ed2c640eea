"""Failure messages: one-line call descriptions, and why `wait_for` found too few calls."""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mockhub.client.models import Call

__all__ = ["call_text", "describe", "explain_miss"]

_SHOWN_ON_FAILURE = 10

_TEXT_KEYS = ("subject", "text", "body", "summary", "reply", "html")
_RECIPIENT_KEYS = ("to", "cc", "bcc", "rcpt_to", "channel", "recipients")


def _recipients(call: Call) -> set[str]:
    found: set[str] = set()
    for key in _RECIPIENT_KEYS:
        value = call.data.get(key)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                found.add(_norm_recipient(item))
    return found


def _norm_recipient(value: str) -> str:
    value = value.strip().lower()
    if value.endswith(">") and "<" in value:
        value = value[value.rindex("<") + 1 : -1]
    return value.lstrip("#")


def _search_text(call: Call) -> str:
    parts = [call.content.decode("utf-8", "replace")]
    parts.extend(v for k in _TEXT_KEYS if isinstance(v := call.data.get(k), str))
    return "\n".join(parts)


def _criterion(call: Call, name: str, wanted: Any) -> tuple[bool, float]:
    """Whether `call` meets one filter, and how close it comes (0..1) when it does not."""
    text = str(wanted)
    have: str
    if name == "service":
        have = call.service
        ok = have == text
    elif name == "method":
        have = call.method
        ok = have == text.upper()
    elif name == "direction":
        have = call.direction
        ok = have == text
    elif name == "path":
        have = call.path
        ok = fnmatch.fnmatchcase(have, text) if any(c in text for c in "*?[") else have == text
    elif name == "to":
        recipients = _recipients(call)
        ok = _norm_recipient(text) in recipients
        have = " ".join(sorted(recipients))
    elif name == "subject":
        have = str(call.data.get("subject") or "")
        ok = text.lower() in have.lower()
    elif name == "contains":
        have = _search_text(call)
        ok = text in have
        if not ok:
            # Closeness of the best same-length window: "disk ful" is near "disk full", "cpu" is not.
            best = difflib.SequenceMatcher(None, text.lower(), have.lower()).find_longest_match()
            return False, best.size / max(len(text), 1)
    else:
        return True, 1.0
    if ok:
        return True, 1.0
    return False, difflib.SequenceMatcher(None, text.lower(), have.lower()).ratio()


def explain_miss(wanted: dict[str, Any], count: int, got: list[Call], others: list[Call], timeout: float) -> str:
    """The message of `wait_for`'s AssertionError: what was awaited, and what arrived, most similar first."""
    described = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if k != "namespace") or "any call"
    where = f" in namespace {wanted['namespace']!r}" if "namespace" in wanted else ""
    lines = [f"mockhub: expected {count} call(s) matching {described}{where} within {timeout:g}s; {len(got)} matched."]
    if got:
        lines.append("Matching calls:")
        lines.extend(f"  {describe(c, 110, show_namespace=not where)}" for c in got)
    criteria = {k: v for k, v in wanted.items() if k not in ("namespace", "after")}
    matched_ids = {c.id for c in got}
    rest = [c for c in others if c.id not in matched_ids]
    if not rest:
        lines.append(f"No other calls arrived{where}.")
        return "\n".join(lines)
    scored = []
    for call in rest:
        results = {name: _criterion(call, name, value) for name, value in criteria.items()}
        score = sum(1.0 if ok else closeness * 0.9 for ok, closeness in results.values())
        misses = [name for name, (ok, _) in results.items() if not ok]
        scored.append((score, call.seq, call, misses))
    scored.sort(key=lambda item: (-item[0], -item[1]))
    lines.append(f"{len(rest)} other call(s) arrived{where}, most similar first:")
    for _, _, call, misses in scored[:_SHOWN_ON_FAILURE]:
        hint = f"  [differs in: {', '.join(misses)}]" if misses else ""
        lines.append(f"  {describe(call, 110, show_namespace=not where)}{hint}")
    if len(scored) > _SHOWN_ON_FAILURE:
        lines.append(f"  ... and {len(scored) - _SHOWN_ON_FAILURE} more")
    return "\n".join(lines)


def describe(call: Call, width: int = 80, *, show_namespace: bool = True) -> str:
    """`#12 slack POST /services/T/B/X -> 200  "disk full on db-1"`."""
    status = "--" if call.status is None else str(call.status)
    head = f"#{call.seq} {call.service} {call.method} {call.path} -> {status}"
    if show_namespace and call.namespace != "default":
        head += f" [ns {call.namespace}]"
    if call.fault is not None:
        head += f" (fault {call.fault.preset or call.fault.action})"
    what = call_text(call)
    if what:
        room = max(width - len(head) - 4, 20)
        if len(what) > room:
            what = what[: room - 1] + "…"
        head += f'  "{what}"'
    return head


def call_text(call: Call) -> str:
    """The most telling text of a call: an email's subject and recipients, a message's text, a body."""
    data = call.data
    if call.service == "smtp":
        to = ", ".join(sorted(_recipients(call)))
        return f"{data.get('subject') or '(no subject)'} -> {to}"
    for key in ("text", "body", "summary", "reply", "subject"):
        value = data.get(key)
        if isinstance(value, str) and value:
            recipient = data.get("to") or data.get("channel")
            return f"{recipient}: {value}" if isinstance(recipient, str) else value
    body = call.body if call.body_encoding == "utf-8" else f"<{len(call.content)} bytes>"
    return re.sub(r"\s+", " ", body).strip()
