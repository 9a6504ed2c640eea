"""The fault kinds: one table saying, for each `action`, where it applies, which options it takes and what it does.

`KINDS` is read by validation (`FaultSpec`), by the `/faults` docs (`GET /services` lists each
fake's transport; `GET /faults/kinds` serves this table) and by each transport's injector: the
HTTP pipeline (`mockhub.pipeline`) and a listener's own protocol (the mail fake's). Adding a kind
is one entry here plus its injector on each transport it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mockhub.filters import Match

__all__ = ["KINDS", "PRESETS", "FaultAction", "FaultKind", "FaultSpec", "Headers", "Preset", "Stage", "check_headers"]

Preset = Literal["rate_limited", "server_error", "unavailable", "overloaded", "unauthorized"]
PRESETS: tuple[Preset, ...] = get_args(Preset)
FaultAction = Literal[
    "error", "delay", "timeout", "reset", "empty", "malformed", "cut_stream", "smtp_reply", "disconnect"
]
# The stages of a session a listener speaks (the mail fake's SMTP dialogue).
Stage = Literal["connect", "ehlo", "auth", "mail", "rcpt", "data"]

HTTP = "http"
SMTP = "smtp"

# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN_VALUE = re.compile(r"[\r\n\x00]")
# Framing is mockhub's: a rule's own Content-Length or Transfer-Encoding would contradict the body sent.
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers a rule may add to an answer, as they will be sent: each name a token, each value
    latin-1 without CR, LF or NUL, surrounding blanks dropped (HTTP drops them too). Raises ValueError."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name (a token: letters, digits and !#$%&'*+-.^_`|~)")
        if name.lower() in _FRAMING:
            raise ValueError(f"{name!r}: mockhub sets content-length and transfer-encoding itself")
        if _FORBIDDEN_VALUE.search(value):
            raise ValueError(f"the value of {name!r} holds CR, LF or NUL, which cannot be sent in a header")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"the value of {name!r} is not latin-1 (ISO-8859-1), so it cannot be sent as a header; "
                "percent-encode or RFC 8187-encode it"
            ) from None
        out[name] = value.strip(" \t")
    return out


Headers = Annotated[dict[str, str], AfterValidator(check_headers)]


def _one_line(text: str) -> str:
    # A reply line with CR or LF in it would be read as more reply lines (a forged `250 OK`).
    if _FORBIDDEN_VALUE.search(text):
        raise ValueError("a reply text is one line: no CR, LF or NUL")
    return text


"""A rule's answer headers, checked (`check_headers`) when the rule is made."""


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One `action`: what it does, the transports that carry it out, the options only it takes."""

    name: str
    description: str
    transports: frozenset[str]
    takes: frozenset[str] = frozenset()
    # Options of which at least one must be given, and how an error names them:
    # ((("preset", "status"), "a 'preset' or a 'status'"),).
    needs: tuple[tuple[tuple[str, ...], str], ...] = ()


_BOTH = frozenset({HTTP, SMTP})
_DELAY = frozenset({"delay_ms"})
_CHUNKS = frozenset({"after_chunks"})
KINDS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind(
            "error",
            "answer an error: the fake's own `preset`, or a `status` (SMTP: the matching reply code)",
            _BOTH,
            frozenset({"preset", "status", "body", "headers"}),
            ((("preset", "status"), "a 'preset' or a 'status'"),),
        ),
        FaultKind(
            "delay",
            "answer normally after `delay_ms` (+ up to `jitter_ms`)",
            _BOTH,
            frozenset({"delay_ms"}),
            ((("delay_ms",), "'delay_ms'"),),
        ),
        FaultKind(
            "timeout", "hold the request without an answer (default 60 s), then close", _BOTH, frozenset({"delay_ms"})
        ),
        FaultKind("reset", "reset the TCP connection (RST)", _BOTH),
        FaultKind("empty", "close the connection without answering", _BOTH),
        FaultKind(
            "cut_stream", "send `after_chunks` chunks of the answer, then close", _BOTH, frozenset({"after_chunks"})
        ),
        FaultKind(
            "malformed",
            "answer bytes that are not the protocol; with `status`/`body`, valid HTTP carrying broken JSON; "
            "with `after_chunks`, break the answer after that many chunks",
            _BOTH,
            frozenset({"status", "body", "headers", "after_chunks"}),
        ),
        FaultKind(
            "smtp_reply",
            "answer the SMTP `stage` with `code` and `message` (421 also closes the connection)",
            frozenset({SMTP}),
            frozenset({"delay_ms"}),
            ((("code",), "a 'code' (e.g. 421, 451, 550)"),),
        ),
        FaultKind(
            "disconnect",
            "drop the SMTP connection at `stage` without a word",
            frozenset({SMTP}),
            frozenset({"delay_ms"}),
        ),
    )
}
assert set(KINDS) == set(get_args(FaultAction)), "FaultAction and KINDS must name the same kinds"

# How each restricted option is named in an error, and the kinds listed as taking it: those that
# apply on HTTP (the session-only kinds are named by their own transport's messages).
_NOUNS = {
    "preset": "a preset",
    "status": "a status",
    "body": "a body",
    "headers": "a headers",
    "delay_ms": "a delay",
    "after_chunks": "after_chunks",
}


def _quoted(names: list[str]) -> str:
    quoted = [f"'{n}'" for n in names] or ["(none)"]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def check(spec: FaultSpec, transport_of: dict[str, str]) -> None:
    """Raise ValueError (naming the field first) when `spec`'s options do not fit its kind."""
    kind = KINDS[spec.action]
    given = {name for name in _NOUNS if getattr(spec, name)} | ({"delay_ms"} if spec.delay_ms is not None else set())
    for option in sorted(given - kind.takes, key=list(_NOUNS).index):
        takers = [k.name for k in KINDS.values() if option in k.takes and HTTP in k.transports]
        verb = "action" if len(takers) == 1 else "actions"
        raise ValueError(
            f"{option}: only {verb} {_quoted(takers)} take{'s' if len(takers) == 1 else ''} "
            f"{_NOUNS[option]}, not action '{spec.action}'"
        )
    for alternatives, wanted in kind.needs:
        if not any(getattr(spec, name) is not None for name in alternatives):
            raise ValueError(f"{alternatives[0]}: action '{spec.action}' needs {wanted}")
    service = spec.service
    if spec.stage is not None and service is not None and transport_of.get(service, HTTP) == HTTP:
        # An HTTP fake has no session stages: a stage there would silently never apply.
        listeners = sorted(name for name, t in transport_of.items() if t != HTTP)
        raise ValueError(f"stage: service '{service}' speaks HTTP, which has no stages; only {_quoted(listeners)} do")
    if kind.transports != _BOTH and service is not None and transport_of.get(service, HTTP) not in kind.transports:
        owners = sorted(name for name, t in transport_of.items() if t in kind.transports)
        raise ValueError(f"service: action '{spec.action}' only applies to service {_quoted(owners)}")


