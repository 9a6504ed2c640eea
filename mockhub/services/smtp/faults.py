"""Fault rules as SMTP outcomes: what a rule's action (SMTP-minded or HTTP-minded) means at a stage.

Decided here, carried out by the protocol, so the mapping needs no connection to be tested."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mockhub.rules import FaultSpec

__all__ = ["Outcome", "Stage", "fault_outcome"]

Stage = Literal["connect", "ehlo", "auth", "mail", "rcpt", "data"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the protocol does for a fault: wait `delay`, then answer `reply` (None: no reply), and
    hang up when `hangup`; `proceed` means the command then runs as normal (a plain delay)."""

    delay: float = 0.0
    reply: str | None = None
    hangup: bool = False
    proceed: bool = False


_CODE_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.1 Mailbox temporarily unavailable, try again later",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.5.3 Insufficient system resources",
    454: "4.7.0 Temporary authentication failure",
    530: "5.7.0 Authentication required",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed limit",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Transaction failed",
}

# preset -> (code before the session is set up (connect/ehlo), code at auth, code at mail/rcpt/data).
# 421 closes the connection (RFC 5321 3.8); 4xx elsewhere are transient, so clients retry.
_PRESET_CODES: dict[str, tuple[int, int, int]] = {
    "rate_limited": (421, 454, 451),
    "server_error": (421, 454, 451),
    "unavailable": (421, 421, 421),
    "overloaded": (421, 421, 421),
    "unauthorized": (530, 535, 530),
}
_PRESET_TEXT = {
    "rate_limited": "4.7.0 Rate limit exceeded, try again later",
    "server_error": "4.3.0 Temporary server error, try again later",
    "unavailable": "4.3.2 Service not available, closing transmission channel",
    "overloaded": "4.3.2 Server busy, closing transmission channel",
}
_HTTP_STATUS_PRESET = {
    429: "rate_limited",
    401: "unauthorized",
    403: "unauthorized",
    503: "unavailable",
    529: "overloaded",
}


def _reply_line(code: int, message: str | None, rule_id: str, default: str | None = None) -> str:
    if message:
        lines = message.splitlines() or [""]
    else:
        lines = [f"{default or _CODE_TEXT.get(code, 'mockhub fault')} (mockhub fault {rule_id})"]
    # A message with several lines becomes a multi-line reply: "451-first", ..., "451 last".
    return "\r\n".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}" for i, line in enumerate(lines))


def fault_outcome(spec: FaultSpec, rule_id: str, stage: Stage) -> Outcome:
    """How a fault rule acts at an SMTP stage (presets and HTTP-minded actions mapped to SMTP)."""
    delay = (spec.delay_ms or 0) / 1000
    action = spec.action
    if action == "smtp_reply":
        code = spec.code or 451
        return Outcome(delay, _reply_line(code, spec.message, rule_id), hangup=code == 421 or stage == "connect")
    if action == "error":
        if spec.code is not None:
            code, default = spec.code, None
        else:
            preset = spec.preset or _HTTP_STATUS_PRESET.get(spec.status or 500, "server_error")
            column = 0 if stage in ("connect", "ehlo") else 1 if stage == "auth" else 2
            code = _PRESET_CODES[preset][column]
            default = _PRESET_TEXT.get(preset) if code != 530 and code != 535 else None
        message = spec.message or (spec.body if isinstance(spec.body, str) else None)
        reply = _reply_line(code, message, rule_id, default)
        return Outcome(delay, reply, hangup=code == 421 or stage == "connect")
    if action == "delay":
        return Outcome(delay, proceed=True)
    if action == "timeout":
        # Hold the connection silently, then drop it: the client's own timeout should fire first.
        return Outcome(delay or 60.0, None, hangup=True)
    if action == "malformed":
        return Outcome(delay, "this is not SMTP \x7f", hangup=True)
    # disconnect, reset, empty, cut_stream: drop the connection without a word.
    return Outcome(delay, None, hangup=True)
