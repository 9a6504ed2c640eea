"""`mockhub env --map` and `env(mapping=...)`: a project's own variable names, filled in and then used.

The application below reads only its own names (a real project's `.env.test` style); the test
checks the names are filled in and that the application, configured by them alone, reaches the fakes.
"""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest
from test_cli import cli
from twilio.rest import Client as Twilio

from mockhub import MockHub
from mockhub.client.urls import EnvMapError
from mockhub.server import ThreadedHub

MAPPING = {
    "ALERT_EMAIL_HOST": "smtp.host",
    "ALERT_EMAIL_PORT": "smtp.port",
    "ALERT_EMAIL_USERNAME": "smtp.user",
    "ALERT_SMS_TWILIO_ACCOUNT_SID": "twilio.account_sid",
    "ALERT_SMS_TWILIO_AUTH_TOKEN": "twilio.auth_token",
    "ALERT_SMS_TWILIO_URL": "twilio.twilio_base",
    "ALERT_SLACK_URL": "SLACK_API_URL",
    "ALERT_LLM_URL": "{urls.openai_base}",
    "ALERT_ENV": "=test",
}


def _application(env: dict[str, str]) -> None:
    """An alerting service that knows only its own variable names."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alerts@example.com", "ops@example.com", "disk full"
    msg.set_content("db-1")
    with smtplib.SMTP(env["ALERT_EMAIL_HOST"], int(env["ALERT_EMAIL_PORT"]), timeout=5) as smtp:
        smtp.login(env["ALERT_EMAIL_USERNAME"], "secret")
        smtp.send_message(msg)
    twilio = Twilio(env["ALERT_SMS_TWILIO_ACCOUNT_SID"], env["ALERT_SMS_TWILIO_AUTH_TOKEN"])
    twilio.api.base_url = env["ALERT_SMS_TWILIO_URL"]
    twilio.messages.create(to="+15005550006", from_="+15005550001", body="disk full")


def test_the_client_fills_in_a_projects_own_names(server: ThreadedHub) -> None:
    with MockHub(server.url, namespace="env-map") as hub:
        hub.reset()
        env = hub.env(mapping=MAPPING)
        assert env["ALERT_EMAIL_PORT"] == str(server.hub.listeners()["smtp_port"])
        assert env["ALERT_EMAIL_USERNAME"] == "env-map" == env["ALERT_EMAIL_SMTP_USER"]
        assert env["ALERT_SMS_TWILIO_ACCOUNT_SID"] == env["TWILIO_ACCOUNT_SID"]
        assert env["ALERT_SMS_TWILIO_URL"] == hub.urls.twilio_base
        assert env["ALERT_SLACK_URL"] == env["SLACK_API_URL"] == hub.urls.slack_api
        assert env["ALERT_LLM_URL"] == hub.urls.openai_base and env["ALERT_ENV"] == "test"
        _application(env)
        # Both deliveries landed in this client's namespace, so the test's waits find them.
        [mail] = hub.wait_for("smtp", to="ops@example.com")
        [sms] = hub.wait_for("twilio", to="+15005550006")
        assert mail.namespace == sms.namespace == "env-map"


@pytest.mark.parametrize(
    ("source", "says"),
    [("twillio.account_sid", "no fake named 'twillio'"), ("twilio.nope", "twilio has:"), ("NOPE", "not of the form")],
)
def test_an_unknown_source_is_a_clear_error(server: ThreadedHub, source: str, says: str) -> None:
    with MockHub(server.url) as hub, pytest.raises(EnvMapError, match=says):
        hub.env(mapping={"X": source})


def test_the_cli_takes_map_and_map_file(server: ThreadedHub, tmp_path: Path) -> None:
    mapping_file = tmp_path / "mockhub-env.toml"
    mapping_file.write_text('[env]\nALERT_EMAIL_PORT = "smtp.port"\nALERT_ENV = "=from-file"\n')
    code, out, _ = cli(
        "env", "--format", "json", "--namespace", "ci-7", "--map-file", str(mapping_file),
        "--map", "ALERT_SMS_TWILIO_ACCOUNT_SID=twilio.account_sid,ALERT_ENV==from-flag",
        url=server.url,
    )  # fmt: skip
    assert code == 0
    env = json.loads(out)
    assert env["ALERT_EMAIL_PORT"] == str(server.hub.listeners()["smtp_port"])
    assert env["ALERT_SMS_TWILIO_ACCOUNT_SID"].startswith("AC") and env["ALERT_ENV"] == "from-flag"
    code, _, err = cli("env", "--map", "ALERT_X=twillio.account_sid", url=server.url)
    assert code == 2 and "no fake named 'twillio'" in err
    code, _, err = cli("env", "--map", "JUSTANAME", url=server.url)
    assert code == 2 and "is not NAME=SOURCE" in err
