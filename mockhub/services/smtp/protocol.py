"""The protocol: aiosmtpd's `SMTP` with stage hooks (connect, ehlo, auth, mail, rcpt, data) where
fault rules act, PIPELINING and a recipient limit. It carries out fault outcomes (a reply, a
hang-up, a delay) and leaves call records to the handler: it knows nothing of the journal."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mockhub.services.smtp.config import SmtpConfig
from mockhub.services.smtp.faults import Outcome, Stage, fault_outcome
from mockhub.services.smtp.handler import Attempt, Conn, SmtpHandler
from mockhub.services.smtp.mime import _clean
from mockhub.store import StoreUnavailable

__all__ = ["MockSMTP"]

log = logging.getLogger("mockhub.smtp")


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
        rule = await self.handler.fault_at(self.conn, attempt)
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
        try:
            rule = await self.handler.fault_for_message(call)
            if rule is None:
                await self.handler.deliver(call, accepted, None, started)
                return accepted
            outcome = fault_outcome(rule.spec, rule.id, "data")
            if outcome.delay:
                await self._pause(outcome.delay)
            reply = accepted if outcome.proceed else outcome.reply
            await self.handler.deliver(call, reply, rule, started)
        except StoreUnavailable:
            # Not acknowledged: a transient failure, so the client keeps the message and retries.
            return "451 4.3.0 mockhub's store is unavailable: message not accepted, try again later"
        if reply is None:
            self._hang_up(abort=True)  # `push` is a no-op from here on: the client gets no reply
            return ""
        self._close_after_reply = outcome.hangup
        return reply
