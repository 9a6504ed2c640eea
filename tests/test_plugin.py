"""The pytest plugin, driven through `pytester`: in-process mode, sidecar (MOCKHUB_URL) mode, xdist."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

import mockhub as mockhub_package
from mockhub.server import ThreadedHub
from mockhub.settings import Settings

pytest_plugins = ["pytester"]

# Subprocesses (xdist workers too) must import this tree's mockhub, whatever else is installed.
ROOT = str(Path(mockhub_package.__file__).resolve().parent.parent)


# Unrelated heavy plugins (schemathesis alone costs seconds) are kept out of the subprocess runs.
LEAN = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio")


@pytest.fixture(scope="module", autouse=True)
def _loaded_before_inline_runs() -> None:
    """Run a server once, so every module it loads lazily is loaded before any inline pytester run.

    An inline run unloads the modules it imported first (it restores sys.modules), and what kept a
    reference is left with stale classes: httpx with httpcore's, the lazily built inspection API
    with FastAPI's (its routes then no longer match), the SMTP fake with cryptography's (whose
    compiled core outlives the unload and rejects the reloaded classes). Run alone, this module
    failed that way; after other test modules had loaded everything, it passed.
    """
    with ThreadedHub(Settings(host="127.0.0.1", http_port=0, smtp_port=0)) as hub:
        httpx.get(hub.url + "/calls").raise_for_status()


@pytest.fixture
def sub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def no_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOCKHUB_URL", raising=False)


APP_TESTS = """
import httpx, os, pytest

def test_webhook_is_seen_in_my_namespace(mockhub, mockhub_server):
    r = httpx.post(mockhub.urls.webhook("alerts"), json={"summary": "disk full"})
    assert r.status_code == 200
    [call] = mockhub.wait_for("webhook", contains="disk full", timeout=5)
    assert call.namespace == mockhub.namespace
    assert call.path == "/webhooks/alerts"
    assert mockhub.namespace.startswith("test_webhook_is_seen_in_my_namespace-")
    print("SERVER", mockhub_server.url, "NS", mockhub.namespace)

def test_second_test_gets_a_fresh_namespace(mockhub):
    assert mockhub.calls() == []
    assert mockhub.count() == 0
    httpx.post(mockhub.urls.webhook("x"), json={})
    assert mockhub.count() == 1

def test_env_points_at_the_namespace(mockhub):
    env = mockhub.env()
    assert env["ALERT_WEBHOOK_URL"] == mockhub.urls.webhook("alerts")
    assert env["ALERT_SLACK_WEBHOOK_URL"] == mockhub.urls.slack_webhook
    assert env["ALERT_EMAIL_SMTP_SERVER"] == mockhub.smtp_host
    assert env["ALERT_EMAIL_SMTP_PORT"] == str(mockhub.smtp_port)
    assert env["ALERT_EMAIL_SMTP_USER"] == mockhub.namespace
    assert env["OPENAI_BASE_URL"] == mockhub.urls.openai_base
    assert env["ANTHROPIC_BASE_URL"] == mockhub.urls.anthropic_base
    assert f"/ns/{mockhub.namespace}/" in mockhub.urls.slack_webhook

def test_rules_are_scoped_and_removed_after_the_test(mockhub):
    fault = mockhub.fault("webhook", preset="server_error", times=None)  # never deleted by the test
    assert fault.match.namespace == mockhub.namespace
    assert httpx.post(mockhub.urls.webhook("x"), json={}).status_code == 500
    mockhub.stub("webhook", status=201, path="/webhooks/other")
