"""The SMTP fake: a real mail server (aiosmtpd) on its own listener, in the server's event loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mockhub.journal import Call, ResponseRecord
from mockhub.services.base import Service

__all__ = ["SmtpService", "parse_message"]


def parse_message(raw: bytes) -> dict[str, Any]:
    """The fields tests assert on, from a message's source (stdlib `email`, policy.default)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    data: dict[str, Any] = {
        "from": str(msg.get("from", "")),
        "to": [a.addr_spec for a in getattr(msg.get("to"), "addresses", ())],
        "cc": [a.addr_spec for a in getattr(msg.get("cc"), "addresses", ())],
        "subject": str(msg.get("subject", "")),
    }
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    data["text"] = text.get_content() if text is not None else None
    data["html"] = html.get_content() if html is not None else None
    return data


class _Handler:
    def __init__(self, service: SmtpService) -> None:
        self.service = service

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        started = time.perf_counter()
        raw = envelope.original_content or b""
        data = parse_message(raw)
        data["mail_from"] = envelope.mail_from
        data["rcpt_to"] = list(envelope.rcpt_tos)
        call = Call(service="smtp", method="DATA", path="/", body=raw, data=data)
        call.response = ResponseRecord(250, {}, b"250 OK")
        call.duration_ms = (time.perf_counter() - started) * 1000
        self.service.ctx.journal.append(call)
        return "250 OK"


class SmtpService(Service):
    name = "smtp"

    server: asyncio.Server | None = None

    async def start(self) -> None:
        settings = self.ctx.settings
        handler = _Handler(self)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(handler, hostname="mockhub", ident="mockhub ESMTP", decode_data=False),
            host=settings.host,
            port=settings.smtp_port,
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def listeners(self) -> dict[str, int]:
        if self.server is None or not self.server.sockets:
            return {}
        return {"smtp_port": self.server.sockets[0].getsockname()[1]}
