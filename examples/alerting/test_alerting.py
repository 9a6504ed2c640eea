"""Integration tests of the alerting app, written with mockhub's pytest plugin. Copy and adapt.

Each test gets `mockhub`: a fresh namespace on one mockhub (in-process, or the sidecar at MOCKHUB_URL),
so these tests also run in parallel (`pytest -n auto`). `mockhub.env()` holds the settings that point
the app at that namespace; the test only sets what is the app's own business (who gets paged).
"""

from __future__ import annotations

import dataclasses

import pytest
from alerting import Alert, Settings, dispatch

from mockhub import MockHub

DISK = Alert("Disk full", "critical", "db-1", "/var/lib/postgresql is 100% full")
CPU = Alert("CPU high", "warning", "web-3", "load 12.3 for 10 minutes")


@pytest.fixture
def settings(mockhub: MockHub, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in mockhub.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@example.com")
    monkeypatch.setenv("ALERT_SMS_TO", "+15551234567")
    return Settings.from_env()


def test_critical_alert_reaches_every_channel(mockhub: MockHub, settings: Settings) -> None:
    outcome = dispatch(DISK, settings)

    assert outcome.failed == {}
    assert sorted(outcome.delivered) == ["email", "slack", "sms", "webhook"]
    assert outcome.summary_by_llm

    [mail] = mockhub.wait_for("smtp", to="oncall@example.com")
    assert mail.data["subject"] == "[CRITICAL] Disk full on db-1"
    assert outcome.summary in mail.data["text"] and "100% full" in mail.data["text"]

    [slack] = mockhub.wait_for("slack")
    assert outcome.summary in slack.data["text"]
    assert "*Disk full* on `db-1`" in slack.data["blocks"][0]["text"]["text"]

    [sms] = mockhub.wait_for("twilio", to="+15551234567")
    assert sms.data["body"] == "Disk full on db-1"

    [hook] = mockhub.wait_for("webhook", path="/webhooks/alerts")
    assert hook.data == {"title": "Disk full", "severity": "critical", "host": "db-1", "summary": outcome.summary}

    [llm] = mockhub.calls("openai")
    assert llm.data["model"] == "gpt-4o-mini"
    assert "/var/lib/postgresql is 100% full" in llm.data["messages"][-1]["content"]


def test_warning_alert_does_not_page_anyone(mockhub: MockHub, settings: Settings) -> None:
    outcome = dispatch(CPU, settings)

    assert sorted(outcome.delivered) == ["email", "slack", "webhook"]
    mockhub.wait_for("slack", contains="CPU high")  # everything else has arrived by now...
    assert mockhub.count("twilio") == 0  # ...and no SMS went out


def test_the_summary_comes_from_the_llm(mockhub: MockHub, settings: Settings) -> None:
    with mockhub.stub("openai", content="Postgres on db-1 ran out of disk; writes are failing."):
        outcome = dispatch(DISK, settings)

    assert outcome.summary == "Postgres on db-1 ran out of disk; writes are failing."
    mockhub.wait_for("slack", contains="writes are failing")
    mockhub.wait_for("smtp", contains="writes are failing")


def test_llm_outage_falls_back_to_the_alert_text(mockhub: MockHub, settings: Settings) -> None:
    settings = dataclasses.replace(settings, llm_max_retries=1)
    with mockhub.fault("openai", preset="server_error", times=None):
        outcome = dispatch(DISK, settings)

    assert not outcome.summary_by_llm
    assert outcome.summary == "Disk full on db-1: /var/lib/postgresql is 100% full"
    assert sorted(outcome.delivered) == ["email", "slack", "sms", "webhook"]
    # The SDK tried once and retried once; mockhub failed both.
    attempts = mockhub.calls("openai")
    assert [c.status for c in attempts] == [500, 500]
    assert all(c.fault is not None for c in attempts)


def test_webhook_is_retried_through_two_503s(mockhub: MockHub, settings: Settings) -> None:
    with mockhub.fault("webhook", preset="unavailable", times=2):
        outcome = dispatch(DISK, settings)

    assert "webhook" in outcome.delivered
    attempts = mockhub.wait_for("webhook", count=3)
    assert [c.status for c in attempts] == [503, 503, 200]
    assert [c.fault is not None for c in attempts] == [True, True, False]


def test_slack_rate_limit_is_reported_and_the_rest_still_goes_out(mockhub: MockHub, settings: Settings) -> None:
    with mockhub.fault("slack", preset="rate_limited", times=None):
        outcome = dispatch(DISK, settings)

    assert "429" in outcome.failed["slack"]
    assert sorted(outcome.delivered) == ["email", "sms", "webhook"]


def test_a_rejected_recipient_is_reported(mockhub: MockHub, settings: Settings) -> None:
    with mockhub.fault("smtp", action="smtp_reply", stage="rcpt", code=550, message="5.1.1 no such user"):
        outcome = dispatch(DISK, settings)

    assert "550" in outcome.failed["email"]
    assert "email" not in outcome.delivered
    # The refused attempt is recorded too, marked with the fault that refused it.
    refused = mockhub.calls("smtp")
    assert refused and all(c.fault is not None and c.fault.action == "smtp_reply" for c in refused)
