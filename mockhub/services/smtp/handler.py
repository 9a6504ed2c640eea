"""The aiosmtpd handler: what the protocol knows, turned into journal `Call` records.

It asks the rule book for faults and appends to the journal. It knows nothing of the SMTP wire
protocol (the protocol hands it a `Conn` and an `Attempt`), so it never imports `protocol`."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import TLSSetupException

from mockhub.journal import Call, Journal, ResponseRecord, new_id
from mockhub.rules import FaultRule, RuleBook
from mockhub.services.smtp.faults import Stage
from mockhub.services.smtp.mime import _clean, parse_message
from mockhub.store import Store, StoreUnavailable

__all__ = ["Attempt", "Conn", "SmtpHandler", "namespace_for"]

log = logging.getLogger("mockhub.smtp")

# Messages above this size are parsed in a worker thread, so a 50 MiB mail does not stall the loop.
_PARSE_IN_THREAD_BYTES = 1024 * 1024
_NS_RECIPIENT = re.compile(r"\+ns-([^@\s+]+)@")
# `ns-team42`, `app+ns-team42`, `app+ns-team42@example.com`: the whole name, not any `ns-` inside it.
_NS_USER = re.compile(r"(?:^|\+)ns-([^@\s+]+)(?:@[^@\s]*)?$")


@dataclass(slots=True)
class Conn:
    """What the handler needs to know about a connection; the protocol keeps it current."""

    peer: str = ""
    tls: bool = False
    helo: str | None = None
    auth_user: str | None = None


@dataclass(slots=True)
class Attempt:
    """One command in progress: its stage, what is known, and the fault that hit it (if any)."""

    stage: Stage
    known: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    rule: FaultRule | None = None
    recorded: bool = False


def namespace_for(auth_user: str | None, recipients: list[str]) -> str:
    """The namespace of a session, most explicit signal first (docs/namespaces.md).

    A recipient `anything+ns-{namespace}@...`, then an AUTH user name `ns-{namespace}` or
    `anything+ns-{namespace}` (optionally `@domain`), then the plain AUTH user name, else `default`.
    The tags win over a plain user name because a project's `.env.test` usually pins one SMTP user
    for every test, which would otherwise put all their mail in one namespace.
    """
    for rcpt in recipients:
        m = _NS_RECIPIENT.search(rcpt)
        if m is not None:
            return m.group(1)
    if auth_user:
        m = _NS_USER.search(auth_user)
        return auth_user if m is None else m.group(1)
    return "default"


_METHODS: dict[str, str] = {
    "connect": "CONNECT",
    "ehlo": "EHLO",
    "auth": "AUTH",
    "mail": "MAIL",
    "rcpt": "RCPT",
    "data": "DATA",
}


class SmtpHandler:
    """The aiosmtpd handler: builds call records, asks the rule book, appends to the journal."""

    def __init__(self, journal: Journal, rules: RuleBook, store: Store | None = None) -> None:
        self.journal = journal
        self.rules = rules
        # A shared store records and counts; without one (memory) the journal and rules are called directly.
        self.store = store if store is not None and store.shared else None

    def stage_call(self, conn: Conn, attempt: Attempt) -> Call:
        """The call for a command that was not (or not yet) a delivered message."""
        known = attempt.known
        data: dict[str, Any] = {
            "mail_from": known.get("mail_from"),
            "rcpt_to": known.get("rcpt_to", []),
            "helo": known.get("helo", conn.helo),
            "auth_user": known.get("auth_user", conn.auth_user),
            "tls": conn.tls,
            "peer": conn.peer,
        }
        for key in ("mechanism",):
            if key in known:
                data[key] = known[key]
        namespace = namespace_for(data["auth_user"], data["rcpt_to"])
        return Call(service="smtp", method=_METHODS[attempt.stage], path="/", namespace=namespace, data=data)

    async def fault_at(self, conn: Conn, attempt: Attempt) -> FaultRule | None:
        """The fault rule for this command at its stage (counted as fired), or None."""
        if self.store is None:
            return self.rules.fault_for(self.stage_call(conn, attempt), stage=attempt.stage)
        try:
            return await self.store.fault_for(self.stage_call(conn, attempt), stage=attempt.stage)
        except StoreUnavailable:
            return None  # the message itself is refused (451) when it cannot be recorded

    def record_stage(self, conn: Conn, attempt: Attempt, reply: str | None) -> Call:
        """Record a rejected (or fault-hit) command with the reply it got (None: hung up)."""
        attempt.recorded = True
        return self.record(self.stage_call(conn, attempt), reply, attempt.rule, attempt.stage, attempt.started)

    def record(self, call: Call, reply: str | None, rule: FaultRule | None, stage: Stage, started: float) -> Call:
        self.record_fields(call, reply, rule, stage, started)
        if self.store is None:
            return self.journal.append(call)
        # A refused command: no acknowledgement waits on this record.
        self.store.append_soon(call)
        return call

    def record_fields(
        self, call: Call, reply: str | None, rule: FaultRule | None, stage: Stage, started: float
    ) -> None:
        """Fill in what the client got: the reply, the fault, the duration."""
        if reply is not None:
            try:
                status = int(reply[:3])
            except ValueError:
                status = 0
            call.response = ResponseRecord(status, {}, reply.encode("utf-8", "replace"))
        if rule is not None:
            call.fault = {**rule.summary(), "stage": stage}
        call.duration_ms = (time.perf_counter() - started) * 1000

    async def deliver(self, call: Call, reply: str | None, rule: FaultRule | None, started: float) -> None:
        """Record a message before its reply is sent (in the shared store when there is one)."""
        if self.store is None:
            self.record(call, reply, rule, "data", started)
            return
        self.record_fields(call, reply, rule, "data", started)
        await self.store.append(call)

    async def message_call(self, conn: Conn, mail_from: str, rcpt_tos: list[str], raw: bytes) -> Call:
        """The call for a message received by DATA (not yet recorded; its id is already set)."""
        if len(raw) > _PARSE_IN_THREAD_BYTES:
            parsed = await asyncio.to_thread(parse_message, raw)
        else:
            parsed = parse_message(raw)
        data: dict[str, Any] = {
            "mail_from": _clean(mail_from),
            "rcpt_to": [_clean(r) for r in rcpt_tos],
            **parsed,
            "auth_user": conn.auth_user,
            "tls": conn.tls,
            "helo": conn.helo,
            "peer": conn.peer,
            "size": len(raw),
        }
        headers = {k: ", ".join(v) if isinstance(v, list) else v for k, v in parsed["headers"].items()}
        call = Call(
            service="smtp",
            method="DATA",
            path="/",
            namespace=namespace_for(conn.auth_user, data["rcpt_to"]),
            headers=headers,
            body=raw,
            data=data,
        )
        call.id = new_id("c_")
        return call

    async def fault_for_message(self, call: Call) -> FaultRule | None:
        if self.store is None:
            return self.rules.fault_for(call, stage="data")
        return await self.store.fault_for(call, stage="data")

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception while handling a command: log it, answer 451, go on."""
        if isinstance(error, TLSSetupException):
            # The client's TLS handshake failed (aiosmtpd then closes the connection): its problem.
            log.info("STARTTLS handshake failed: %r", error.__cause__)
        else:
            log.error("SMTP command failed: %r", error, exc_info=error)
        return f"451 4.3.0 Internal error in mockhub ({type(error).__name__}), try again later"
