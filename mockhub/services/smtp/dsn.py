"""Bounces of the SMTP fake: a stub's outcome for a message, and the RFC 3464 DSN a bounce sends back.

A stub for `smtp` whose reply names an `outcome` (docs/delivery.md) decides how a message received
by DATA ends: `rejected` answers DATA with the 5xx (nothing queued); `bounced` and `deferred` accept
it (250) and then send the envelope sender a delivery status notification, a `multipart/report;
report-type=delivery-status` built with stdlib `email` (a human-readable part, a
`message/delivery-status` part with per-recipient `Action` / `Status` / `Diagnostic-Code`, and the
original headers as `text/rfc822-headers`). The DSN goes to the sender's `bounce_to`: a webhook
config for service `smtp` (POSTed there as `message/rfc822`), else it is recorded as an outbound
message from `MAILER-DAEMON` to the sender.
"""

from __future__ import annotations

import email.utils
import time
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import TYPE_CHECKING, Any

from mockhub.journal import Call
from mockhub.outbound import outbound_call
from mockhub.rules import StubSpec
from mockhub.services.outcomes import Result, outcomes_for
from mockhub.services.smtp.mime import parse_message

if TYPE_CHECKING:
    from mockhub.services.base import ServiceContext

__all__ = ["Bounces", "build_dsn", "names_an_outcome"]


def names_an_outcome(spec: StubSpec) -> bool:
    """Whether a stub's reply (or one of its sequence) names an outcome: the only stubs SMTP takes."""
    replies = [spec.reply] if spec.reply is not None else list(spec.sequence or [])
    return any(r is not None and (r.model_extra or {}).get("outcome") for r in replies)


def build_dsn(hostname: str, original: Call, results: dict[str, Result]) -> bytes:
    """The delivery status notification (RFC 3464) for `original`, whose recipients ended as `results`."""
    data = original.data
    delayed = all(r.transient for r in results.values())
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{hostname}>"
    report["To"] = str(data.get("mail_from") or "")
    report["Subject"] = "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    report["Date"] = email.utils.formatdate(time.time())
    report["Message-ID"] = email.utils.make_msgid(domain=hostname)
    report["Auto-Submitted"] = "auto-replied"
    if data.get("message_id"):
        report["In-Reply-To"] = str(data["message_id"])
        report["References"] = str(data["message_id"])

    lines = [f"This is the mail system at host {hostname}.", ""]
    if delayed:
        lines.append("Your message could not be delivered yet to the recipients below; delivery will be retried.")
    else:
        lines.append(
            "I'm sorry to have to inform you that your message could not be delivered to one or more recipients."
        )
    lines.append("")
    lines += [f"<{rcpt}>: {r.diagnostic_code}" for rcpt, r in results.items()]
    report.attach(MIMEText("\n".join(lines) + "\n", "plain", "utf-8"))

    status = Message()
    status["Content-Type"] = "message/delivery-status"
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["Arrival-Date"] = email.utils.formatdate(original.time)
    status.attach(per_message)
    for rcpt, result in results.items():
        block = Message()
        block["Final-Recipient"] = f"rfc822; {rcpt}"
        block["Original-Recipient"] = f"rfc822; {rcpt}"
        block["Action"] = "delayed" if result.transient else "failed"
        block["Status"] = result.status
        block["Remote-MTA"] = f"dns; {rcpt.rpartition('@')[2] or hostname}"
        block["Diagnostic-Code"] = f"smtp; {result.diagnostic_code}"
        status.attach(block)
    report.attach(status)

    head = original.body.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in original.body else original.body.split(b"\n\n")[0]
    headers = MIMEText(head.decode("utf-8", "replace").replace("\r\n", "\n") + "\n", "rfc822-headers", "utf-8")
    report.attach(headers)
    return report.as_bytes()


class Bounces:
    """Asks the rule book for a message's outcome and sends the DSN a bounce causes."""

    def __init__(self, ctx: ServiceContext, hostname: str) -> None:
        self.ctx = ctx
        self.hostname = hostname

    def outcomes(self, call: Call) -> dict[str, Result] | None:
        """Each recipient's outcome from a stub that names one (counted as its hit), or None."""
        hit = self.ctx.rules.stub_for(call, wanted=names_an_outcome)
        if hit is None:
            return None
        call.stub = hit.summary()
        return outcomes_for(call.data.get("rcpt_to") or [], hit)

    def rejection(self, results: dict[str, Result]) -> str | None:
        """The DATA reply of a rejected message (`550 5.7.1 ...`), or None when it is accepted."""
        rejected = next((r for r in results.values() if r.outcome == "rejected"), None)
        if rejected is None:
            return None
        text = rejected.diagnostic_code
        return text if text[:3].isdigit() else f"550 5.7.1 {text}"

    def send(self, call: Call, results: dict[str, Result]) -> None:
        """Send the DSN of the recipients that bounced or were deferred (never for a null sender)."""
        failed = {
            rcpt: r for rcpt, r in results.items() if r.outcome in ("bounced", "deferred", "undelivered", "failed")
        }
        sender = str(call.data.get("mail_from") or "")
        if not failed or not sender:
            return  # RFC 5321 §4.5.5: a message with a null reverse-path is never bounced
        dsn = build_dsn(self.hostname, call, failed)
        parsed = parse_message(dsn)
        action = "delayed" if all(r.transient for r in failed.values()) else "failed"
        data: dict[str, Any] = {
            "mail_from": "",
            "rcpt_to": [sender],
            **parsed,
            "dsn_for": call.id,
            "action": action,
            "failed_recipients": list(failed),
        }
        delay = self.ctx.settings.webhook_delay_ms / 1000
        targets = self.ctx.webhooks.targets("smtp", call.namespace, action)
        if not targets:
            # No bounce_to: the DSN is an outbound message of its own, from MAILER-DAEMON to the sender.
            self.ctx.spawn(self._record(call.namespace, dsn, data, delay))
            return
        for target in targets:
            headers = {"content-type": "message/rfc822", "user-agent": "mockhub-smtp"}
            out = outbound_call("smtp", call.namespace, target.url, dsn, headers, {**data, "webhook": target.id})
            self.ctx.outbound.send(out, (), delay)

    async def _record(self, namespace: str, dsn: bytes, data: dict[str, Any], delay: float) -> None:
        import asyncio

        if delay > 0:
            await asyncio.sleep(delay)
        headers = {k: ", ".join(v) if isinstance(v, list) else v for k, v in data["headers"].items()}
        self.ctx.journal.append(
            Call(
                service="smtp",
                method="DSN",
                path="/",
                namespace=namespace,
                direction="outbound",
                headers=headers,
                body=dsn,
                data=data,
            )
        )
