"""The SMTP fake: a real mail server (aiosmtpd) on its own listeners, in the server's event loop.

Three parts, kept apart:
- `MockSMTP`, an aiosmtpd `SMTP` subclass: the protocol. It adds the stage hooks (connect, ehlo,
  auth, mail, rcpt, data) where fault rules act, PIPELINING, a recipient limit, and it carries out
  fault outcomes (a reply, a hang-up, a delay). It knows nothing of the journal.
- `SmtpHandler`, the handler: turns what the protocol knows into `Call` records, asks the rule
  book for faults, and appends to the journal. It knows nothing of the SMTP wire protocol.
- `SmtpService`: settings, TLS material, listeners, and the extra inspection routes
  (`/calls/{id}/attachments/{index}`, `/tls/ca.pem`).

Call shape: a delivered message is method `DATA`, path `/`, body the message source byte-exact.
An attempt that a fault or a policy rejected before delivery is recorded as the command that was
rejected (`CONNECT`, `EHLO`, `AUTH`, `MAIL`, `RCPT`, `DATA`), with the envelope known so far in
`data` and the SMTP reply in `response` (`status` is the reply code; no `response` when mockhub
hung up without a reply).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email
import email.policy
import functools
import ipaddress
import logging
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import quote

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException
from starlette.exceptions import HTTPException
from starlette.responses import Response

from mockhub.journal import Call, Journal, ResponseRecord, new_id
from mockhub.rules import FaultRule, FaultSpec, RuleBook
from mockhub.services.base import Service, ServiceContext

if TYPE_CHECKING:
    from fastapi import APIRouter

    from mockhub.settings import Settings

__all__ = [
    "MockSMTP",
    "SmtpConfig",
    "SmtpHandler",
    "SmtpService",
    "TlsMaterial",
    "attachment_content",
    "fault_outcome",
    "parse_message",
]

log = logging.getLogger("mockhub.smtp")

Stage = Literal["connect", "ehlo", "auth", "mail", "rcpt", "data"]

# Messages above this size are parsed in a worker thread, so a 50 MiB mail does not stall the loop.
_PARSE_IN_THREAD_BYTES = 1024 * 1024
_NS_RECIPIENT = re.compile(r"\+ns-([^@\s+]+)@")
_UNFOLD = re.compile(r"\r?\n[ \t]+")


# --------------------------------------------------------------------------------------------------
# Configuration, computed once at startup


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """The SMTP settings, digested once so a connection does no per-connection parsing."""

    hostname: str = "mockhub"
    max_message_bytes: int = 50 * 1024 * 1024
    max_recipients: int = 100
    require_auth: bool = False
    auth_require_tls: bool = False
    # None: any credentials; else user -> password (None: any password for that user).
    credentials: dict[str, str | None] | None = None
    # Seconds a session may go without a valid command; the whole DATA transfer counts as one wait.
    timeout: float = 60.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        credentials: dict[str, str | None] | None = None
        if settings.smtp_credentials:
            credentials = {}
            for entry in settings.smtp_credentials.split(","):
                entry = entry.strip()
                if entry:
                    user, sep, password = entry.partition(":")
                    credentials[user] = password if sep else None
        return cls(
            hostname=settings.smtp_hostname,
            max_message_bytes=settings.smtp_max_message_bytes,
            max_recipients=settings.smtp_max_recipients,
            require_auth=settings.smtp_require_auth,
            auth_require_tls=settings.smtp_auth_require_tls,
            credentials=credentials,
            timeout=settings.smtp_timeout,
            max_connections=settings.smtp_max_connections,
        )

    def accepts(self, login: str, password: str) -> bool:
        if self.credentials is None:
            return True
        if login not in self.credentials:
            return False
        pinned = self.credentials[login]
        return pinned is None or pinned == password


# --------------------------------------------------------------------------------------------------
# TLS: a throwaway CA and server certificate, or the ones given by path


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The server's TLS context, and the PEM a client should trust (served at `/tls/ca.pem`)."""

    context: ssl.SSLContext
    ca_pem: bytes

    @classmethod
    def load(cls, cert: Path, key: Path) -> TlsMaterial:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return cls(context, cert.read_bytes())

    @classmethod
    def generate(cls, hostname: str, extra_hosts: tuple[str, ...] = ()) -> TlsMaterial:
        """A fresh CA and a server certificate it signs, for `hostname`, localhost and loopback."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        # EC keys: generated in about a millisecond, where RSA would cost a good part of startup.
        now = datetime.now(UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mockhub test CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )

        names: list[x509.GeneralName] = []
        seen: set[str] = set()
        for host in (hostname, "localhost", socket.gethostname(), "127.0.0.1", "::1", *extra_hosts):
            if not host or host in seen or host in ("0.0.0.0", "::"):
                continue
            seen.add(host)
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
        chain_pem = cert.public_bytes(serialization.Encoding.PEM) + ca_pem
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # load_cert_chain only reads files; the key lives on disk only for this moment.
        with tempfile.TemporaryDirectory(prefix="mockhub-tls-") as tmp:
            cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert_path.write_bytes(chain_pem)
            key_path.touch(mode=0o600)
            key_path.write_bytes(key_pem)
            context.load_cert_chain(cert_path, key_path)
        return cls(context, ca_pem)


# --------------------------------------------------------------------------------------------------
# Message parsing (stdlib `email`, policy.default)


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


def _leaves(part: Message) -> Iterator[Message]:
    """The non-container parts in order; an attached message (message/rfc822) counts as one part."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _leaves(sub)


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