"""


def test_in_process_mode_starts_a_server_and_isolates_tests(pytester: pytest.Pytester, no_sidecar: None) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    line = next(x for x in result.outlines if "SERVER" in x)
    url = line.split("SERVER ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:")
    # The in-process server is gone with the session.
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_sidecar_mode_uses_mockhub_url(
    pytester: pytest.Pytester, server: ThreadedHub, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_app=APP_TESTS)
    monkeypatch.setenv("MOCKHUB_URL", server.url)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"mockhub: {server.url}", f"*SERVER {server.url} NS *"])
    # The calls went to the sidecar, each test in its own namespace...
    calls = api.get("/calls").json()["calls"]
    namespaces = {c["namespace"] for c in calls}
    assert len(calls) == 3 and len(namespaces) == 3  # three of the four tests post one call each
    # ...and the rules a test left behind were removed at its end.
    assert api.get("/faults").json()["count"] == 0
    assert api.get("/stubs").json()["count"] == 0


def test_mockhub_url_option_wins_and_has_its_own_help_group(
    pytester: pytest.Pytester, server: ThreadedHub, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCKHUB_URL", "http://127.0.0.1:1")  # would fail if used
    pytester.makepyfile(
        f"""
        def test_it(mockhub):
            assert mockhub.url == {server.url!r}
            assert mockhub.health().status == "ok"
        """
    )
    pytester.runpytest("--mockhub-url", server.url + "/").assert_outcomes(passed=1)

    help_text = pytester.runpytest("--help").stdout.str()
    assert "mockhub (fake SMTP, Slack, Twilio, webhooks, OpenAI, Anthropic):" in help_text
    group = help_text.split("mockhub (fake SMTP")[1]
    assert "--mockhub-url=URL" in group.split("\n\n")[0]


def test_unreachable_sidecar_is_a_clear_error(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mockhub.pytest_plugin._CONNECT_TIMEOUT", 0.3)
    pytester.makepyfile("def test_it(mockhub):\n    pass\n")
    result = pytester.runpytest("--mockhub-url", "http://127.0.0.1:1")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*mockhub at http://127.0.0.1:1 is not ready after 0.3s*"])


def test_wait_for_failure_message_lists_what_arrived(pytester: pytest.Pytester, no_sidecar: None) -> None:
    pytester.makepyfile(
        """
        import httpx

        def test_alert(mockhub):
            httpx.post(mockhub.urls.webhook("alerts"), json={"summary": "cpu high on web-3"})
            httpx.post(mockhub.urls.webhook("alerts"), json={"summary": "disk full on db-1"})
            mockhub.wait_for("webhook", contains="disk full on db-2", timeout=0.5)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*mockhub/client/*")  # the traceback ends in the test, not the client
    result.stdout.fnmatch_lines(
        [
            "E   *AssertionError: mockhub: expected 1 call(s) matching service='webhook', "
            "contains='disk full on db-2' in namespace 'test_alert-*' within 0.5s; 0 matched.",
            "E   *2 other call(s) arrived in namespace 'test_alert-*', most similar first:",
            'E   *  #* webhook POST /webhooks/alerts -> 200  "disk full on db-1"  [[]differs in: contains]',
            'E   *  #* webhook POST /webhooks/alerts -> 200  "cpu high on web-3"  [[]differs in: contains]',
        ]
    )
    # The failed test's report also lists its namespace's calls.
    result.stdout.fnmatch_lines(["*- mockhub calls (namespace test_alert-*) -*", "#* webhook POST /webhooks/alerts*"])


def test_wait_for_failure_names_the_namespaces_the_mail_went_to(pytester: pytest.Pytester, no_sidecar: None) -> None:
    # A project's .env.test pins one SMTP user: its mail lands in that user's namespace, not the test's.
    pytester.makepyfile(
        """
        import smtplib
        from email.message import EmailMessage

        def test_alert(mockhub):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.com", "ops@example.com", "Disk full"
            msg.set_content("db-1")
            with smtplib.SMTP(mockhub.smtp_host, mockhub.smtp_port) as smtp:
                smtp.login("fixed-user", "fixed-password")
                smtp.send_message(msg)
            mockhub.wait_for("smtp", subject="Disk full", timeout=0.5)
        """
    )
    result = pytester.runpytest(*LEAN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E   *1 matching call arrived in other namespaces: fixed-user (1)."])


XDIST_TESTS = """
import time, httpx, pytest

@pytest.mark.parametrize("n", range(6))
def test_parallel(mockhub, n, worker_id):
    for i in range(15):
        assert httpx.post(mockhub.urls.webhook(f"t{n}"), json={"n": n, "i": i}).status_code == 200
        time.sleep(0.01)
    calls = mockhub.wait_for("webhook", count=15, timeout=10)
    # Exactly this test's calls, though other tests post to the same server at the same time.
    assert len(calls) == 15 and mockhub.count() == 15
    assert {c.data["n"] for c in calls} == {n}
    assert mockhub.reset().calls == 15
    print("WORKER", worker_id)
"""


def test_xdist_workers_share_a_sidecar_without_seeing_each_other(
    pytester: pytest.Pytester, server: ThreadedHub, api: httpx.Client, sub_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_par=XDIST_TESTS)
    monkeypatch.setenv("MOCKHUB_URL", server.url)
    result = pytester.runpytest_subprocess("-n", "2", *LEAN, timeout=180)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*2 workers*"])
    # Every test reset only its own namespace, so nothing is left on the shared server.
    assert api.get("/calls/count").json()["count"] == 0


def test_xdist_in_process_mode(pytester: pytest.Pytester, no_sidecar: None, sub_env: None) -> None:
    pytester.makepyfile(test_par=XDIST_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", *LEAN, timeout=180)
    result.assert_outcomes(passed=6)
