"""SMTP namespaces that survive a project's fixed credentials (issue 21 item 6, docs/namespaces.md).

A `.env.test` pins one SMTP user for every test, so the explicit signals win: a `+ns-{namespace}`
recipient, then an AUTH user `ns-{namespace}` / `anything+ns-{namespace}`, then the plain AUTH user.
Driven with smtplib and aiosmtplib; awaited with the client's `wait_for`, as a test would.
"""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import aiosmtplib
import pytest
import support

from mockhub import AsyncMockHub, MockHub
from mockhub.server import ThreadedHub

TIMEOUT = 10
FIXED_USER = "alerts@acme.example"  # what a project's .env.test pins for every test


def message(to: str, subject: str = "Disk full on db-1") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "Alerts <alerts@acme.example>", to, subject
    msg.set_content("The disk is full.\n")
    return msg


def send(server: ThreadedHub, msg: EmailMessage, user: str | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=TIMEOUT) as smtp:
        if user is not None:
            smtp.login(user, "the fixed password")
        smtp.send_message(msg)


async def send_async(server: ThreadedHub, msg: EmailMessage, user: str | None = None) -> None:
    credentials = {} if user is None else {"username": user, "password": "the fixed password"}
    await aiosmtplib.send(
        msg, hostname="127.0.0.1", port=server.smtp_port, start_tls=False, timeout=TIMEOUT, **credentials
    )


@pytest.fixture
def hub(server: ThreadedHub) -> Iterator[MockHub]:
    with MockHub(server.url) as client:
        client.reset()
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ahub(server: ThreadedHub) -> AsyncIterator[AsyncMockHub]:
    async with AsyncMockHub(server.url) as client:
        await client.reset()
        yield client


# -- the signals, in order ---------------------------------------------------------------------------


def test_tagged_recipient_beats_a_fixed_auth_user(server: ThreadedHub, hub: MockHub, ns: str) -> None:
    mine = hub.namespaced(ns)
    send(server, message(to=mine.address("ops")), user=FIXED_USER)

    [call] = mine.wait_for("smtp", to=f"ops+ns-{ns}@example.com", timeout=5)
    assert call.namespace == ns
    assert call.data["auth_user"] == FIXED_USER  # still recorded as it was given
    assert hub.namespaced(FIXED_USER).calls("smtp") == []


def test_tagged_recipient_beats_an_ns_user_and_untagged_recipients(server: ThreadedHub, hub: MockHub) -> None:
    msg = message(to="ops@example.com, oncall+ns-team42@example.com")
    send(server, msg, user="ns-team7")
    [call] = hub.namespaced("team42").wait_for("smtp", timeout=5)
    assert call.data["rcpt_to"] == ["ops@example.com", "oncall+ns-team42@example.com"]
    assert hub.namespaced("team7").calls() == []


@pytest.mark.parametrize("user", ["ns-{ns}", "app+ns-{ns}", "app+ns-{ns}@acme.example"])
def test_auth_user_naming_the_namespace(server: ThreadedHub, hub: MockHub, ns: str, user: str) -> None:
    send(server, message(to="ops@example.com"), user=user.format(ns=ns))
    [call] = hub.namespaced(ns).wait_for("smtp", to="ops@example.com", timeout=5)
    assert call.data["auth_user"] == user.format(ns=ns)


def test_plain_auth_user_is_the_namespace_as_before(server: ThreadedHub, hub: MockHub, ns: str) -> None:
    for user in (ns, f"dns-{ns}", f"my-ns-{ns}"):  # an `ns-` inside the name is not a tag
        send(server, message(to="ops@example.com", subject=user), user=user)
        [call] = hub.namespaced(user).wait_for("smtp", timeout=5)
        assert call.data["subject"] == user
    send(server, message(to="ops@example.com", subject="anonymous"))
    assert [c.data["subject"] for c in hub.namespaced("default").calls("smtp")] == ["anonymous"]


def test_ns_user_scopes_faults_at_auth(server: ThreadedHub, hub: MockHub, ns: str) -> None:
    # At `auth` only the user name is known, so its tag must already decide the namespace.
    hub.namespaced(ns).fault("smtp", preset="unauthorized", stage="auth", times=None)
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        send(server, message(to="ops@example.com"), user=f"app+ns-{ns}")
    assert refused.value.smtp_code == 535
    send(server, message(to="ops@example.com"), user=f"app+ns-{ns}-other")  # another namespace goes through
    assert [c.method for c in hub.namespaced(ns).calls("smtp")][:1] == ["AUTH"]
    assert [c.method for c in hub.namespaced(f"{ns}-other").calls("smtp")] == ["DATA"]


@pytest.mark.anyio
async def test_aiosmtplib_with_fixed_credentials(server: ThreadedHub, ahub: AsyncMockHub, ns: str) -> None:
    mine = ahub.namespaced(ns)
    await send_async(server, message(to=mine.address("ops"), subject="tagged"), user=FIXED_USER)
    await send_async(server, message(to="ops@example.com", subject="by user"), user=f"svc+ns-{ns}")
    await send_async(server, message(to="ops@example.com", subject="plain"), user=FIXED_USER)

    got = await mine.wait_for("smtp", count=2, timeout=5)
    assert sorted(c.data["subject"] for c in got) == ["by user", "tagged"]
    assert [c.data["subject"] for c in await ahub.namespaced(FIXED_USER).calls("smtp")] == ["plain"]


# -- a timed-out wait says where the mail went -------------------------------------------------------


def test_timed_out_wait_names_the_other_namespaces(server: ThreadedHub, hub: MockHub, ns: str) -> None:
    other = support.new_namespace("team-")
    send(server, message(to="ops@example.com"))  # no AUTH, no tag: default
    send(server, message(to="ops@example.com"))
    send(server, message(to="ops@example.com"), user=other)  # the fixed user of a .env.test
    send(server, message(to="ops@example.com", subject="cpu high"), user=other)  # does not match the filter

    with pytest.raises(AssertionError) as caught:
        hub.namespaced(ns).wait_for("smtp", subject="Disk full on db-1", timeout=0.3)
    lines = str(caught.value).splitlines()
    assert f"in namespace '{ns}'" in lines[0] and "0 matched" in lines[0]
    assert lines[1] == f"3 matching calls arrived in other namespaces: default (2), {other} (1)."
    assert "No other calls arrived" in lines[2]


@pytest.mark.anyio
async def test_async_timed_out_wait_names_the_other_namespaces(
    server: ThreadedHub, ahub: AsyncMockHub, ns: str
) -> None:
    await send_async(server, message(to="ops@example.com"), user=FIXED_USER)
    mine = ahub.namespaced(ns)
    await send_async(server, message(to=mine.address("ops"), subject="mine"))

    with pytest.raises(AssertionError) as caught:
        await mine.wait_for("smtp", subject="Disk full on db-1", timeout=0.3)
    message_text = str(caught.value)
    assert f"1 matching call arrived in other namespaces: {FIXED_USER} (1)." in message_text
    assert "1 other call(s) arrived" in message_text  # this namespace's own near miss is still listed


def test_unscoped_or_unmatched_waits_add_no_namespace_line(server: ThreadedHub, hub: MockHub, ns: str) -> None:
    send(server, message(to="ops@example.com"))
    with pytest.raises(AssertionError) as caught:
        hub.namespaced(ns).wait_for("smtp", subject="something else", timeout=0.2)
    assert "other namespaces" not in str(caught.value)
    with pytest.raises(AssertionError) as caught:
        hub.wait_for("smtp", count=2, timeout=0.2)  # every namespace already: nothing "elsewhere"
    assert "other namespaces" not in str(caught.value)