def _parse(raw: bytes) -> EmailMessage:
    # SMTP carries CRLF line ends; as LF the decoded text is what the sender wrote (Python's own
    # smtpd did the same). The stored source stays byte-exact.
    msg = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=_POLICY)
    assert isinstance(msg, EmailMessage)
    return msg


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
        msg = _parse(raw)
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
    text_part, html_part = _body_parts(msg)
    if text_part is not None:
        data["text"] = _part_text(text_part)
    if html_part is not None:
        data["html"] = _part_text(html_part)
    attachments = []
    defects = [type(d).__name__ for d in msg.defects]
    try:
        for part in _leaves(msg):
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
    data["attachments"] = attachments
    data["defects"] = defects
    return data


def attachment_content(raw: bytes, index: int) -> tuple[bytes, str, str | None] | None:
    """The bytes, content type and filename of the `index`-th attachment of a message, or None."""
    parts = _attachment_parts(_parse(raw))
    if not 0 <= index < len(parts):
        return None
    part = parts[index]
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    return _part_bytes(part), part.get_content_type(), filename


# --------------------------------------------------------------------------------------------------
# Fault rules as SMTP outcomes


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


# --------------------------------------------------------------------------------------------------
# The handler: facts -> call records


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
    """SPEC 6: the AUTH user name, else a recipient `anything+ns-{namespace}@...`, else default."""
    if auth_user:
        return auth_user
    for rcpt in recipients:
        m = _NS_RECIPIENT.search(rcpt)
        if m is not None:
            return m.group(1)
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

    def __init__(self, journal: Journal, rules: RuleBook) -> None:
        self.journal = journal
        self.rules = rules

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

    def fault_at(self, conn: Conn, attempt: Attempt) -> FaultRule | None:
        """The fault rule for this command at its stage (counted as fired), or None."""
        return self.rules.fault_for(self.stage_call(conn, attempt), stage=attempt.stage)

    def record_stage(self, conn: Conn, attempt: Attempt, reply: str | None) -> Call:
        """Record a rejected (or fault-hit) command with the reply it got (None: hung up)."""
        attempt.recorded = True
        return self.record(self.stage_call(conn, attempt), reply, attempt.rule, attempt.stage, attempt.started)

    def record(self, call: Call, reply: str | None, rule: FaultRule | None, stage: Stage, started: float) -> Call:
        if reply is not None:
            try:
                status = int(reply[:3])
            except ValueError:
                status = 0
            call.response = ResponseRecord(status, {}, reply.encode("utf-8", "replace"))
        if rule is not None:
            call.fault = {**rule.summary(), "stage": stage}
        call.duration_ms = (time.perf_counter() - started) * 1000
        return self.journal.append(call)

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

    def fault_for_message(self, call: Call) -> FaultRule | None:
        return self.rules.fault_for(call, stage="data")

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception while handling a command: log it, answer 451, go on."""
        if isinstance(error, TLSSetupException):
            # The client's TLS handshake failed (aiosmtpd then closes the connection): its problem.
            log.info("STARTTLS handshake failed: %r", error.__cause__)
        else:
            log.error("SMTP command failed: %r", error, exc_info=error)
        return f"451 4.3.0 Internal error in mockhub ({type(error).__name__}), try again later"


# --------------------------------------------------------------------------------------------------
# The protocol: aiosmtpd's SMTP with stage hooks


# Stages whose rejections (4xx/5xx replies, from policy or from a fault) are recorded as calls.
_RECORDED_REJECTIONS = frozenset({"auth", "mail", "rcpt", "data"})
# Replies that continue a command rather than end it.
_INTERMEDIATE = ("334", "354")


# `<local@domain>` made only of dot-atom characters: what nearly every client sends.
_PLAIN_ANGLE_ADDR = re.compile(r"\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+)>")


class MockSMTP(SMTP):
    """aiosmtpd's SMTP session with fault hooks at each stage, PIPELINING and a recipient limit."""

    def __init__(
        self,
        handler: SmtpHandler,
        config: SmtpConfig,
        tls_context: ssl.SSLContext | None,
        implicit_tls: bool,
        connections: set[MockSMTP],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(
            handler,
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=config.hostname,
            ident="mockhub ESMTP",
            # Implicit TLS needs no STARTTLS; STARTTLS on top of it would not work anyway.
            tls_context=None if implicit_tls else tls_context,
            auth_require_tls=config.auth_require_tls and not implicit_tls,
            authenticator=self._authenticator,
            timeout=config.timeout,
            loop=loop,
        )
        # aiosmtpd keeps command size limits in a dict shared by every session and grows it on each
        # EHLO; a per-session dict sized for SIZE= and SMTPUTF8 parameters avoids that.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["MAIL"] = SMTP.command_size_limit + 26 + 10
        self.handler = handler
        self.config = config
        self.conn = Conn(tls=implicit_tls)
        self._connections = connections
        self._attempt: Attempt | None = None
        self._close_after_reply = False
        self._gone = False
        # >0 while mockhub itself keeps the client waiting (a fault's delay): not the client idling.
        self._busy = 0
        # Delivery is the protocol's own business (faults at `data`, then the handler), hooked in
        # where aiosmtpd calls a handler's handle_DATA.
        self._handle_hooks["DATA"] = self._data_hook

    # -- connection ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            peer = self.sess().peer
            self.conn.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
            self._connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.discard(self)
        super().connection_lost(error)

    def _timeout_cb(self) -> None:
        """The idle timeout: say so (RFC 5321 4.2: 421 before closing), then close.

        aiosmtpd closes silently; a client then only sees a dropped connection. Time mockhub spends
        on a fault's delay is not the client's idling, so the timer starts over instead.
        """
        if self._busy:
            self._reset_timeout()
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._gone = True
        log.info("%s idle for %s s: closing", self.conn.peer, self.config.timeout)
        with contextlib.suppress(Exception):
            cast(asyncio.Transport, transport).write(
                f"421 4.4.2 {self.hostname} Error: timeout exceeded ({self.config.timeout:g} s)\r\n".encode()
            )
        transport.close()

    async def _pause(self, seconds: float) -> None:
        """A delay of mockhub's making (a fault's), during which the idle timeout does not run out."""
        self._busy += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            self._busy -= 1
            # The client's idle clock starts when mockhub is done keeping it waiting; a timer left
            # to run out on its own could fire between our reply and the client's next command.
            if not self._busy and self.transport is not None and not self.transport.is_closing():
                self._reset_timeout()

    async def _handle_client(self) -> None:
        try:
            if len(self._connections) > self.config.max_connections:
                # Over the limit: refused before the greeting, like a busy MTA (not a call: no fake reached).
                await self.push(
                    f"421 4.7.0 {self.hostname} Error: too many connections "
                    f"({self.config.max_connections}), try again later"
                )
                self._hang_up(abort=False)
                return
            if not await self._connect_stage():
                await super()._handle_client()
        except ConnectionError:
            # The client went away mid-command; nothing to answer, and nothing worth a traceback.
            pass

    async def _connect_stage(self) -> bool:
        """Fault rules at `connect`: True when one answered (and closed) instead of the greeting."""
        attempt = self._attempt = Attempt("connect", {})
        try:
            outcome = await self._fault(attempt)
            if outcome is None:
                return False
            if outcome.proceed:
                self.handler.record_stage(self.conn, attempt, f"220 {self.hostname} {self.__ident__}")
                return False
            await self._carry_out(attempt, outcome)
            return True
        finally:
            self._attempt = None

    # Methods, not properties: aiosmtpd's constructor inspects every attribute of the instance.
    def sess(self) -> Session:
        assert self.session is not None
        return self.session

    def env(self) -> Envelope:
        assert self.envelope is not None
        return self.envelope

    # -- replies ---------------------------------------------------------------------------------
    async def push(self, status: str | bytes) -> None:
        if self._gone:
            return
        line = status if isinstance(status, str) else status.decode("utf-8", "replace")
        attempt = self._attempt
        if attempt is not None and not attempt.recorded:
            code = line[:3]
            if code not in _INTERMEDIATE and (
                attempt.rule is not None or (line[:1] in ("4", "5") and attempt.stage in _RECORDED_REJECTIONS)
            ):
                # Recorded before the reply goes out: a client that saw the reply finds the call.
                self.handler.record_stage(self.conn, attempt, line)
        await super().push(line)
        if self._close_after_reply:
            self._hang_up(abort=False)

    def _hang_up(self, abort: bool) -> None:
        self._gone = True
        if self.transport is not None:
            if abort:
                cast(asyncio.Transport, self.transport).abort()
            else:
                self.transport.close()

    async def _fault(self, attempt: Attempt) -> Outcome | None:
        """The fault rule for this command at its stage, if any, after its delay has passed."""
        rule = self.handler.fault_at(self.conn, attempt)
        if rule is None:
            return None
        attempt.rule = rule
        outcome = fault_outcome(rule.spec, rule.id, attempt.stage)
        if outcome.delay:
            await self._pause(outcome.delay)
        return outcome

    async def _carry_out(self, attempt: Attempt, outcome: Outcome) -> None:
        """Answer a fault's reply (recorded on the way out), or hang up without one."""
        if outcome.reply is None:
            self.handler.record_stage(self.conn, attempt, None)
            self._hang_up(abort=True)
            return
        self._close_after_reply = outcome.hangup
        await self.push(outcome.reply)

    # -- stage plumbing --------------------------------------------------------------------------
    async def _staged(
        self, stage: Stage, known: dict[str, Any], run: Callable[[], Awaitable[None]], check_first: bool = True
    ) -> None:
        """Run one command as a stage: fault rules first (when `check_first`), and its rejection
        or fault recorded as a call by `push`."""
        attempt = self._attempt = Attempt(stage, known)
        try:
            if check_first:
                outcome = await self._fault(attempt)
                if outcome is not None and not outcome.proceed:
                    await self._carry_out(attempt, outcome)
                    return
            await run()
            if attempt.rule is not None and not attempt.recorded:
                self.handler.record_stage(self.conn, attempt, None)
        finally:
            self._attempt = None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser, minus its cost for the common case.

        aiosmtpd's own version defines a `typing.Protocol` class on every call and runs the email
        package's full RFC 5322 parser: together most of the server's time per MAIL and RCPT. A
        plain `<local@domain>` is taken apart directly; anything else (quoted local parts, comments,
        source routes, the null sender) goes through the standard parser as before.
        """
        m = _PLAIN_ANGLE_ADDR.match(arg)
        if m is None:
            return super()._getaddr(arg)
        address = m.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, arg[m.end() :].lstrip()

    def _peek_address(self, arg: str | None, keyword: str) -> str | None:
        """The address of a MAIL/RCPT argument, for matching rules before aiosmtpd validates it."""
        if not arg:
            return None
        try:
            rest = self._strip_command_keyword(keyword, arg)
            if rest is None:
                return None
            address, _ = self._getaddr(rest)
        except Exception:
            return None
        return _clean(address) if isinstance(address, str) and address else None

    # -- commands --------------------------------------------------------------------------------
    async def smtp_EHLO(self, hostname: str) -> None:
        if not hostname:
            await self.push("501 Syntax: EHLO hostname")
            return

        async def run() -> None:
            self._set_rset_state()  # type: ignore[no-untyped-call]
            self.sess().extended_smtp = True
            self.sess().host_name = hostname
            self.conn.helo = _clean(hostname)
            lines = [self.hostname, "PIPELINING", f"SIZE {self.data_size_limit}", "8BITMIME", "SMTPUTF8"]
            if self.tls_context and not self._tls_protocol:
                lines.append("STARTTLS")
            if not self._auth_require_tls or self._tls_protocol:
                lines.append("AUTH " + " ".join(sorted(self._auth_methods)))
            lines.append("HELP")
            await self.push("\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}" for i, x in enumerate(lines)))

        await self._staged("ehlo", {"helo": _clean(hostname)}, run)

    async def smtp_HELO(self, hostname: str) -> None:
        async def run() -> None:
            await super(MockSMTP, self).smtp_HELO(hostname)
            helo = self.sess().host_name
            if helo:
                self.conn.helo = _clean(helo)

        await self._staged("ehlo", {"helo": _clean(hostname or "")}, run)

    async def smtp_STARTTLS(self, arg: str) -> None:
        await super().smtp_STARTTLS(arg)
        if self._tls_protocol is not None:
            # RFC 3207 4.2: the session starts over; aiosmtpd made a fresh Session.
            self.conn.tls = True
            self.conn.helo = None
            self.conn.auth_user = None

    async def smtp_AUTH(self, arg: str) -> None:
        mechanism = arg.split()[0].upper() if arg and arg.split() else None
        # Faults at `auth` are decided once the user name is known (in `_credentials`), so that
        # rules scoped to that user's namespace can act.
        await self._staged("auth", {"mechanism": mechanism}, lambda: super(MockSMTP, self).smtp_AUTH(arg), False)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> Any:
        return await self._credentials(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> Any:
        return await self._credentials(await super().auth_LOGIN(_, args))

    def _authenticator(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        login = password = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
        if self.config.accepts(login, password):
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Authentication credentials invalid", auth_data=auth_data
        )

    async def _credentials(self, result: Any) -> Any:
        """After the credentials were read: fault rules at `auth`, then remember the user."""
        auth_data = getattr(result, "auth_data", None)
        if not isinstance(auth_data, LoginPassword):
            return result  # a malformed exchange, already answered by aiosmtpd
        user = auth_data.login.decode("utf-8", "replace")
        attempt = self._attempt
        if attempt is not None:
            attempt.known["auth_user"] = user
            outcome = await self._fault(attempt)
            if outcome is not None and not outcome.proceed:
                if outcome.reply is None:
                    await self._carry_out(attempt, outcome)
                    return AuthResult(success=False, handled=True)
                # aiosmtpd sends the reply (and `push` records it).
                self._close_after_reply = outcome.hangup
                return AuthResult(success=False, handled=False, message=outcome.reply)
        if result.success:
            self.conn.auth_user = user
        return result

    async def check_auth_needed(self, caller_method: str) -> bool:
        # aiosmtpd's auth_required warns on every session when TLS is not required too; this is
        # a test server, so AUTH over plain text is fine and the check is done here instead.
        if self.config.require_auth and not self.sess().authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    async def smtp_MAIL(self, arg: str | None) -> None:
        known = {"mail_from": self._peek_address(arg, "FROM:")}
        await self._staged("mail", known, lambda: super(MockSMTP, self).smtp_MAIL(arg))

    async def smtp_RCPT(self, arg: str | None) -> None:
        address = self._peek_address(arg, "TO:")
        known = {"mail_from": _clean(self.env().mail_from or "") or None, "rcpt_to": [address] if address else []}

        async def run() -> None:
            if self.env().mail_from and len(self.env().rcpt_tos) >= self.config.max_recipients:
                await self.push("452 4.5.3 Error: too many recipients")
                return
            await super(MockSMTP, self).smtp_RCPT(arg)

        await self._staged("rcpt", known, run)

    async def smtp_DATA(self, arg: str) -> None:
        envelope = self.env()
        known = {
            "mail_from": _clean(envelope.mail_from) if envelope.mail_from else None,
            "rcpt_to": [_clean(r) for r in envelope.rcpt_tos],
        }
        # Faults at `data` act once the message is in (`_deliver`), so they can match its content.
        await self._staged("data", known, lambda: super(MockSMTP, self).smtp_DATA(arg), check_first=False)

    async def _data_hook(self, server: Any, session: Any, envelope: Any) -> str:
        return await self._deliver()

    async def _deliver(self) -> str:
        """A whole message arrived: fault rules at `data`, record it, and give the reply to send."""
        attempt = self._attempt
        started = attempt.started if attempt is not None else time.perf_counter()
        envelope = self.env()
        call = await self.handler.message_call(
            self.conn, envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""
        )
        if attempt is not None:
            attempt.recorded = True
        accepted = f"250 2.0.0 Ok: queued as {call.id}"
        rule = self.handler.fault_for_message(call)
        if rule is None:
            self.handler.record(call, accepted, None, "data", started)
            return accepted
        outcome = fault_outcome(rule.spec, rule.id, "data")
        if outcome.delay:
            await self._pause(outcome.delay)
        reply = accepted if outcome.proceed else outcome.reply
        self.handler.record(call, reply, rule, "data", started)
        if reply is None:
            self._hang_up(abort=True)  # `push` is a no-op from here on: the client gets no reply
            return ""
        self._close_after_reply = outcome.hangup
        return reply


# --------------------------------------------------------------------------------------------------
# The service


class NotFound(HTTPException):
    """A 404 the inspection API renders as {"error": {"code", "message"}}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(404, message)
        self.code = code


def _download_name(filename: str | None) -> str | None:
    """The last path component of a sender-chosen file name: a download never names a folder."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return None if name in ("", ".", "..") else name


def _drop_login_data_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Session.login_data is deprecated")


def _quiet_aiosmtpd(log_level: str) -> None:
    """aiosmtpd warns on every successful AUTH about an attribute its own code sets, and on every
    unknown command (echoing the client's bytes); a test server sees plenty of both."""
    logger = logging.getLogger("mail.log")
    if _drop_login_data_warning not in logger.filters:
        logger.addFilter(_drop_login_data_warning)
    if log_level.lower() not in ("debug", "info", "trace"):
        logger.setLevel(logging.ERROR)


class SmtpService(Service):
    """The SMTP (and optional SMTPS) listeners, and the email-specific inspection routes."""

    name = "smtp"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.config = SmtpConfig.from_settings(ctx.settings)
        self.handler = SmtpHandler(ctx.journal, ctx.rules)
        self.tls: TlsMaterial | None = None
        self._servers: dict[str, asyncio.Server] = {}
        self._connections: set[MockSMTP] = set()

    async def start(self) -> None:
        settings = self.ctx.settings
        _quiet_aiosmtpd(settings.log_level)
        if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
            self.tls = TlsMaterial.load(settings.smtp_tls_cert, settings.smtp_tls_key)
        else:
            extra = (settings.host,) if settings.host not in ("0.0.0.0", "::", "") else ()
            self.tls = TlsMaterial.generate(self.config.hostname, extra)
        loop = asyncio.get_running_loop()
        context = self.tls.context

        def factory(implicit_tls: bool) -> Callable[[], MockSMTP]:
            return lambda: MockSMTP(self.handler, self.config, context, implicit_tls, self._connections, loop)

        self._servers["smtp_port"] = await loop.create_server(
            factory(False), host=settings.host, port=settings.smtp_port
        )
        if settings.smtps_port is not None:
            self._servers["smtps_port"] = await loop.create_server(
                factory(True), host=settings.host, port=settings.smtps_port, ssl=context
            )

    async def stop(self) -> None:
        for server in self._servers.values():
            server.close()
        # Open sessions would keep wait_closed() waiting (Python 3.12+) until their idle timeout.
        for session in list(self._connections):
            if session.transport is not None:
                session.transport.close()
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()

    def listeners(self) -> dict[str, int]:
        return {name: int(s.sockets[0].getsockname()[1]) for name, s in self._servers.items() if s.sockets}

    def api_router(self) -> APIRouter:
        # FastAPI is imported with the inspection API, after the listeners are up (start-up time).
        from fastapi import APIRouter
        from fastapi import Path as PathParam

        router = APIRouter(tags=["smtp"])
        journal = self.ctx.journal

        @router.get("/calls/{call_id}/attachments/{index}", response_class=Response)
        async def attachment(call_id: str, index: int = PathParam(ge=0)) -> Response:
            """An email attachment (the `index`-th of `data.attachments`), byte-exact."""
            call = journal.get(call_id)
            if call is None or call.service != "smtp" or call.method != "DATA":
                raise NotFound("call_not_found", f"no recorded email {call_id}")
            found = attachment_content(call.body, index)
            if found is None:
                raise NotFound("attachment_not_found", f"email {call_id} has no attachment {index}")
            content, content_type, filename = found
            # The sender chose the bytes and their type: an HTML attachment opened from the UI must
            # never run on mockhub's origin (the same policy as /calls/{id}/raw).
            headers = {"content-security-policy": "sandbox; default-src 'none'", "x-content-type-options": "nosniff"}
            name = _download_name(filename)
            if name:
                headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
            return Response(content, media_type=content_type, headers=headers)

        @router.get("/tls/ca.pem", response_class=Response)
        async def ca_pem() -> Response:
            """The certificate an SMTP client should trust for STARTTLS / SMTPS (PEM)."""
            if self.tls is None:
                raise NotFound("tls_not_ready", "the SMTP listener has not started")
            return Response(self.tls.ca_pem, media_type="application/x-pem-file")

        return router
