"""Property tests of the SMTP fake: generated MIME messages and SMTP command sequences.

- Messages (well-formed ones built with `EmailMessage`, and broken ones as raw bytes: 8-bit
  headers, wrong or missing boundaries, random bytes) sent with smtplib: every message that got 250
  is recorded exactly once, byte-exact, under the id the 250 named, and found by its unique
  recipient; a refused one is recorded once with the code the client saw.
- Command sequences over a raw socket (valid and invalid verbs, out-of-order MAIL/RCPT/DATA,
  garbage bytes, long lines): every command gets a well-formed reply, and the server keeps serving.
"""

from __future__ import annotations

import itertools
import re
import smtplib
import socket
import uuid
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, assume, given, settings

from mockhub.server import ThreadedHub

TIMEOUT = 10
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
_counter = itertools.count()


@pytest.fixture(scope="module")
def http(server: ThreadedHub) -> Iterator[httpx.Client]:
    """One keep-alive client for the checks (a fresh `httpx.get` builds an SSL context every time)."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def marker() -> str:
    """A recipient address no other example uses: how each message is found again."""
    return f"fuzz{next(_counter)}-{uuid.uuid4().hex[:12]}@fuzz.example"


# -- strategies: well-formed messages -----------------------------------------------------------------

# Any text except surrogates, and except CR/LF/NUL and other controls, which headers cannot carry.
header_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=60)
body_text = st.text(st.characters(exclude_categories=["Cs", "Cc"], include_characters="\n\t"), max_size=400)
filenames = st.one_of(
    st.none(),
    st.text(st.characters(exclude_categories=["Cs", "Cc"], exclude_characters='"\\'), min_size=1, max_size=30),
)
mime_types = st.sampled_from(
    [
        ("application", "octet-stream"),
        ("application", "pdf"),
        ("image", "png"),
        ("text", "plain"),
        ("text", "csv"),
        ("application", "json"),
    ]
)
attachments = st.lists(st.tuples(st.binary(max_size=3000), mime_types, filenames), max_size=3)
extra_headers = st.lists(
    st.tuples(st.from_regex(r"X-[A-Za-z0-9-]{1,12}", fullmatch=True), header_text), max_size=4, unique_by=lambda h: h[0]
)


@st.composite
def email_messages(draw: st.DrawFn, depth: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = draw(st.sampled_from(["a@example.com", "Zoë Ops <zoe@example.com>", '"Ops, Team" <ops@x.org>']))
    msg["Subject"] = draw(header_text)
    for name, value in draw(extra_headers):
        msg[name] = value
    msg.set_content(draw(body_text))
    if draw(st.booleans()):
        msg.add_alternative(f"<p>{draw(body_text)}</p>", subtype="html")
    for content, (maintype, subtype), filename in draw(attachments):
        if maintype == "text":
            msg.add_attachment(content.decode("latin-1"), subtype=subtype, filename=filename)
        else:
            msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    if depth == 0 and draw(st.integers(0, 4)) == 0:
        msg.add_attachment(draw(email_messages(depth=1)))  # a forwarded message: message/rfc822
    return msg


# -- strategies: broken messages as raw bytes -----------------------------------------------------------

raw_line = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
header_name = st.from_regex(rb"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)


@st.composite
def broken_messages(draw: st.DrawFn) -> bytes:
    """Headers with 8-bit bytes and RFC 2047 junk, multiparts whose boundaries lie, random bodies."""
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(header_name) + b": " + draw(raw_line))
    lines.append(b"Subject: " + draw(st.sampled_from([b"=?utf-8?b?invalid*base64?=", b"=?x-unknown?q?=FF?=", b""])))
    kind = draw(st.sampled_from(["mixed", "alternative", "related", "none"]))
    boundary = draw(st.sampled_from([b"b1", b'"b 2"', b"", b"\xff\xfe"]))
    if kind != "none":
        lines.append(b"Content-Type: multipart/" + kind.encode() + b"; boundary=" + boundary)
    if draw(st.booleans()):
        lines.append(b"Content-Transfer-Encoding: " + draw(st.sampled_from([b"base64", b"quoted-printable", b"bogus"])))
    lines.append(b"")
    used = draw(st.sampled_from([b"b1", b"b 2", b"other", b""]))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(b"--" + used)
        if draw(st.booleans()):
            lines.append(b"Content-Type: " + draw(st.sampled_from([b"text/plain; charset=bogus", b"image/png", b"x"])))
            lines.append(b"Content-Disposition: attachment; filename=" + draw(raw_line)[:40])
        lines.append(b"")
        lines.extend(draw(st.lists(raw_line, max_size=5)))
    if draw(st.booleans()):
        lines.append(b"--" + used + b"--")
    lines.extend(draw(st.lists(raw_line, max_size=5)))
    return b"\r\n".join(lines) + b"\r\n"


# -- sending and checking -----------------------------------------------------------------------------

_QUEUED = re.compile(rb"queued as (\S+)")


def send(server: ThreadedHub, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    """MAIL, RCPT, DATA with `raw` as the message: the DATA reply (code, text)."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
        smtp.ehlo("fuzz.example")
        code, reply = smtp.mail("sender@fuzz.example")
        assert code == 250, reply
        code, reply = smtp.rcpt(rcpt)
        assert code == 250, reply
        return smtp.data(raw)


