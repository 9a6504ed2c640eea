"""The SMTP fake: a real mail server (aiosmtpd) on its own listeners, in the server's event loop.

Laid out as aiosmtpd is, protocol apart from handler; imports run one way, protocol -> handler:
- `protocol.MockSMTP`, an aiosmtpd `SMTP` subclass: the protocol. It adds the stage hooks (connect,
  ehlo, auth, mail, rcpt, data) where fault rules act, PIPELINING, a recipient limit, and it carries
  out fault outcomes (decided in `faults`: a reply, a hang-up, a delay). It knows nothing of the journal.
- `handler.SmtpHandler`, the handler: turns what the protocol knows into `Call` records (`mime`
  parses the message), asks the rule book for faults, and appends to the journal. It knows nothing
  of the SMTP wire protocol.
- `SmtpService` (here): settings (`config`), TLS material (`tls`) and listeners (`attachment`
  reads an email's attachments back); its certificate
  is signed by mockhub's CA (`mockhub/tls.py`, served at `/tls/ca.pem`).

Call shape: a delivered message is method `DATA`, path `/`, body the message source byte-exact.
An attempt that a fault or a policy rejected before delivery is recorded as the command that was
rejected (`CONNECT`, `EHLO`, `AUTH`, `MAIL`, `RCPT`, `DATA`), with the envelope known so far in
`data` and the SMTP reply in `response` (`status` is the reply code; no `response` when mockhub
hung up without a reply).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mockhub.journal import Call
from mockhub.services.base import Attachment, EnvVar, Service, ServiceContext, email_summary
from mockhub.services.smtp.config import SmtpConfig
from mockhub.services.smtp.faults import fault_outcome
from mockhub.services.smtp.handler import SmtpHandler
from mockhub.services.smtp.mime import attachment_content, parse_message
from mockhub.services.smtp.protocol import MockSMTP
from mockhub.services.smtp.tls import TlsMaterial

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
    message = True
    label = "SMTP"
    transport = "smtp"
    view = "email"
    color = "#1971c2"
    env = (
        EnvVar(name="ALERT_EMAIL_SMTP_SERVER", value="{host}"),
        EnvVar(name="ALERT_EMAIL_SMTP_PORT", value="{smtp_port}"),
        # The namespace travels as the AUTH user name (docs/namespaces.md).
        EnvVar(name="ALERT_EMAIL_SMTP_USER", value="{namespace}"),
        EnvVar(name="ALERT_EMAIL_SMTP_PASSWORD", value="mockhub", requires=["namespace"]),
    )
    raw_content_type = "message/rfc822"

    @classmethod
    def summarize(cls, call: Call) -> str:
        return email_summary(call)

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.config = SmtpConfig.from_settings(ctx.settings)
        self.handler = SmtpHandler(ctx.journal, ctx.rules, ctx.store)
        self.tls: TlsMaterial | None = None
        self._servers: dict[str, asyncio.Server] = {}
        self._connections: set[MockSMTP] = set()

    async def start(self) -> None:
        settings = self.ctx.settings
        _quiet_aiosmtpd(settings.log_level)
        if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
            self.tls = TlsMaterial.load(settings.smtp_tls_cert, settings.smtp_tls_key)
            # Clients fetch one PEM to trust (`/tls/ca.pem`): mockhub's CA, then this certificate.
            self.ctx.authority.extra_trust.append(self.tls.ca_pem)
        else:
            extra = (settings.host,) if settings.host not in ("0.0.0.0", "::", "") else ()
            self.tls = TlsMaterial.generate(self.ctx.authority, self.config.hostname, extra)
        loop = asyncio.get_running_loop()
        context = self.tls.context

        def factory(implicit_tls: bool) -> Callable[[], MockSMTP]:
            return lambda: MockSMTP(self.handler, self.config, context, implicit_tls, self._connections, loop)

        self._servers["smtp_port"] = await loop.create_server(
            factory(False), host=settings.host, port=settings.smtp_port, reuse_port=settings.reuse_port or None
        )
        if settings.smtps_port is not None:
            self._servers["smtps_port"] = await loop.create_server(
                factory(True),
                host=settings.host,
                port=settings.smtps_port,
                ssl=context,
                reuse_port=settings.reuse_port or None,
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

    def attachment(self, call: Call, index: int) -> Attachment | None:
        """The `index`-th attachment of a recorded email (its MIME parts), byte-exact."""
        if call.method != "DATA":
            return None
        found = attachment_content(call.body, index)
        return None if found is None else Attachment(*found)
