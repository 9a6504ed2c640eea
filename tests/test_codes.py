"""Codes and links: `data.links` / `data.codes` of every message, `has=` filters, `wait_for_code` / `wait_for_link`.

Messages are sent with the real clients (smtplib, the Twilio, Slack and Telegram SDKs, httpx) to a real
server; what is asserted is what the inspection API and the client give back.
"""

from __future__ import annotations

import asyncio
import html
import json
import smtplib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient
from support import calls, extra_hub, later, new_namespace, own_fake_hub
from telegram import Bot
from twilio.rest import Client
from typer.testing import CliRunner

from mockhub.cli import app
from mockhub.client import AsyncMockHub, MockHub
from mockhub.extract import codes_in, links_in
from mockhub.server import ThreadedHub

pytest_plugins = ["pytester"]

ACCOUNT, TOKEN = "AC" + "0" * 31 + "1", "test-auth-token"
PHONE, SENDER = "+15551234567", "+15550000000"
RESET_HTML = """<!doctype html><html><head><style>td {{ color: #333333; width: 600px }}</style></head>
<body><table><tr><td>
<p>Hello Alice, we got a request to reset your password on 02/12/2026 for order #12345 ($1234.00).</p>
<p>Your verification code is <b>{code}</b>.</p>
<p><a href="https://app.example.com/reset?token={token}&amp;user=42">Reset my password</a></p>
<p>Questions? Call +1 555 123 4567 or see https://help.example.com/faq.</p>
</td></tr></table></body></html>"""


def send_reset_email(server: ThreadedHub, hub: MockHub, to: str, code: str, token: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "no-reply@app.example.com", hub.address(to), "Reset your password"
    msg.set_content(f"Your verification code is {code}.\nReset: https://app.example.com/reset?token={token}&user=42")
    msg.add_alternative(RESET_HTML.format(code=code, token=token), subtype="html")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
        smtp.send_message(msg)


def twilio_for(server: ThreadedHub, namespace: str) -> Client:
    client = Client(ACCOUNT, TOKEN, environment={})
    client.api.base_url = f"{server.url}/ns/{namespace}"
    return client


def send_telegram(server: ThreadedHub, namespace: str, chat_id: int, text: str, **kwargs: object) -> None:
    async def go() -> None:
        base = f"{server.url}/ns/{namespace}"
        async with Bot("123456:ABC-test", base_url=f"{base}/bot", base_file_url=f"{base}/file/bot") as bot:
            await bot.send_message(chat_id, text, **kwargs)  # type: ignore[arg-type]

    asyncio.run(go())


# -- what is recorded ---------------------------------------------------------------------------------


def test_reset_email_over_smtp_records_its_code_and_links(server: ThreadedHub, api: httpx.Client) -> None:
    hub = MockHub(server.url, namespace=new_namespace())
    send_reset_email(server, hub, "alice", "482913", "tok-1")
    (call,) = hub.wait_for("smtp", method="DATA")
    # Dates, the order number, the amount, the phone number and the CSS colour are not codes.
    assert call.codes == ["482913"]
    assert call.data["codes"] == ["482913"]
    # The text part's link and the href (its &amp; decoded) are one link; trailing "." is not part of one.
    assert call.links == ["https://app.example.com/reset?token=tok-1&user=42", "https://help.example.com/faq"]
    assert hub.wait_for_code(to=hub.address("alice")) == "482913"
    assert hub.wait_for_link(contains="/reset") == "https://app.example.com/reset?token=tok-1&user=42"
    assert hub.wait_for_link(contains="help.") == "https://help.example.com/faq"


def test_sms_code_through_the_twilio_sdk(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    twilio_for(server, ns).messages.create(to=PHONE, from_=SENDER, body="123456 is your Acme code. Don't share it.")
    hub = MockHub(server.url, namespace=ns)
    assert hub.wait_for_code(to=PHONE) == "123456"
    (call,) = hub.calls("twilio")
    assert call.data["links"] == [] and call.data["codes"] == ["123456"]


def test_slack_blocks_and_telegram_html_are_read(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Your login code: *ABC-123*"}},
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://app.example.com/x"}
            ],
        },
    ]
    web = WebClient(token="xoxb-test-token", base_url=f"{server.url}/ns/{ns}/api/")
    web.chat_postMessage(
        channel="#auth", text="Login code inside <https://app.example.com/login?a=1|log in>", blocks=blocks
    )
    send_telegram(
        server,
        ns,
        42,
        'Your PIN: <b>7731</b> — <a href="https://t.example.com/p?x=1&amp;y=2">open</a>',
        parse_mode="HTML",
    )
    hub = MockHub(server.url, namespace=ns)
    assert hub.wait_for_code("slack", to="auth") == "ABC-123"
    assert hub.wait_for_link("slack", to="auth") == "https://app.example.com/login?a=1"
    (slack,) = hub.calls("slack")
    assert slack.links == ["https://app.example.com/login?a=1", "https://app.example.com/x"]
    assert hub.wait_for_code("telegram", to="42") == "7731"
    assert hub.wait_for_link("telegram") == "https://t.example.com/p?x=1&y=2"


