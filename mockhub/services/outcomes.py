"""Delivery outcomes: the one vocabulary a stub's `reply` uses to say how a message's delivery ends.

`outcome`: `delivered` (the default), `bounced` (`bounce_type` permanent or transient, a
`diagnostic_code`), `complained`, `deferred`, `rejected`, and for SMS `undelivered` / `failed` with
an `error_code`. Every delivery fake records it as `data.outcome` and reports it the way its
provider does: event webhooks (SendGrid, Mailgun, Postmark, Resend, SES), Twilio's status and
callbacks, a DSN for SMTP. Providers' own test addresses (`bounce@simulator.amazonses.com`,
`bounced@resend.dev`, ...) give their outcome without a stub.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mockhub.rules import StubHit

__all__ = ["OUTCOMES", "Outcome", "OutcomeReply", "Result", "outcomes_for", "record"]

Outcome = Literal["delivered", "bounced", "complained", "deferred", "rejected", "undelivered", "failed"]
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]


class OutcomeReply(BaseModel):
    """The delivery fields of a stub's `reply`: how matching messages' delivery ends."""

    model_config = ConfigDict(extra="ignore")

    outcome: Outcome | None = Field(
        None, description="delivered, bounced, complained, deferred, rejected (email); undelivered, failed (SMS)"
    )
    bounce_type: Literal["permanent", "transient"] | None = Field(
        None, description="of a bounce: permanent (hard, the default) or transient (soft)"
    )
    diagnostic_code: str | None = Field(
        None, description="the remote server's answer, e.g. '550 5.1.1 user unknown' (a default per outcome)"
    )
    error_code: int | None = Field(None, description="SMS: ErrorCode of an undelivered/failed message, e.g. 30003")


# The remote server's answer each outcome is given unless the stub names one.
_DIAGNOSTICS = {
    ("bounced", "permanent"): "550 5.1.1 The email account that you tried to reach does not exist",
    ("bounced", "transient"): "452 4.2.2 The email account that you tried to reach is over quota",
    ("deferred", None): "421 4.7.0 Try again later, closing connection",
    ("rejected", None): "550 5.7.1 Message rejected: the sending address is suppressed",
    ("delivered", None): "250 2.0.0 OK",
}


@dataclass(frozen=True, slots=True)
class Result:
    """One recipient's outcome, with what a provider's report says of it."""

    outcome: str = "delivered"
    bounce_type: str | None = None
    diagnostic_code: str = "250 2.0.0 OK"
    error_code: int | None = None
    # Which provider test address gave it (None: a stub or the default).
    simulated: str | None = None

    @property
    def smtp_code(self) -> int:
        """The SMTP reply code of the diagnostic (`550`), or a default for the outcome."""
        head = self.diagnostic_code[:3]
        if head.isdigit():
            return int(head)
        return 250 if self.outcome == "delivered" else 421 if self.transient else 550

    @property
    def status(self) -> str:
        """The enhanced status code (RFC 3463, `5.1.1`), from the diagnostic or a default."""
        for word in self.diagnostic_code.split()[:2]:
            parts = word.split(".")
            if len(parts) == 3 and all(p.isdigit() for p in parts):
                return word
        return "2.0.0" if self.outcome == "delivered" else "4.0.0" if self.transient else "5.0.0"

    @property
    def transient(self) -> bool:
        return self.outcome == "deferred" or (self.outcome == "bounced" and self.bounce_type == "transient")

    def as_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome}
        if self.outcome != "delivered":
            out["diagnostic_code"] = self.diagnostic_code
        if self.bounce_type is not None:
            out["bounce_type"] = self.bounce_type
        if self.error_code is not None:
            out["error_code"] = self.error_code
        return out


def result(reply: OutcomeReply, simulated: str | None = None) -> Result:
    """A reply's fields as a `Result`, with the provider-neutral defaults filled in."""
    outcome = reply.outcome or "delivered"
    bounce_type = (reply.bounce_type or "permanent") if outcome == "bounced" else None
    diagnostic = (
        reply.diagnostic_code
        or _DIAGNOSTICS.get((outcome, bounce_type))
        or _DIAGNOSTICS.get((outcome, None), "550 5.0.0 Message not delivered")
    )
    return Result(outcome, bounce_type, diagnostic, reply.error_code, simulated)


def stub_outcome(stub: StubHit | None) -> OutcomeReply | None:
    """The outcome fields of the stub that matched a call, when it names an outcome."""
    reply = stub.reply if stub is not None else None
    if reply is None or not reply.model_extra:
        return None
    fields = OutcomeReply.model_validate(reply.model_extra)
    return fields if fields.outcome is not None else None


def outcomes_for(
    recipients: Iterable[str], stub: StubHit | None, simulator: dict[str, OutcomeReply] | None = None
) -> dict[str, Result]:
    """Each recipient's outcome: a stub's for every recipient, else a provider test address's, else delivered."""
    stubbed = stub_outcome(stub)
    if stubbed is not None:
        shared = result(stubbed)
        return {r: shared for r in recipients}
    out: dict[str, Result] = {}
    for recipient in recipients:
        bare = _bare(recipient)
        local, at, domain = bare.partition("@")
        # A label (`bounced+signup@resend.dev`) keeps the test address's meaning.
        simulated = (simulator or {}).get(bare) or (simulator or {}).get(local.split("+", 1)[0] + at + domain)
        out[recipient] = result(simulated, bare) if simulated is not None else Result()
    return out


def record(data: dict[str, Any], results: dict[str, Result]) -> None:
    """`data.outcome` (the message's: the first recipient's that is not delivered, else delivered) and its details.

    With recipients of different outcomes, `data.outcomes` names each one's.
    """
    if not results:
        return
    chosen = next((r for r in results.values() if r.outcome != "delivered"), next(iter(results.values())))
    data.update(chosen.as_data())
    if len({r.outcome for r in results.values()}) > 1:
        data["outcomes"] = {recipient: r.outcome for recipient, r in results.items()}


def _bare(address: str) -> str:
    """`Name <a@b>` → `a@b`, lower-cased (test addresses are matched without their display name)."""
    address = address.strip()
    if address.endswith(">") and "<" in address:
        address = address[address.rindex("<") + 1 : -1]
    return address.lower()


# Amazon SES's mailbox simulator (https://docs.aws.amazon.com/ses/latest/dg/send-an-email-from-console.html).
SES_SIMULATOR = {
    "success@simulator.amazonses.com": OutcomeReply(outcome="delivered"),
    "bounce@simulator.amazonses.com": OutcomeReply(
        outcome="bounced", bounce_type="permanent", diagnostic_code="550 5.1.1 user unknown"
    ),
    "ooto@simulator.amazonses.com": OutcomeReply(outcome="delivered"),
    "complaint@simulator.amazonses.com": OutcomeReply(outcome="complained"),
    "suppressionlist@simulator.amazonses.com": OutcomeReply(
        outcome="bounced", bounce_type="permanent", diagnostic_code="550 5.1.1 Address on the suppression list"
    ),
}

# Resend's test addresses (https://resend.com/docs/dashboard/emails/send-test-emails).
RESEND_TEST_ADDRESSES = {
    "delivered@resend.dev": OutcomeReply(outcome="delivered"),
    "bounced@resend.dev": OutcomeReply(
        outcome="bounced", bounce_type="permanent", diagnostic_code="550 5.1.1 The recipient does not exist"
    ),
    "complained@resend.dev": OutcomeReply(outcome="complained"),
}