def recorded(http: httpx.Client, rcpt: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = http.get("/calls", params={"to": rcpt}).json()["calls"]
    return calls


def check_delivery(http: httpx.Client, rcpt: str, raw: bytes, code: int, reply: bytes) -> dict[str, Any]:
    """The message was answered; whatever the answer, exactly one record says the same."""
    (call,) = recorded(http, rcpt)
    assert call["response"]["status"] == code
    if code != 250:
        return call
    queued = _QUEUED.search(reply)
    assert queued is not None, reply
    assert call["id"] == queued.group(1).decode()
    assert call["method"] == "DATA"
    assert call["data"]["rcpt_to"] == [rcpt]
    # Byte-exact: what smtplib sent (before its dot-stuffing and final CRLF) is what is served.
    expected = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
    served = http.get(f"/calls/{call['id']}/raw")
    assert served.status_code == 200
    assert served.content == expected
    # Every attachment the record lists is served; the next index is not.
    count = len(call["data"]["attachments"])
    for i in range(count):
        assert http.get(f"/calls/{call['id']}/attachments/{i}").status_code == 200
    assert http.get(f"/calls/{call['id']}/attachments/{count}").status_code == 404
    return call


def test_generated_messages_are_recorded_once_and_byte_exact(server: ThreadedHub, http: httpx.Client) -> None:
    @given(msg=email_messages(), utf8=st.booleans())
    @FUZZ
    def check(msg: EmailMessage, utf8: bool) -> None:
        rcpt = marker()
        msg["To"] = rcpt
        raw = msg.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)
        assume(max(len(line) for line in raw.split(b"\r\n")) <= 990)
        code, reply = send(server, rcpt, raw)
        assert code == 250, reply
        call = check_delivery(http, rcpt, raw, code, reply)
        data = call["data"]
        # Whitespace at the ends of a header is not the sender's to keep: the one after "Subject:"
        # is dropped by any parser (RFC 5322 unstructured field), unless an encoded word carries it.
        assert data["subject"].strip() == msg["Subject"].strip()
        assert data["to"] == [rcpt]
        expected_text = msg.get_body(("plain",))
        assert expected_text is not None
        assert data["text"] == expected_text.get_content()
        listed = [a for a in msg.iter_attachments()]
        assert len(data["attachments"]) == len(listed)
        for i, (part, seen) in enumerate(zip(listed, data["attachments"], strict=True)):
            assert seen["content_type"] == part.get_content_type()
            if part.get_content_type() != "message/rfc822":
                content = http.get(f"/calls/{call['id']}/attachments/{i}").content
                assert content == part.get_payload(decode=True)
                assert seen["size"] == len(content)
        # Found by the `subject` filter too, when there is one to search for.
        if data["subject"].strip():
            found = http.get("/calls", params={"subject": data["subject"], "to": rcpt}).json()
            assert found["count"] == 1

    check()


def test_broken_messages_are_recorded_once_and_byte_exact(server: ThreadedHub, http: httpx.Client) -> None:
    @given(raw=broken_messages())
    @FUZZ
    def check(raw: bytes) -> None:
        rcpt = marker()
        code, reply = send(server, rcpt, raw)
        assert code == 250, reply
        call = check_delivery(http, rcpt, raw, code, reply)
        # Every record serialises and reads back, junk included.
        assert http.get(f"/calls/{call['id']}").status_code == 200

    check()


def test_random_byte_bodies_and_over_long_lines(server: ThreadedHub, http: httpx.Client) -> None:
    @given(lines=st.lists(st.one_of(raw_line, raw_line.map(lambda b: b * 20)), max_size=20))
    @FUZZ
    def check(lines: list[bytes]) -> None:
        rcpt = marker()
        raw = b"\r\n".join(lines)
        code, reply = send(server, rcpt, raw)
        too_long = any(len(line) + 2 + line.startswith(b".") > 1001 for line in lines)
        # An over-long line is refused (500) after the whole message was read; all else is taken.
        assert code == (500 if too_long else 250), reply
        check_delivery(http, rcpt, raw, code, reply)

    check()


# -- command sequences --------------------------------------------------------------------------------

_REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -]")
addresses = st.sampled_from(["<a@example.com>", "<>", "a@example.com", "<bad", "<\xe9@x.org>", "<" + "x" * 600 + ">"])
commands = st.one_of(
    st.sampled_from(["EHLO fuzz", "HELO fuzz", "RSET", "NOOP", "QUIT", "HELP", "VRFY x", "EXPN x", "DATA", "EHLO"]),
    addresses.map(lambda a: f"MAIL FROM:{a}"),
    addresses.map(lambda a: f"RCPT TO:{a}"),
    st.sampled_from(["MAIL FROM:<a@example.com> SIZE=abc", "MAIL FROM:<a@example.com> BODY=9BIT", "MAIL TO:<x>"]),
    st.sampled_from(["AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN !!!", "AUTH LOGIN", "AUTH CRAM-MD5", "AUTH"]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=40),
).map(lambda c: c.encode("utf-8"))
raw_commands = st.one_of(commands, commands, raw_line, st.integers(500, 3000).map(lambda n: b"X" * n))
# A whole transaction now and then, so that sequences reach DATA and deliver, not only get refused.
mostly_valid = st.one_of(st.just("<a@example.com>"), st.just("<rcpt@fuzz.example>"), addresses)
transactions = st.tuples(
    mostly_valid, st.lists(mostly_valid, min_size=1, max_size=3), st.sampled_from([True, True, True, False])
).map(lambda t: [f"MAIL FROM:{t[0]}".encode(), *(f"RCPT TO:{a}".encode() for a in t[1]), *([b"DATA"] if t[2] else [])])
scripts = st.tuples(
    st.sampled_from([[], [b"EHLO fuzz"], [b"HELO fuzz"]]),
    st.lists(st.one_of(raw_commands.map(lambda c: [c]), transactions), min_size=1, max_size=8),
).map(lambda t: t[0] + [c for chunk in t[1] for c in chunk])


def _reply(sock: socket.socket) -> bytes | None:
    """One complete reply, or None when the server closed the connection."""
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return data or None
        data += chunk
    return data


def _well_formed(reply: bytes) -> None:
    lines = reply.split(b"\r\n")[:-1]
    assert lines, reply
    for line in lines:
        assert _REPLY_LINE.match(line[:4] if len(line) > 3 else line + b" "), reply
    assert len({line[:3] for line in lines}) == 1, reply


def test_random_command_sequences_always_get_replies(server: ThreadedHub, http: httpx.Client) -> None:
    @given(script=scripts, body=st.lists(raw_line, max_size=4))
    @settings(FUZZ, max_examples=100)  # cheap, and most sequences never reach DATA
    def check(script: list[bytes], body: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", server.smtp_port)) as sock:
            greeting = _reply(sock)
            assert greeting is not None and greeting.startswith(b"220 ")
            for command in script:
                try:
                    sock.sendall(command + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                reply = _reply(sock)
                if reply is None:
                    break  # closed after QUIT, or after too many unknown commands (with a reply before)
                _well_formed(reply)
                if reply.startswith(b"354"):
                    # In DATA: the message, then the end marker, then DATA's own reply.
                    stuffed = (b"." + line if line.startswith(b".") else line for line in body)
                    sock.sendall(b"".join(line + b"\r\n" for line in stuffed) + b".\r\n")
                    reply = _reply(sock)
                    assert reply is not None
                    _well_formed(reply)
                    queued = _QUEUED.search(reply)
                    if reply.startswith(b"250") and queued is not None:
                        call = http.get(f"/calls/{queued.group(1).decode()}")
                        assert call.status_code == 200
                        assert call.json()["response"]["status"] == 250
                if reply[:3] in (b"221", b"421"):
                    assert _reply(sock) is None  # and then the server closes
                    break
        # The server keeps serving: a normal send afterwards goes through and is recorded.
        rcpt = marker()
        code, reply = send(server, rcpt, b"Subject: after the fuzz\r\n\r\nstill here\r\n")
        assert code == 250
        assert len(recorded(http, rcpt)) == 1

    check()


_ATOM = st.text(alphabet="abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=8)
_LOCAL = st.lists(_ATOM, min_size=1, max_size=3).map(".".join)
_DOMAIN = st.lists(st.text(alphabet="abc019-", min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)


@given(
    local=_LOCAL,
    domain=_DOMAIN,
    lead=st.sampled_from(["", " "]),
    rest=st.sampled_from(["", " SIZE=100", "  BODY=8BITMIME SMTPUTF8", " <x@y>"]),
)
def test_the_fast_address_parser_agrees_with_aiosmtpd(local: str, domain: str, lead: str, rest: str) -> None:
    """mockhub's fast path for `<local@domain>` gives what aiosmtpd's full RFC 5322 parser gives."""
    from aiosmtpd.smtp import SMTP

    from mockhub.services.smtp import MockSMTP

    arg = f"{lead}<{local}@{domain}>{rest}"
    reference, ours = SMTP.__new__(SMTP), MockSMTP.__new__(MockSMTP)
    reference.local_part_limit = ours.local_part_limit = 0
    assert MockSMTP._getaddr(ours, arg) == SMTP._getaddr(reference, arg)
