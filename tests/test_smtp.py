"""The SMTP fake, driven with the stdlib's own client (`smtplib`, `email.message.EmailMessage`)."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from functools import partial

import httpx
import pytest
import support
from support import extra_hub

from mockhub.server import ThreadedHub

calls = partial(support.calls, service="smtp")
fault = partial(support.add_fault, service="smtp")

TIMEOUT = 10


def message(
    subject: str = "Disk full on db-1",
    to: str = "ops@example.com",
    sender: str = "Alerts <alerts@example.com>",
    text: str = "The disk is full.\n",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    return msg


def trusted(api: httpx.Client) -> ssl.SSLContext:
    """A client context that trusts mockhub's certificate, as served at /tls/ca.pem."""
    r = api.get("/tls/ca.pem")
    assert r.status_code == 200
    assert "BEGIN CERTIFICATE" in r.text
    return ssl.create_default_context(cadata=r.text)


@pytest.fixture(scope="module")
def strict() -> Iterator[ThreadedHub]:
    """A second mockhub with tight SMTP limits, pinned credentials and SMTPS on."""
    with extra_hub(
        smtps_port=0,
        smtp_max_message_bytes=20_000,
        smtp_max_recipients=3,
        smtp_require_auth=True,
        smtp_credentials="alice:secret,bob",
    ) as running:
        yield running


@pytest.fixture
def strict_api(strict: ThreadedHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict.url, timeout=TIMEOUT) as client:
        client.post("/reset").raise_for_status()
        yield client


# -- delivery and parsing ----------------------------------------------------------------------------


def test_plain_message_is_recorded_with_envelope_and_headers(server: ThreadedHub, api: httpx.Client) -> None:
    msg = message()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        code, ehlo = smtp.ehlo("client.example")
        assert code == 250
        for ext in (b"PIPELINING", b"SIZE 52428800", b"8BITMIME", b"SMTPUTF8", b"STARTTLS", b"AUTH LOGIN PLAIN"):
            assert ext in ehlo.splitlines()
        assert smtp.send_message(msg) == {}

    (call,) = calls(api)
    assert call["method"] == "DATA"
    assert call["path"] == "/"
    assert call["namespace"] == "default"
    assert call["response"]["status"] == 250
    assert call["response"]["body"].startswith("250 2.0.0 Ok: queued as " + call["id"])
    assert call["fault"] is None
    data = call["data"]
    assert data["mail_from"] == "alerts@example.com"
    assert data["rcpt_to"] == ["ops@example.com"]
    assert data["from"] == "Alerts <alerts@example.com>"
    assert data["to"] == ["ops@example.com"]
    assert data["cc"] == []
    assert data["subject"] == "Disk full on db-1"
    assert data["text"] == "The disk is full.\n"
    assert data["html"] is None
    assert data["attachments"] == []
    assert data["auth_user"] is None
    assert data["tls"] is False
    assert data["helo"] == "client.example"
    assert data["unparsable"] is False
    assert data["headers"]["subject"] == "Disk full on db-1"
    assert data["headers"]["mime-version"] == "1.0"

    raw = api.get(f"/calls/{call['id']}/raw")
    assert raw.headers["content-type"].startswith("message/rfc822")
    assert raw.content.replace(b"\r\n", b"\n") == msg.as_bytes()

    # The `to`, `subject` and `contains` filters read the parsed message.
    assert len(calls(api, to="ops@example.com")) == 1
    assert len(calls(api, to="nobody@example.com")) == 0
    assert len(calls(api, subject="disk full")) == 1
    assert len(calls(api, contains="disk is full")) == 1