def test_parallel_messages_in_namespaces_each_wait_gets_its_own(server: ThreadedHub, api: httpx.Client) -> None:
    """Four channels, four namespaces, all at once: each wait_for_code sees only its own namespace's code."""
    spaces = {kind: new_namespace(kind[:2] + "-") for kind in ("smtp", "twilio", "slack", "telegram")}
    codes = {"smtp": "604132", "twilio": "918273", "slack": "552211", "telegram": "880077"}

    def send(kind: str) -> None:
        ns, code = spaces[kind], codes[kind]
        time.sleep(0.2)  # the waits below are already waiting
        if kind == "smtp":
            send_reset_email(server, MockHub(server.url, namespace=ns), "bob", code, "tok-" + ns)
        elif kind == "twilio":
            twilio_for(server, ns).messages.create(to=PHONE, from_=SENDER, body=f"Your verification code is {code}")
        elif kind == "slack":
            WebClient(token="xoxb-t", base_url=f"{server.url}/ns/{ns}/api/").chat_postMessage(
                channel="#auth", text=f"OTP {code}"
            )
        else:
            send_telegram(server, ns, 7, f"Код подтверждения: {code}")

    def wait(kind: str) -> str:
        return MockHub(server.url, namespace=spaces[kind]).wait_for_code(timeout=10)

    with ThreadPoolExecutor(8) as pool:
        waits = {kind: pool.submit(wait, kind) for kind in spaces}
        for kind in spaces:
            pool.submit(send, kind)
        assert {kind: w.result() for kind, w in waits.items()} == codes


