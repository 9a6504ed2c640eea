"""Failure messages: one-line call descriptions, and why `wait_for` found too few calls.

Whether a call meets a filter, and how close it comes, is decided by `mockhub.filters`: the same
matchers the server's journal uses, over the `data` fields each fake declares (`GET /services`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mockhub.filters import closeness

if TYPE_CHECKING:
    from mockhub.client.models import Call

__all__ = ["call_text", "describe", "explain_miss"]

_SHOWN_ON_FAILURE = 10


def explain_miss(
    wanted: dict[str, Any],
    count: int,
    got: list[Call],
    others: list[Call],
    timeout: float,
    *,
    elsewhere: Sequence[Call] = (),
    elsewhere_limit: int | None = None,
) -> str:
    """The message of `wait_for`'s AssertionError: what was awaited, and what arrived, most similar first.

    `elsewhere`: calls matching the same filters in any namespace (`/calls` without `namespace`); those
    of other namespaces are counted by namespace, since a wrong namespace is the usual reason for a miss.
    `elsewhere_limit`: how many were asked for, so a full answer reads "at least".
    """
    lines = _explain(wanted, count, got, others, timeout)
    namespace = wanted.get("namespace")
    if namespace is not None and (where := _elsewhere(namespace, elsewhere, elsewhere_limit)) is not None:
        lines.insert(1, where)  # right under the headline: the likeliest reason for the miss
    return "\n".join(lines)


def _elsewhere(namespace: str, calls: Sequence[Call], limit: int | None) -> str | None:
    """`3 matching calls arrived in other namespaces: default (2), team-7 (1).`, or None."""
    counts = Counter(c.namespace for c in calls if c.namespace != namespace)
    if not counts:
        return None
    total = sum(counts.values())
    least = "at least " if limit is not None and len(calls) >= limit else ""
    noun = "call" if total == 1 and not least else "calls"
    named = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    return f"{least}{total} matching {noun} arrived in other namespaces: {named}."


def _explain(wanted: dict[str, Any], count: int, got: list[Call], others: list[Call], timeout: float) -> list[str]:
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
        return lines
    scored = []
    for call in rest:
        results = {name: closeness(name, value, call) for name, value in criteria.items()}
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
    return lines


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
    """The most telling text of a call: its fake's own one-line summary (served with every call)."""
    if call.summary:
        return call.summary
    body = call.body if call.body_encoding == "utf-8" else f"<{len(call.content)} bytes>"
    return re.sub(r"\s+", " ", body).strip()