def test_cc_and_bcc_recipients_are_visible_in_the_envelope(server: ThreadedHub, api: httpx.Client) -> None:
    msg = message(
        to="Ops Team <ops@example.com>", Cc="dba@example.com, Lead <lead@example.com>", Bcc="audit@example.com"
    )
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(msg)

    (call,) = calls(api)
    data = call["data"]
    assert sorted(data["rcpt_to"]) == ["audit@example.com", "dba@example.com", "lead@example.com", "ops@example.com"]
    assert data["to"] == ["Ops Team <ops@example.com>"]
    assert data["cc"] == ["dba@example.com", "Lead <lead@example.com>"]
    # smtplib strips Bcc from the message itself: only the envelope shows it.
    assert "bcc" not in data["headers"]
    for address in ("ops@example.com", "lead@example.com", "audit@example.com"):
        assert [c["id"] for c in calls(api, to=address)] == [call["id"]]


def test_multipart_text_html_and_attachment(server: ThreadedHub, api: httpx.Client) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    msg = message(subject="Weekly report", text="See the attached report.\n")
    msg.add_alternative("<html><body><p>See the <b>attached</b> report.</p></body></html>\n", subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="report.pdf")
    msg.add_attachment("a,b\n1,2\n", subtype="csv", filename="data.csv")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(msg)

    (call,) = calls(api)
    data = call["data"]
    assert data["text"] == "See the attached report.\n"
    assert "<b>attached</b>" in data["html"]
    assert [(a["filename"], a["content_type"], a["size"]) for a in data["attachments"]] == [
        ("report.pdf", "application/pdf", len(pdf)),
        ("data.csv", "text/csv", len(b"a,b\n1,2\n")),
    ]
    assert data["defects"] == []

    first = api.get(f"/calls/{call['id']}/attachments/0")
    assert first.status_code == 200
    assert first.content == pdf
    assert first.headers["content-type"] == "application/pdf"
    assert "report.pdf" in first.headers["content-disposition"]
    second = api.get(f"/calls/{call['id']}/attachments/1")
    assert second.content.replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    missing = api.get(f"/calls/{call['id']}/attachments/2")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "attachment_not_found"
    assert api.get("/calls/c_nope/attachments/0").status_code == 404
    assert "/calls/{call_id}/attachments/{index}" in api.get("/openapi.json").json()["paths"]

    # `contains` searches the decoded parts, not just the (base64/quoted-printable) source.
    assert len(calls(api, contains="<b>attached</b>")) == 1