def test_the_newest_message_wins_and_waits_block_until_one_comes(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    hub, twilio = MockHub(server.url, namespace=ns), twilio_for(server, ns)
    twilio.messages.create(to=PHONE, from_=SENDER, body="Your code is 1111")
    twilio.messages.create(to=PHONE, from_=SENDER, body="Your new code is 2222")
    assert hub.wait_for_code(to=PHONE) == "2222"
    # A wait for a link that no message has yet returns when a new message brings one.
    later(0.3, lambda: twilio.messages.create(to=PHONE, from_=SENDER, body="Verify: https://app.example.com/v/9"))
    started = time.monotonic()
    assert hub.wait_for_link(to=PHONE, contains="/v/", timeout=5) == "https://app.example.com/v/9"
    assert 0.2 < time.monotonic() - started < 4


def test_no_code_is_an_assertion_naming_what_arrived(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    hub = MockHub(server.url, namespace=ns)
    twilio_for(server, ns).messages.create(to=PHONE, from_=SENDER, body="Your order 2026-12-02 costs $1234.00")
    with pytest.raises(AssertionError, match="has=") as caught:
        hub.wait_for_code(to=PHONE, timeout=0.3)
    assert "twilio" in str(caught.value)
    twilio_for(server, ns).messages.create(to=PHONE, from_=SENDER, body="See https://a.example.com/one")
    with pytest.raises(AssertionError, match=r"(?s)no link containing .*/two.*https://a\.example\.com/one"):
        hub.wait_for_link(contains="/two", timeout=0.3)


def test_async_client_waits_for_code_and_link(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()

    async def go() -> tuple[str, str]:
        async with AsyncMockHub(server.url, namespace=ns) as hub:
            sender = threading.Timer(
                0.2,
                lambda: twilio_for(server, ns).messages.create(
                    to=PHONE, from_=SENDER, body="Your passcode is 5150. https://app.example.com/c?x=1"
                ),
            )
            sender.start()
            try:
                return await hub.wait_for_code(to=PHONE, timeout=5), await hub.wait_for_link(contains="/c")
            finally:
                sender.join()

    assert asyncio.run(go()) == ("5150", "https://app.example.com/c?x=1")


# -- has= --------------------------------------------------------------------------------------------------


def _messages(server: ThreadedHub, ns: str) -> None:
    twilio = twilio_for(server, ns)
    twilio.messages.create(to=PHONE, from_=SENDER, body="Your code is 4321")  # code
    twilio.messages.create(to=PHONE, from_=SENDER, body="Docs at https://docs.example.com")  # link
    twilio.messages.create(to=PHONE, from_=SENDER, body="Code 8765: https://app.example.com/go")  # both
    twilio.messages.create(to=PHONE, from_=SENDER, body="Photo", media_url=["https://cdn.example.com/a.png"])
    twilio.messages.create(to=PHONE, from_=SENDER, body="Call me at 555-123-4567 about invoice 2026")  # nothing


def test_has_filters_list_count_wait_stream_and_export(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    _messages(server, ns)

    def bodies(**params: object) -> list[str]:
        return [c["data"]["body"] for c in calls(api, "twilio", namespace=ns, **params)]

    assert bodies(has="code") == ["Your code is 4321", "Code 8765: https://app.example.com/go"]
    assert bodies(has="link") == ["Docs at https://docs.example.com", "Code 8765: https://app.example.com/go"]
    assert bodies(has="link,code") == ["Code 8765: https://app.example.com/go"]
    assert bodies(has="attachment") == ["Photo"]
    # Repeated, the values combine like a comma list (AND).
    r = api.get("/calls", params=[("namespace", ns), ("has", "link"), ("has", "CODE")])
    assert [c["data"]["body"] for c in r.json()["calls"]] == ["Code 8765: https://app.example.com/go"]
    assert api.get("/calls/count", params={"namespace": ns, "has": "code"}).json() == {"count": 2}
    waited = api.get("/calls", params={"namespace": ns, "has": "attachment", "wait": 1}).json()
    assert waited["count"] == 1 and waited["timed_out"] is False
    export = api.get("/calls/export", params={"namespace": ns, "has": "code"}).text.splitlines()
    assert [json.loads(line)["data"]["codes"] for line in export] == [["4321"], ["8765"]]
    hub = MockHub(server.url, namespace=ns)
    assert [c.codes for c in hub.calls(has=["link", "code"])] == [["8765"]]
    assert hub.count(has="link") == 2
    stream = hub.stream(has="code", after=0)
    assert [next(stream).codes, next(stream).codes] == [["4321"], ["8765"]]


def test_unknown_has_value_is_422_listing_the_valid_ones(api: httpx.Client) -> None:
    for route in ("/calls", "/calls/count", "/calls/stream", "/calls/export"):
        r = api.get(route, params={"has": "link,qr"})
        assert r.status_code == 422, route
        message = r.json()["error"]["message"]
        assert "has" in message and "'link', 'code' or 'attachment'" in message


def test_calls_of_other_fakes_carry_no_links_or_codes(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    r = httpx.post(f"{server.url}/ns/{ns}/webhooks/x", json={"text": "code 123456 https://a.example.com"})
    assert r.status_code == 200
    (call,) = calls(api, "webhook", namespace=ns)
    assert "links" not in call["data"] and "codes" not in call["data"]
    assert calls(api, namespace=ns, has="code") == []
    services = {s["name"]: s for s in api.get("/services").json()["services"]}
    message_like = {name for name, s in services.items() if s["message"]}
    assert message_like == {
        "smtp", "ses", "sendgrid", "mailgun", "resend", "postmark", "twilio", "sns", "slack", "telegram", "discord",
        "teams",
    }  # fmt: skip
    assert services["teams"]["files"] == [] and services["twilio"]["files"] == ["media_url"]
    assert services["slack"]["rich"] == ["blocks", "attachments"]


@pytest.mark.parametrize(
    ("send", "code", "link"),
    [
        (
            lambda url: httpx.post(
                f"{url}/v3/mail/send",
                headers={"authorization": "Bearer SG.x"},
                json={
                    "personalizations": [{"to": [{"email": "a@example.com"}]}],
                    "from": {"email": "app@example.com"},
                    "subject": "Your sign-in code",
                    "content": [
                        {"type": "text/plain", "value": "Sign-in code: 246810"},
                        {"type": "text/html", "value": '<a href="https://sg.example.com/s?a=1&amp;b=2">go</a>'},
                    ],
                },
            ),
            "246810",
            "https://sg.example.com/s?a=1&b=2",
        ),
        (
            lambda url: httpx.post(
                f"{url}/api/webhooks/1/tok",
                json={
                    "embeds": [{"title": "Security code", "description": "Use X7K-9P2", "url": "https://d.example.com"}]
                },
            ),
            "X7K-9P2",
            "https://d.example.com",
        ),
        (
            lambda url: httpx.post(
                f"{url}/teams/hook",
                json={
                    "type": "message",
                    "attachments": [
                        {
                            "contentType": "application/vnd.microsoft.card.adaptive",
                            "content": {
                                "type": "AdaptiveCard",
                                "version": "1.4",
                                "body": [{"type": "TextBlock", "text": "Your one-time code is 31415"}],
                                "actions": [
                                    {"type": "Action.OpenUrl", "title": "Open", "url": "https://teams.example.com/o"}
                                ],
                            },
                        }
                    ],
                },
            ),
            "31415",
            "https://teams.example.com/o",
        ),
    ],
    ids=["sendgrid", "discord", "teams"],
)
def test_other_message_fakes(
    server: ThreadedHub, api: httpx.Client, send: Callable[[str], httpx.Response], code: str, link: str
) -> None:
    ns = new_namespace()
    response = send(f"{server.url}/ns/{ns}")
    assert response.status_code < 300, response.text
    hub = MockHub(server.url, namespace=ns)
    assert hub.wait_for_code() == code
    assert hub.wait_for_link() == link


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_code_and_link(server: ThreadedHub, api: httpx.Client) -> None:
    ns = new_namespace()
    twilio_for(server, ns).messages.create(to=PHONE, from_=SENDER, body="Code 9090 https://app.example.com/r/1")
    runner = CliRunner()
    base = ["--url", server.url, "--namespace", ns]
    got = runner.invoke(app, ["code", *base, "--to", PHONE])
    assert (got.exit_code, got.stdout.strip()) == (0, "9090"), got.output
    got = runner.invoke(app, ["link", *base, "--to", PHONE, "--contains", "/r/"])
    assert (got.exit_code, got.stdout.strip()) == (0, "https://app.example.com/r/1"), got.output
    later(0.3, lambda: twilio_for(server, ns).messages.create(to="+15559999999", from_=SENDER, body="PIN 2468"))
    got = runner.invoke(app, ["code", *base, "--to", "+15559999999", "--wait", "5"])
    assert (got.exit_code, got.stdout.strip()) == (0, "2468"), got.output
    got = runner.invoke(app, ["code", *base, "--to", "+15550001111", "--wait", "0.2"])
    assert got.exit_code == 1 and "has=" in got.output


# -- the rules, on their own ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("Your verification code is 482913. It expires in 10 minutes.", ["482913"]),
        ("482913 is your Instagram code. Don't share it.", ["482913"]),
        ("G-482913 is your Google verification code.", ["G-482913"]),
        ("Your Acme login code:\n\n    7731\n\nIf you did not ask for it, ignore this.", ["7731"]),
        ("Your code: 123-456", ["123-456"]),
        ("Ihr Bestätigungscode lautet 1234 5678", ["1234 5678"]),
        ("Su código de verificación es 9021", ["9021"]),
        ("您的验证码是 583920，5分钟内有效", ["583920"]),  # noqa: RUF001
        ("PIN: 1987", ["1987"]),
        ("774422", ["774422"]),
        ("Verification code 12345678 sent at 12:30 on 02.12.2026", ["12345678"]),
        ("OTP=908070; code:(112233) **445566** `778899`!", ["908070", "112233", "445566", "778899"]),
        ("Votre code de vérification : 246813", ["246813"]),
        ("Il tuo codice è 135790", ["135790"]),
        ("Twój kod to 8642", ["8642"]),
        ("認証コード：5566", ["5566"]),  # noqa: RUF001
        ("Your security code is 4821. Call 1-800-555-0199 if this was not you.", ["4821"]),
        # Not codes: dates, years, prices, amounts, phone numbers, order numbers, zip and promo codes.
        ("Your order #12345 of $1234.00 ships on 2026-12-02.", []),
        ("Your code expires on Dec 2, 2026.", []),
        ("Your code is valid until 12/02/2026 or 02.12.2026", []),
        ("Call (555) 123-4567 or +1 555 123 4567 or 555-1234 for a new code", []),
        ("Your code costs 1,234.56 EUR or 1234 EUR or €1234 or 4000%", []),
        ("Your zip code 90210 was saved; area code 4155", []),
        ("Use promo code SAVE-2024 for 20% off", []),
        ("Invoice 123456 for March is attached", []),
        ("Your barcode 12345678 and postcode 1012 AB were encoded as 5555", []),
        ("Your code is &#8203; on page 12", []),
        ("Reset at https://app.example.com/reset/123456 with your code", []),
    ],
)
def test_code_rules(text: str, codes: list[str]) -> None:
    assert codes_in([text]) == codes


def test_link_rules() -> None:
    html = (
        '<a href="https://a.example/x?a=1&amp;b=2">x</a> see https://a.example/x?a=1&b=2. '
        "(https://b.example/p) <https://slack.example/x|label> [md](https://md.example/y) "
        'href=\'myapp://open?x=1\' href="mailto:help@example.com" href="javascript:alert(1)" '
        'href="/relative" <img src="cid:logo"> '
        "https://c.example/wiki/Foo_(bar), and https://a.example/x?a=1&copy=2"
    )
    assert links_in([html]) == [
        "https://a.example/x?a=1&b=2",
        "https://b.example/p",
        "https://slack.example/x",
        "https://md.example/y",
        "myapp://open?x=1",
        "https://c.example/wiki/Foo_(bar)",
        "https://a.example/x?a=1&copy=2",
    ]
    assert links_in(["no links here", ""]) == []


# -- the other email and SMS fakes, through their own SDKs ------------------------------------------------


def test_ses_sns_postmark_mailgun_resend(server: ThreadedHub, api: httpx.Client) -> None:
    import boto3
    import resend
    from botocore.config import Config

    ns = new_namespace()
    base = f"{server.url}/ns/{ns}"
    aws = {
        "endpoint_url": base,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "config": Config(retries={"total_max_attempts": 1}),
    }
    boto3.client("sesv2", **aws).send_email(
        FromEmailAddress="app@example.com",
        Destination={"ToAddresses": ["ses@example.com"]},
        Content={
            "Simple": {
                "Subject": {"Data": "Confirm your email"},
                "Body": {
                    "Html": {"Data": '<p>Code: <b>111222</b></p><a href="https://ses.example.com/c?a=1&amp;b=2">ok</a>'}
                },
            }
        },
    )
    boto3.client("sns", **aws).publish(PhoneNumber="+15557654321", Message="Your one-time passcode is 909192")
    postmark = httpx.post(
        f"{base}/email",
        headers={"X-Postmark-Server-Token": "pm-token", "Accept": "application/json"},
        json={
            "From": "app@example.com",
            "To": "pm@example.com",
            "Subject": "Login",
            "TextBody": "Your login code is 7777-8888",
        },
    )
    assert postmark.status_code == 200, postmark.text
    mailgun = httpx.post(
        f"{base}/v3/mg.example.com/messages",
        auth=("api", "key-test"),
        data={"from": "app@example.com", "to": "mg@example.com", "subject": "Hi", "text": "Code 314159"},
        files={"attachment": ("report.pdf", b"%PDF-1.4", "application/pdf")},
    )
    assert mailgun.status_code == 200, mailgun.text
    saved = (resend.api_url, resend.api_key)
    resend.api_url, resend.api_key = base, "re_test"
    try:
        resend.Emails.send(
            {
                "from": "app@example.com",
                "to": "re@example.com",
                "subject": "Magic link",
                "html": '<a href="https://re.example.com/m/1">Sign in</a>',
            }
        )
    finally:
        resend.api_url, resend.api_key = saved
    hub = MockHub(server.url, namespace=ns)
    assert hub.wait_for_code("ses", to="ses@example.com") == "111222"
    assert hub.wait_for_link("ses") == "https://ses.example.com/c?a=1&b=2"
    assert hub.wait_for_code("sns", to="+15557654321") == "909192"
    assert hub.wait_for_code("postmark", to="pm@example.com") == "7777-8888"
    assert hub.wait_for_code("mailgun") == "314159"
    assert hub.wait_for_link("resend", to="re@example.com") == "https://re.example.com/m/1"
    assert [c.service for c in hub.calls(has="attachment")] == ["mailgun"]
    assert [c.service for c in hub.calls(has=["code", "link"])] == ["ses"]


# -- a fake of one's own opts in with one line --------------------------------------------------------------

OWN_FAKE = '''
from mockhub.services.base import Reply, Request, Route, Service, json_reply, route


class PigeonService(Service):
    """Carrier pigeons."""

    name = "pigeon"
    message = True

    def routes(self) -> list[Route]:
        return [route("POST", "/pigeon/send", self.send, self.parse)]

    def parse(self, request: Request) -> dict:
        return {"to": request.json()["to"], "text": request.json()["text"]}

    async def send(self, request: Request) -> Reply:
        return json_reply({"ok": True})
'''


def test_a_fake_of_ones_own_opts_in_with_message_true(tmp_path: Path) -> None:
    with own_fake_hub(tmp_path, "pigeonfake", OWN_FAKE, "PigeonService") as hub:
        r = httpx.post(
            f"{hub.url}/pigeon/send", json={"to": "coop-7", "text": "Your PIN is 4455 https://p.example.com"}
        )
        assert r.status_code == 200
        client = MockHub(hub.url)
        assert client.wait_for_code("pigeon", to="coop-7") == "4455"
        assert client.calls(has="link")[0].links == ["https://p.example.com"]
        assert httpx.get(f"{hub.url}/services/pigeon").json()["message"] is True


# -- the pytest plugin ------------------------------------------------------------------------------------------


def test_the_plugin_fixture_waits_for_codes(pytester: pytest.Pytester, server: ThreadedHub) -> None:
    pytester.makepyfile(
        f"""
        import httpx

        def send(mockhub, text):
            r = httpx.post(
                f"{{mockhub.root}}/2010-04-01/Accounts/AC{"0" * 31}1/Messages.json",
                auth=("AC{"0" * 31}1", "token"),
                data={{"To": "+15551234567", "From": "+15550000000", "Body": text}},
            )
            assert r.status_code == 201, r.text

        def test_one(mockhub):
            send(mockhub, "Your code is 1001")
            assert mockhub.wait_for_code(to="+15551234567") == "1001"

        def test_two(mockhub):
            send(mockhub, "Your code is 2002 https://two.example.com")
            assert mockhub.wait_for_code(to="+15551234567") == "2002"
            assert mockhub.wait_for_link() == "https://two.example.com"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--mockhub-url={server.url}", "-q")
    result.assert_outcomes(passed=2)


# -- attachments, the record file and replay ------------------------------------------------------------------


def test_has_attachment_over_smtp_and_the_cli_calls_flag(server: ThreadedHub, api: httpx.Client) -> None:
    hub = MockHub(server.url, namespace=new_namespace())
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@example.com", hub.address("ops"), "Your invoice"
    msg.set_content("Invoice 123456 for March is attached.")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as smtp:
        smtp.send_message(msg)
    send_reset_email(server, hub, "ops", "665544", "t")
    [invoice] = hub.wait_for("smtp", has="attachment")
    assert invoice.codes == [] and invoice.subjects() == ["Your invoice"]
    assert [c.subjects() for c in hub.calls(has="code")] == [["Reset your password"]]
    got = CliRunner().invoke(
        app,
        ["calls", "--url", server.url, "--namespace", hub.namespace or "", "--has", "code", "--has", "link", "--json"],
    )
    assert got.exit_code == 0, got.output
    assert [c["data"]["codes"] for c in json.loads(got.stdout)["calls"]] == [["665544"]]


def test_links_and_codes_are_in_the_record_file_and_read_for_older_records(tmp_path: Path) -> None:
    record = tmp_path / "rec"
    with extra_hub(record_dir=record) as first:
        twilio_for(first, "rec").messages.create(to=PHONE, from_=SENDER, body="Your code is 3141 https://r.example.com")
        MockHub(first.url, namespace="rec").wait_for("twilio")
    [file] = list(record.glob("*.jsonl"))
    [line] = [json.loads(raw) for raw in file.read_text().splitlines() if raw.strip()]
    assert (line["data"]["codes"], line["data"]["links"]) == (["3141"], ["https://r.example.com"])
    # A record written before mockhub read links and codes: they are read when it is replayed.
    del line["data"]["codes"], line["data"]["links"]
    file.write_text(json.dumps(line) + "\n")
    with extra_hub(replay=str(record)) as second:
        hub = MockHub(second.url, namespace="rec")
        assert hub.wait_for_code(to=PHONE) == "3141"
        assert [c.links for c in hub.calls(has="link")] == [["https://r.example.com"]]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("0123456789-<>&;:/ .AB")), max_size=300),
        max_size=4,
    )
)
def test_any_text_gives_lists_of_what_it_holds(texts: list[str]) -> None:
    links, codes = links_in(texts), codes_in(texts)
    assert all(isinstance(v, str) and v for v in links + codes)
    assert len(set(links)) == len(links) and len(set(codes)) == len(codes)
    # A code is digits and letters (and hyphens or one space) found in the texts, never made up.
    joined = "\n".join(texts)
    for code in codes:
        assert code.replace("-", "").replace(" ", "").isalnum()
        assert code in joined or html.unescape(code) in html.unescape(joined)