class FaultSpec(BaseModel):
    """A fault rule as posted to `POST /faults` (docs/faults.md)."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(None, description="journal name of the fake; none = every service")
    match: Match = Field(default_factory=Match)
    action: FaultAction = "error"
    preset: Preset | None = None
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    body: str | dict[str, Any] | list[Any] | None = None
    headers: Headers = Field(default_factory=dict)
    delay_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None = None
    jitter_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 0
    times: Annotated[int, Field(ge=1)] | None = 1
    after: Annotated[int, Field(ge=0)] = 0
    probability: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    after_chunks: Annotated[int, Field(ge=0)] = 0
    stage: Stage | None = Field(
        None, description="a listener's session stage (smtp): connect, ehlo, auth, mail, rcpt, data"
    )
    code: Annotated[int, Field(ge=200, le=599)] | None = Field(
        None, description="smtp_reply / error on a session: the reply code"
    )
    message: Annotated[str, AfterValidator(_one_line)] | None = Field(
        None, description="the reply text of a session's error or smtp_reply (one line)"
    )
    seed: int | None = Field(
        None, description="seed of this rule's `probability` draws; default: the server's MOCKHUB_SEED"
    )

    # The messages name the field first: the API reports model-level errors without a location.
    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.action == "malformed" and self.body is not None and not isinstance(self.body, str):
            raise ValueError("body: action 'malformed' sends the body verbatim; give the broken text as a string")
        check(self, TRANSPORTS)
        return self


TRANSPORTS: dict[str, str] = {}
"""service name -> the transport its calls arrive on; filled by each fake's class, read by `check`."""