def test_utf8_subject_body_and_addresses(server: ThreadedHub, api: httpx.Client) -> None:
    encoded = message(
        subject="Störung ✓ 日本語の件名",
        sender="Jörg Müller <joerg@example.com>",
        text="Grüße — the café's disk is full 🔥\n",
    )
    # A non-ASCII address needs SMTPUTF8: smtplib then sends raw UTF-8 headers and envelope.
    international = message(subject="Ünïcødé envelope", to="用户@例子.广告", text="你好\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(encoded)
        smtp.send_message(international)

    first, second = calls(api)
    assert "=?utf-8?" in api.get(f"/calls/{first['id']}/raw").text  # RFC 2047 on the wire ...
    assert first["data"]["subject"] == "Störung ✓ 日本語の件名"  # ... decoded in the record
    assert first["data"]["from"] == "Jörg Müller <joerg@example.com>"
    assert first["data"]["text"] == "Grüße — the café's disk is full 🔥\n"
    assert second["data"]["rcpt_to"] == ["用户@例子.广告"]
    assert second["data"]["to"] == ["用户@例子.广告"]
    assert second["data"]["subject"] == "Ünïcødé envelope"
    assert second["data"]["text"] == "你好\n"
    assert [c["id"] for c in calls(api, to="用户@例子.广告")] == [second["id"]]
    assert [c["id"] for c in calls(api, contains="café")] == [first["id"]]


# -- TLS and AUTH ------------------------------------------------------------------------------------


def test_starttls_then_auth_login(server: ThreadedHub, api: httpx.Client) -> None:
    context = trusted(api)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        code, _ = smtp.starttls(context=context)  # verifies the certificate against the served CA
        assert code == 220
        code, ehlo = smtp.ehlo()
        assert b"STARTTLS" not in ehlo.splitlines()
        smtp.user, smtp.password = "team-a", "any password"
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
        assert code == 235
        smtp.send_message(message())

    (call,) = calls(api)
    assert call["data"]["tls"] is True
    assert call["data"]["auth_user"] == "team-a"
    # The AUTH user name is the namespace (docs/namespaces.md).
    assert call["namespace"] == "team-a"
    assert len(calls(api, namespace="team-a")) == 1
    assert len(calls(api, namespace="default")) == 0


def test_auth_plain_without_tls_is_allowed_by_default(server: ThreadedHub, api: httpx.Client) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.login("plain-user", "pw")  # smtplib picks PLAIN
        smtp.send_message(message())
    (call,) = calls(api)
    assert call["data"]["auth_user"] == "plain-user"
    assert call["data"]["tls"] is False


def test_smtps_implicit_tls(strict: ThreadedHub, strict_api: httpx.Client) -> None:
    port = strict.hub.listeners()["smtps_port"]
    assert strict_api.get("/health").json()["smtps_port"] == port
    with smtplib.SMTP_SSL("localhost", port, context=trusted(strict_api), timeout=TIMEOUT) as smtp:
        code, ehlo = smtp.ehlo()
        assert code == 250
        assert b"STARTTLS" not in ehlo.splitlines()
        smtp.login("alice", "secret")
        smtp.send_message(message())
    (call,) = calls(strict_api)
    assert call["data"]["tls"] is True
    assert call["namespace"] == "alice"


def test_pinned_credentials_and_required_auth(strict: ThreadedHub, strict_api: httpx.Client) -> None:
    with smtplib.SMTP("127.0.0.1", strict.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(message())
        assert refused.value.smtp_code == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as bad:
            smtp.login("alice", "wrong")
        assert bad.value.smtp_code == 535
        smtp.login("bob", "bob may use any password")
        smtp.send_message(message())

    # smtplib's login() tries each offered mechanism in turn, so the wrong password is refused twice.
    mail, plain, login, data = calls(strict_api)
    assert (mail["method"], mail["response"]["status"]) == ("MAIL", 530)
    for auth, mechanism in ((plain, "PLAIN"), (login, "LOGIN")):
        assert (auth["method"], auth["response"]["status"]) == ("AUTH", 535)
        assert auth["data"]["mechanism"] == mechanism
        assert auth["data"]["auth_user"] == "alice"
        assert auth["namespace"] == "alice"
    assert (data["method"], data["response"]["status"], data["namespace"]) == ("DATA", 250, "bob")


# -- limits ------------------------------------------------------------------------------------------


def test_size_limit_rejects_with_552(strict: ThreadedHub, strict_api: httpx.Client) -> None:
    big = message(subject="too big", text="x" * 70 + "\n" * 400 + ("y" * 70 + "\n") * 300)
    with smtplib.SMTP("127.0.0.1", strict.smtp_port, timeout=TIMEOUT) as smtp:
        code, ehlo = smtp.ehlo()
        assert b"SIZE 20000" in ehlo.splitlines()
        smtp.login("alice", "secret")
        # smtplib declares SIZE= in MAIL FROM, so the server refuses before the data is sent ...
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(big)
        assert refused.value.smtp_code == 552
        # ... and a client that does not declare it is refused after the data.
        assert smtp.mail("alerts@example.com")[0] == 250
        assert smtp.rcpt("ops@example.com")[0] == 250
        code, _ = smtp.data(big.as_string())
        assert code == 552
        smtp.rset()
        smtp.send_message(message(subject="small"))

    mail, data, ok = calls(strict_api)
    assert (mail["method"], mail["response"]["status"]) == ("MAIL", 552)
    assert mail["data"]["mail_from"] == "alerts@example.com"
    assert (data["method"], data["response"]["status"]) == ("DATA", 552)
    assert data["data"]["rcpt_to"] == ["ops@example.com"]
    assert ok["data"]["subject"] == "small"


def test_too_many_recipients_get_452(strict: ThreadedHub, strict_api: httpx.Client) -> None:
    rcpts = [f"user{i}@example.com" for i in range(5)]
    with smtplib.SMTP("127.0.0.1", strict.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.login("alice", "secret")
        refused = smtp.sendmail("alerts@example.com", rcpts, message().as_bytes())
    assert {k: v[0] for k, v in refused.items()} == {"user3@example.com": 452, "user4@example.com": 452}
    recorded = calls(strict_api)
    assert [(c["method"], c["response"]["status"]) for c in recorded] == [("RCPT", 452), ("RCPT", 452), ("DATA", 250)]
    assert recorded[0]["data"]["rcpt_to"] == ["user3@example.com"]
    assert recorded[2]["data"]["rcpt_to"] == rcpts[:3]


# -- namespaces --------------------------------------------------------------------------------------


def test_namespace_from_recipient_tag_scopes_calls_and_faults(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, match={"namespace": "run-7"}, action="smtp_reply", code=550, stage="rcpt", times=None)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(message(to="alerts+ns-run-8@example.com"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.send_message(message(to="alerts+ns-run-7@example.com"))

    assert [c["method"] for c in calls(api, namespace="run-8")] == ["DATA"]
    (rejected,) = calls(api, namespace="run-7")
    assert rejected["method"] == "RCPT"
    assert rejected["response"]["status"] == 550


# -- faults at stages --------------------------------------------------------------------------------


def test_451_at_rcpt_once_then_success(server: ThreadedHub, api: httpx.Client) -> None:
    rule = fault(api, action="smtp_reply", code=451, stage="rcpt", times=1)
    msg = message()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(msg)
        code, reply = refused.value.recipients["ops@example.com"]
        assert code == 451
        assert rule["id"].encode() in reply
        assert smtp.send_message(msg) == {}  # the retry

    attempt, delivered = calls(api)
    assert attempt["method"] == "RCPT"
    assert attempt["response"]["status"] == 451
    assert attempt["fault"] == {"id": rule["id"], "action": "smtp_reply", "preset": None, "stage": "rcpt"}
    assert attempt["data"]["mail_from"] == "alerts@example.com"
    assert attempt["data"]["rcpt_to"] == ["ops@example.com"]
    assert delivered["method"] == "DATA"
    assert delivered["response"]["status"] == 250
    assert delivered["fault"] is None
    assert api.get(f"/faults/{rule['id']}").json()["fired"] == 1


def test_421_at_connect(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="smtp_reply", code=421, stage="connect", message="4.7.0 Try again later")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT)
    assert refused.value.smtp_code == 421
    assert refused.value.smtp_error == b"4.7.0 Try again later"
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(message())
    connect, delivered = calls(api)
    assert (connect["method"], connect["response"]["status"], connect["fault"]["stage"]) == ("CONNECT", 421, "connect")
    assert delivered["method"] == "DATA"


def test_disconnect_at_data(server: ThreadedHub, api: httpx.Client) -> None:
    rule = fault(api, action="disconnect", stage="data")
    with (
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        smtp.send_message(message(subject="lost in transit"))
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(message(subject="second try"))

    dropped, delivered = calls(api)
    assert dropped["method"] == "DATA"
    assert dropped["fault"]["id"] == rule["id"]
    assert dropped["fault"]["action"] == "disconnect"
    assert dropped["response"] is None  # no reply was sent
    assert dropped["data"]["subject"] == "lost in transit"  # the message had arrived
    assert delivered["data"]["subject"] == "second try"
    assert delivered["fault"] is None


def test_disconnect_at_mail_and_reply_at_ehlo(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="disconnect", stage="mail")
    with (
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        smtp.send_message(message())
    fault(api, action="smtp_reply", stage="ehlo", code=554, message="5.7.1 Go away")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        assert smtp.ehlo() == (554, b"5.7.1 Go away")
        assert smtp.ehlo()[0] == 250  # times=1: the next EHLO is fine
    recorded = calls(api)
    assert [(c["method"], c["response"] and c["response"]["status"]) for c in recorded] == [
        ("MAIL", None),
        ("EHLO", 554),
    ]


def test_error_presets_map_to_smtp_codes(server: ThreadedHub, api: httpx.Client) -> None:
    # An SMTP rule without a stage acts on the message (stage data).
    fault(api, action="error", preset="rate_limited")
    fault(api, action="error", preset="unavailable", stage="mail")
    msg = message()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as unavailable:
            smtp.send_message(msg)
        assert unavailable.value.smtp_code == 421
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as limited:
            smtp.send_message(msg)
        assert limited.value.smtp_code == 451
        smtp.send_message(msg)
    assert [(c["method"], c["response"]["status"], c["fault"] and c["fault"]["preset"]) for c in calls(api)] == [
        ("MAIL", 421, "unavailable"),
        ("DATA", 451, "rate_limited"),
        ("DATA", 250, None),
    ]


def test_unauthorized_preset_at_auth_scoped_by_user(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="error", preset="unauthorized", stage="auth", match={"namespace": "carol"}, times=None)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as denied:
            smtp.login("carol", "pw")
        assert denied.value.smtp_code == 535
        smtp.login("dave", "pw")
    recorded = calls(api)
    assert [(c["method"], c["namespace"], c["response"]["status"]) for c in recorded] == [
        ("AUTH", "carol", 535),  # PLAIN
        ("AUTH", "carol", 535),  # then LOGIN: smtplib tries every mechanism offered
    ]
    assert all(c["fault"]["preset"] == "unauthorized" for c in recorded)


def test_fault_matching_message_content_and_delay(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="smtp_reply", code=554, message="5.7.1 Message rejected as spam", match={"contains": "viagra"})
    fault(api, action="delay", delay_ms=200, match={"subject": "slow"})
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as spam:
            smtp.send_message(message(text="cheap viagra\n"))
        assert spam.value.smtp_code == 554
        smtp.send_message(message(subject="a slow one"))
        smtp.send_message(message(subject="a quick one"))
    recorded = calls(api)
    assert [(c["data"]["subject"], c["response"]["status"]) for c in recorded] == [
        ("Disk full on db-1", 554),
        ("a slow one", 250),
        ("a quick one", 250),
    ]
    assert recorded[1]["fault"]["action"] == "delay"
    assert recorded[1]["duration_ms"] >= 160  # includes the injected delay (timers may fire a hair early)
    assert recorded[2]["fault"] is None


def test_timeout_and_malformed_actions(server: ThreadedHub, api: httpx.Client) -> None:
    fault(api, action="timeout", delay_ms=300, stage="mail")
    with (
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp,
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        smtp.send_message(message())  # held for 300 ms, then dropped without a reply
    fault(api, action="malformed", stage="ehlo")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        code, _ = smtp.ehlo()
        assert code == -1  # smtplib's "unparsable reply"
    held, garbled = calls(api)
    assert (held["method"], held["response"], held["fault"]["action"]) == ("MAIL", None, "timeout")
    assert held["duration_ms"] >= 240  # held for the delay (event loop timers may fire a hair early)
    assert (garbled["method"], garbled["fault"]["action"]) == ("EHLO", "malformed")


def test_helo_client_and_large_message(server: ThreadedHub, api: httpx.Client) -> None:
    blob = bytes(range(256)) * (3 * 4096)  # 3 MiB: parsed off the event loop
    msg = message(subject="big one")
    msg.add_attachment(blob, maintype="application", subtype="octet-stream", filename="dump.bin")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
        assert smtp.helo("old.client")[0] == 250  # plain SMTP, no ESMTP extensions
        smtp.send_message(msg)
    (call,) = calls(api)
    assert call["data"]["helo"] == "old.client"
    assert call["data"]["attachments"][0]["size"] == len(blob)
    assert api.get(f"/calls/{call['id']}/attachments/0").content == blob


# -- bad input ---------------------------------------------------------------------------------------


def _reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def test_garbage_bytes_then_a_normal_send(server: ThreadedHub, api: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=TIMEOUT) as sock:
        assert _reply(sock).startswith(b"220 ")
        for garbage in (b"\x00\xff\xfe\x80 garbage\r\n", b"\x16\x03\x01\x02\x00\x01\r\n", b"A" * 5000 + b"\r\n"):
            sock.sendall(garbage)
            assert _reply(sock)[:1] == b"5"
        sock.sendall(b"EHLO \xff\xfe\r\n")
        assert _reply(sock).startswith(b"250")
        sock.sendall(b"MAIL FROM:<\xff\xfebad@example.com>\r\n")
        assert _reply(sock)[:1] in (b"2", b"5")
        sock.sendall(b"RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        replies = b""
        while replies.count(b"\r\n") < 4:
            replies += sock.recv(65536)
        assert replies.split(b"\r\n")[3].startswith(b"354")
        # 8-bit junk in headers, a multipart without its boundary, a line far beyond 998 octets.
        sock.sendall(
            b"Subject: caf\xc3\xa9 \xff\r\nFrom: \x80\x81 <x@example.com>\r\n"
            b"Content-Type: multipart/mixed\r\n\r\nbody \xfe\r\n.\r\n"
        )
        assert _reply(sock).startswith(b"250 ")
        sock.sendall(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        replies = b""
        while replies.count(b"\r\n") < 3:
            replies += sock.recv(65536)
        sock.sendall(b"Subject: long\r\n\r\n" + b"z" * 5000 + b"\r\n.\r\n")
        assert _reply(sock).startswith(b"500 ")
        sock.sendall(b"QUIT\r\n")
        assert _reply(sock).startswith(b"221")

    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.send_message(message(subject="after the garbage"))

    r = api.get("/calls", params={"service": "smtp"})
    assert r.status_code == 200  # every record serialises, junk included
    recorded = r.json()["calls"]
    weird = next(c for c in recorded if c["method"] == "DATA" and c["response"]["status"] == 250)
    assert weird["data"]["subject"].startswith("café")
    assert "NoBoundaryInMultipartDefect" in weird["data"]["defects"]
    assert any(c["method"] == "DATA" and c["response"]["status"] == 500 for c in recorded)
    assert recorded[-1]["data"]["subject"] == "after the garbage"


def test_message_without_headers_is_flagged_unparsable(server: ThreadedHub, api: httpx.Client) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.sendmail("a@example.com", ["b@example.com"], b"\r\njust some words, no headers\r\n")
    (call,) = calls(api)
    assert call["data"]["unparsable"] is True
    assert call["data"]["rcpt_to"] == ["b@example.com"]
    assert "just some words" in api.get(f"/calls/{call['id']}/raw").text


# -- concurrency -------------------------------------------------------------------------------------


def test_fifty_concurrent_senders_are_all_recorded(server: ThreadedHub, api: httpx.Client) -> None:
    def send(i: int) -> None:
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=30) as smtp:
            smtp.send_message(message(subject=f"concurrent {i}", to=f"user{i}@example.com"))

    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(send, range(50)))

    r = api.get("/calls", params={"service": "smtp", "method": "DATA", "wait": 10, "min": 50}).json()
    assert r["count"] == 50
    assert {c["data"]["subject"] for c in r["calls"]} == {f"concurrent {i}" for i in range(50)}
    assert {c["data"]["rcpt_to"][0] for c in r["calls"]} == {f"user{i}@example.com" for i in range(50)}
